"""The raw (bronze) shape every source is mapped onto: string columns, as exported."""
from __future__ import annotations

import re

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark.config import FileSourceConf

RAW_COLUMNS: dict[str, list[str]] = {
    "events": ["user_id", "item_id", "event_type", "ts", "session_id", "quantity", "price", "rating",
               "query", "review"],
    "items": ["item_id", "title", "description", "category", "brand", "price", "stock"],
    "users": ["user_id", "age_band", "gender", "region"],
}


def to_raw(df: DataFrame, table: str, columns: dict[str, str] | None = None,
           constants: dict[str, str] | None = None) -> DataFrame:
    """Select the raw columns of `table` from `df`: mapped, constant, or null when absent. With no
    mapping at all, columns are taken by name (the synthetic shop already has the raw shape)."""
    columns, constants = columns or {}, constants or {}
    unknown = sorted((set(columns) | set(constants)) - set(RAW_COLUMNS[table]))
    if unknown:
        raise ValueError(f"{table}: {unknown[0]!r} is not a column of raw {table} {RAW_COLUMNS[table]}")

    def pick(name: str):
        if name in columns:
            return F.col(f"`{columns[name]}`").cast("string")
        if name in constants:
            return F.lit(str(constants[name]))
        if name in df.columns and not columns:
            return F.col(name).cast("string")
        return F.lit(None).cast("string")

    return df.select(*[pick(c).alias(c) for c in RAW_COLUMNS[table]])


EPOCH_2000 = 946684800  # the clock of files whose order is their only time: 2000-01-01 + position seconds


def read_lines(spark: SparkSession, path: str, options: dict[str, str]) -> DataFrame:
    """A `user item ...` text file whose line order is time order (the SASRec/BERT4Rec benchmark
    files): columns _c0, _c1, ... split on `sep` (a regex, whitespace by default) and `_ts`, the
    epoch second `start` + line number, so later lines are later events."""
    sep, start = options.get("sep", r"\s+"), int(options.get("start", EPOCH_2000))
    text = spark.read.text(path)
    first = text.where(F.trim("value") != "").first()
    if first is None:
        raise ValueError(f"{path}: the file has no lines")
    width = len(re.split(sep, first[0].strip()))
    numbered = text.rdd.zipWithIndex().map(lambda r: (r[0][0], r[1])).toDF("value string, _line long")
    parts = F.split(F.trim("value"), sep)
    return numbered.where(F.trim("value") != "").select(
        *[parts[i].alias(f"_c{i}") for i in range(width)], (F.lit(start) + F.col("_line")).cast("string").alias("_ts"))


def read_recbole(spark: SparkSession, path: str, options: dict[str, str]) -> DataFrame:
    """A RecBole atomic file (.inter, .item, .user): tab separated, header `name:type`; columns are
    named without their type. With option `history` naming a token_seq column of the items before
    the row's own `item` column (default item_id), each row becomes one row per item of the history
    followed by the item itself, `_ts` their position after `start`: time order is list order."""
    df = spark.read.options(sep="\t", header="true", inferSchema="false", quote="").csv(path)
    df = df.toDF(*[c.split(":", 1)[0] for c in df.columns])
    if "history" not in options:
        return df
    hist, item, start = options["history"], options.get("item", "item_id"), int(options.get("start", EPOCH_2000))
    for col in (hist, item):
        if col not in df.columns:
            raise ValueError(f"{path}: option names column {col!r}, not in the file's header {df.columns}")
    items = F.concat(F.coalesce(F.split(F.trim(hist), " +"), F.array()), F.array(item))
    rest = [c for c in df.columns if c not in (hist, item)]
    out = df.select(*rest, F.posexplode(F.filter(items, lambda x: x != "")).alias("_pos", item))
    return out.select(*rest, item, (F.lit(start) + F.col("_pos")).cast("string").alias("_ts"))


def read_file_source(spark: SparkSession, spec: FileSourceConf, table: str) -> DataFrame:
    """Read a file through its column mapping; strings only, nothing inferred."""
    if spec.format == "lines":
        df = read_lines(spark, spec.path, spec.options)
    elif spec.format == "recbole":
        df = read_recbole(spark, spec.path, spec.options)
    else:
        reader = spark.read.format(spec.format).options(**spec.options)
        if spec.format == "csv":
            reader = reader.option("inferSchema", "false").option("mode", "PERMISSIVE")
        df = reader.load(spec.path)
    missing = sorted(set(spec.columns.values()) - set(df.columns))
    if missing:
        raise ValueError(f"{spec.path}: column {missing[0]!r} named in the mapping for {table} is not in the "
                         f"file; its columns are {df.columns}")
    columns = dict(spec.columns)
    for name, expression in spec.derive.items():
        columns[name] = f"_derived_{name}"
        try:
            df = df.withColumn(columns[name], F.expr(expression))
        except AnalysisException as e:
            raise ValueError(f"{spec.path}: source.files.{table}.derive.{name} = {expression!r} does not apply "
                             f"to the file's columns {df.columns}: {str(e).splitlines()[0]}") from None
    raw = to_raw(df, table, columns, spec.constants)
    return raw.distinct() if spec.distinct else raw

"""The raw (bronze) shape every source is mapped onto: string columns, as exported."""
from __future__ import annotations

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


def read_file_source(spark: SparkSession, spec: FileSourceConf, table: str) -> DataFrame:
    """Read a CSV/JSON/Parquet file through its column mapping; strings only, nothing inferred."""
    reader = spark.read.format(spec.format).options(**spec.options)
    if spec.format == "csv":
        reader = reader.option("inferSchema", "false").option("mode", "PERMISSIVE")
    df = reader.load(spec.path)
    missing = sorted(set(spec.columns.values()) - set(df.columns))
    if missing:
        raise ValueError(f"{spec.path}: column {missing[0]!r} named in the mapping for {table} is not in the "
                         f"file; its columns are {df.columns}")
    raw = to_raw(df, table, spec.columns, spec.constants)
    return raw.distinct() if spec.distinct else raw

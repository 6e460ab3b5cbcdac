"""Training data for the deep models, prepared in Spark and materialised as Parquet for Petastorm.

Petastorm reads Parquet written by Spark (never a Delta table's files, whose set of live files
only the Delta log knows). Every column is a number or a FIXED-length array, which is what
Petastorm's readers turn into tensors. Item ids start at 1; 0 is padding.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, BinaryType, IntegerType, StructField, StructType

BLOCK_ROWS = "block_rows"  # in blocked Parquet: how many of a block's rows are real


def local_path(path: str) -> str:
    """The path Python (torch, Petastorm) opens for a path Spark writes: DBFS through its /dbfs mount."""
    return "/dbfs/" + path[len("dbfs:/"):].lstrip("/") if path.startswith("dbfs:/") else path


def with_negatives(positives: DataFrame, items: DataFrame, n_neg: int, kind: str, seed: int) -> DataFrame:
    """(user_idx, item_idx, label): each positive pair with label 1 and `n_neg` sampled items with
    label 0, drawn uniformly or in proportion to popularity (distinct users), never an item the
    user had. items: (item_idx, n_users)."""
    if kind not in ("uniform", "popularity"):
        raise ValueError(f"unknown negative sampling {kind!r}; use uniform or popularity")
    table = items.select("item_idx", "n_users").orderBy("item_idx").toPandas()
    ids = table["item_idx"].to_numpy(np.int32)
    weights = np.ones(len(ids)) if kind == "uniform" else table["n_users"].to_numpy(np.float64) + 1.0
    cdf = np.cumsum(weights) / weights.sum()
    shared = positives.sparkSession.sparkContext.broadcast((ids, cdf))

    @F.pandas_udf("int")
    def draw(u: pd.Series) -> pd.Series:
        ids, cdf = shared.value
        return pd.Series(ids[np.minimum(np.searchsorted(cdf, u.to_numpy()), len(ids) - 1)])

    pos = positives.select("user_idx", "item_idx").distinct()
    draws = pos.select("user_idx", F.explode(F.sequence(F.lit(1), F.lit(n_neg))).alias("_n"))
    neg = (draws.select("user_idx", draw(F.rand(seed)).alias("item_idx"))
           .join(pos, ["user_idx", "item_idx"], "left_anti"))
    return (pos.withColumn("label", F.lit(1.0)).unionByName(neg.withColumn("label", F.lit(0.0)))
            .select(F.col("user_idx").cast("int"), F.col("item_idx").cast("int"), F.col("label").cast("float")))


def sequence_history(sequences: DataFrame) -> DataFrame:
    """(user_idx, items): one cut of gold.sequences without its padding."""
    return sequences.select("user_idx", F.filter("items", lambda x: x > 0).alias("items"))


def next_item_examples(histories: DataFrame, length: int) -> DataFrame:
    """(user_idx, inputs, targets): a left-padded sequence of `length` items and, at each position,
    the item that came next (0 where there is none), for models trained on every position."""
    items = F.col("items")
    n = F.size(items)
    last = F.slice(items, F.greatest(n - length, F.lit(1)), F.least(n, F.lit(length + 1)))
    padded = F.concat(F.array_repeat(F.lit(0), length + 1 - F.size(last)), last)
    return (histories.select("user_idx", padded.alias("_p"))
            .select(F.col("user_idx").cast("int"), F.slice("_p", 1, length).alias("inputs"),
                    F.slice("_p", 2, length).alias("targets"))
            .where(F.col("targets")[length - 1] > 0))


def last_items(histories: DataFrame, length: int) -> DataFrame:
    """(user_idx, inputs): the last `length` items of each history, left-padded with 0: a
    sequence model's input when it predicts what comes next."""
    items = F.col("items")
    n = F.size(items)
    last = F.slice(items, F.greatest(n - length + 1, F.lit(1)), F.least(n, F.lit(length)))
    padded = F.concat(F.array_repeat(F.lit(0), length - F.size(last)), last)
    return histories.select(F.col("user_idx").cast("int"), padded.alias("inputs"))


def held_out_examples(histories: DataFrame, targets: DataFrame, length: int) -> DataFrame:
    """(user_idx, inputs, target): the model's input and the held-out item that followed.
    targets: (user_idx, item_idx)."""
    return last_items(histories, length).join(
        targets.select("user_idx", F.col("item_idx").cast("int").alias("target")), "user_idx")


def _matrix(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A scalar column as (rows, 1), a fixed-length array column as (rows, length), no Python per row."""
    column = column.combine_chunks()
    if column.null_count:
        raise ValueError(f"column {name!r} has nulls; blocked Parquet holds numbers only")
    if not pa.types.is_list(column.type):
        return column.to_numpy().reshape(-1, 1)
    lengths = np.unique(np.diff(column.offsets.to_numpy()))
    values = column.flatten()
    if len(lengths) > 1 or values.null_count:
        raise ValueError(f"column {name!r} has arrays of lengths {lengths.tolist()} or null items; blocked "
                         "Parquet needs one length")
    return values.to_numpy().reshape(len(column), -1)


def blocked(df: DataFrame, rows: int) -> DataFrame:
    """Each run of up to `rows` consecutive rows of `df` as one row: BLOCK_ROWS, how many, and every
    column's values as one little-endian binary (an array column's row-major). Petastorm turns a
    column into numpy with a Python object per Parquet row, and copies every table it reads once
    (a take of all its rows), which for a binary value is one memcpy: per example that is 25,000
    objects in a 25,000-row file, per block of 1,024 examples 25. Each column's metadata keeps its
    dtype and whether it holds arrays; the loader reads both back from the footer."""
    fields = df.schema.fields
    layout = {f.name: {"block_rows": rows, "dtype": _block_dtype(f), "array": isinstance(f.dataType, ArrayType)}
              for f in fields}
    schema = StructType([StructField(BLOCK_ROWS, IntegerType(), False)]
                        + [StructField(f.name, BinaryType(), False) for f in fields])

    def blocks(table: pa.Table) -> pa.RecordBatch:
        starts = range(0, table.num_rows, rows)
        columns = [pa.array([min(rows, table.num_rows - s) for s in starts], pa.int32())]
        for f in fields:
            values = _matrix(table.column(f.name), f.name).astype(layout[f.name]["dtype"])
            columns.append(pa.array([values[s:s + rows].tobytes() for s in starts], pa.binary()))
        return pa.RecordBatch.from_arrays(columns, names=[BLOCK_ROWS, *layout])

    def pack(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pending: list[pa.RecordBatch] = []
        for batch in batches:
            pending.append(batch)
            held = sum(b.num_rows for b in pending)
            if held >= rows:
                table = pa.Table.from_batches(pending)
                yield blocks(table.slice(0, held - held % rows))
                pending = table.slice(held - held % rows).to_batches()
        if sum(b.num_rows for b in pending):
            yield blocks(pa.Table.from_batches(pending))

    return df.mapInArrow(pack, schema).select(
        BLOCK_ROWS, *[F.col(name).alias(name, metadata=meta) for name, meta in layout.items()])


def _block_dtype(field: StructField) -> str:
    """The little-endian numpy dtype a column's numbers are blocked as."""
    kind = field.dataType.elementType if isinstance(field.dataType, ArrayType) else field.dataType
    dtypes = {"tinyint": "<i1", "smallint": "<i2", "int": "<i4", "bigint": "<i8", "float": "<f4", "double": "<f8"}
    if kind.simpleString() not in dtypes:
        raise ValueError(f"column {field.name!r} is {field.dataType.simpleString()}; blocked Parquet holds numbers "
                         "and arrays of numbers")
    return dtypes[kind.simpleString()]


def materialise(df: DataFrame, path: str, files: int, block_rows: int = 0) -> int:
    """Write `df` as Parquet in `files` files of about equal size (Petastorm shards by row group,
    one per file here, so ranks get about equal shares); returns the row count. Each file's rows and
    their order follow from the rows alone (a hash), not from the order shuffle blocks arrive in,
    so a cluster trains on the same files as local mode. block_rows > 0: written `blocked`, which
    the loader reads back as the same rows."""
    keyed = df.withColumn("_key", F.xxhash64(*df.columns))
    out = keyed.repartition(files, "_key").sortWithinPartitions("_key").drop("_key")
    (blocked(out, block_rows) if block_rows else out).write.mode("overwrite").parquet(path)
    written = df.sparkSession.read.parquet(path)
    if not block_rows:
        return written.count()
    return written.agg(F.sum(BLOCK_ROWS)).first()[0] or 0

"""Training data for the deep models, prepared in Spark and materialised as Parquet for Petastorm.

Petastorm reads Parquet written by Spark (never a Delta table's files, whose set of live files
only the Delta log knows). Every column is a number or a FIXED-length array, which is what
Petastorm's readers turn into tensors. Item ids start at 1; 0 is padding.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F


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


def packed_ints(column: str) -> Column:
    """An int array as one binary value, its items as big-endian int32: Petastorm turns a list
    column into a matrix row by row (np.vstack of a Python list), a binary column in one join."""
    return F.unhex(F.concat_ws("", F.transform(column, lambda x: F.lpad(F.hex(x), 8, "0"))))


def materialise(df: DataFrame, path: str, files: int, packed: Sequence[str] = ()) -> int:
    """Write `df` as Parquet in `files` files of about equal size (Petastorm shards by row group,
    one per file here, so ranks get about equal shares); returns the row count. Each file's rows and
    their order follow from the rows alone (a hash), not from the order shuffle blocks arrive in,
    so a cluster trains on the same files as local mode. `packed`: fixed-length int array columns
    written as packed_ints, which the loader reads back as matrices."""
    keyed = df.withColumn("_key", F.xxhash64(*df.columns))  # from the values, so either layout orders alike
    out = keyed.select("_key", *[packed_ints(c).alias(c) if c in packed else F.col(c) for c in df.columns])
    out.repartition(files, "_key").sortWithinPartitions("_key").drop("_key").write.mode("overwrite").parquet(path)
    return df.sparkSession.read.parquet(path).count()

"""Leakage-free splits, made on events before any feature is computed.

temporal: one global cut; the last `test_days` are test, the `validation_days` before them
validation. leave_last_out: per user, every event of the last item is test and of the item
before it validation, so no (user, held-out item) pair is in training. stratified: per item, a
seeded shuffle of its (user, item) pairs; the last `test_share` are test and the same share of the
rest validation, so every item keeps about the same share in training. none: every event is
training (a production run: nothing is held out, the final cut is all the data).
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.config import SplitConf


def temporal_split(events: DataFrame, conf: SplitConf) -> DataFrame:
    end = events.agg(F.max("ts")).first()[0]
    test_cut = F.lit(end) - F.make_dt_interval(secs=F.lit(conf.test_days * 86400))
    val_cut = test_cut - F.make_dt_interval(secs=F.lit(conf.validation_days * 86400))
    split = (F.when(F.col("ts") > test_cut, "test").when(F.col("ts") > val_cut, "validation").otherwise("train"))
    return events.withColumn("split", split)


def leave_last_out_split(events: DataFrame) -> DataFrame:
    last = events.groupBy("user_idx", "item_idx").agg(F.max("ts").alias("_last"))
    w = Window.partitionBy("user_idx").orderBy(F.col("_last").desc(), F.col("item_idx").desc())
    ranked = last.withColumn("_r", F.row_number().over(w)).withColumn(
        "split", F.when(F.col("_r") == 1, "test").when(F.col("_r") == 2, "validation").otherwise("train"))
    # users with fewer than three items keep everything in training
    n = Window.partitionBy("user_idx")
    ranked = ranked.withColumn("split", F.when(F.count("*").over(n) < 3, "train").otherwise(F.col("split")))
    return events.join(ranked.select("user_idx", "item_idx", "split"), ["user_idx", "item_idx"])


def stratified_pairs_split(events: DataFrame, conf: SplitConf) -> DataFrame:
    pairs = events.select("user_idx", "item_idx").distinct()
    rest, test = stratified_split(pairs, "item_idx", 1.0 - conf.test_share, conf.seed)
    train, validation = stratified_split(rest, "item_idx", 1.0 - conf.test_share, conf.seed + 1)
    split = (train.withColumn("split", F.lit("train")).unionByName(validation.withColumn("split", F.lit("validation")))
             .unionByName(test.withColumn("split", F.lit("test"))))
    return events.join(split, ["user_idx", "item_idx"])


def make_split(events: DataFrame, conf: SplitConf) -> DataFrame:
    if conf.kind == "none":
        return events.withColumn("split", F.lit("train"))
    if conf.kind == "stratified":
        return stratified_pairs_split(events, conf)
    return temporal_split(events, conf) if conf.kind == "temporal" else leave_last_out_split(events)


def stratified_split(df: DataFrame, by: str, ratio: float, seed: int) -> tuple[DataFrame, DataFrame]:
    """Per group of `by`, a seeded shuffle puts round(ratio * n) rows in the first part (the
    protocol of Microsoft Recommenders' python_stratified_split)."""
    order = F.xxhash64(F.lit(seed), "user_idx", "item_idx")
    w = Window.partitionBy(by).orderBy(order)
    ranked = df.withColumn("_r", F.row_number().over(w)).withColumn("_n", F.count("*").over(Window.partitionBy(by)))
    first = F.col("_r") <= F.round(F.col("_n") * ratio)
    return ranked.where(first).drop("_r", "_n"), ranked.where(~first).drop("_r", "_n")

"""Stable id maps: string id -> contiguous int, as ALS and embedding tables need.

Existing ids keep their int forever; new ids get the next ints, in sorted order so that the
same batch always maps the same way. Index 0 is never used: sequences pad with it.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StructField, StructType

from recsys_spark.spark import cache_for_stage


def extend_id_map(current: DataFrame | None, ids: DataFrame, id_col: str, idx_col: str) -> DataFrame:
    """The rows to add to an id map: ids not in `current`, numbered after its largest index."""
    candidates = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    start = 0
    if current is not None:
        candidates = candidates.join(current.select(id_col), id_col, "left_anti")
        start = current.agg(F.coalesce(F.max(idx_col), F.lit(0))).first()[0]
    # Sorted in parallel (range partitions), then numbered by each partition's offset: a window
    # over the whole table would pull every id into one task. The distinct ids are cached: the sort's
    # sampling, the offsets and the numbering would each read every event again.
    candidates = cache_for_stage(candidates)
    numbered = candidates.orderBy(id_col).rdd.zipWithIndex().map(lambda r: (r[0][0], start + 1 + r[1]))
    schema = StructType([candidates.schema[id_col], StructField(idx_col, IntegerType())])
    return candidates.sparkSession.createDataFrame(numbered, schema)

"""Stable id maps: string id -> contiguous int, as ALS and embedding tables need.

Existing ids keep their int forever; new ids get the next ints, in sorted order so that the
same batch always maps the same way. Index 0 is never used: sequences pad with it.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


def extend_id_map(current: DataFrame | None, ids: DataFrame, id_col: str, idx_col: str) -> DataFrame:
    """The rows to add to an id map: ids not in `current`, numbered after its largest index."""
    candidates = ids.select(id_col).where(F.col(id_col).isNotNull()).distinct()
    start = 0
    if current is not None:
        candidates = candidates.join(current.select(id_col), id_col, "left_anti")
        start = current.agg(F.coalesce(F.max(idx_col), F.lit(0))).first()[0]
    w = Window.orderBy(id_col)
    return candidates.select(id_col, (F.row_number().over(w) + F.lit(start)).cast("int").alias(idx_col))

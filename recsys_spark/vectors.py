"""Array-of-float columns as vectors (factors, embeddings), in Spark SQL without UDFs."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def unit_vectors(frame: DataFrame, col: str = "features") -> DataFrame:
    """The same rows with `col` scaled to length 1 (zero vectors stay zero)."""
    norm = F.sqrt(F.aggregate(col, F.lit(0.0), lambda acc, x: acc + x * x))
    return frame.withColumn(col, F.transform(col, lambda x: (x / F.greatest(norm, F.lit(1e-12))).cast("float")))

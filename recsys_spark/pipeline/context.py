"""What every stage gets: the resolved config, the session, the lakehouse and the progress log."""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import SparkSession

from recsys_spark.config import Config
from recsys_spark.lakehouse import Lakehouse
from recsys_spark.pipeline.progress import Progress
from recsys_spark.spark import get_spark


@dataclass
class Context:
    cfg: Config
    spark: SparkSession
    lake: Lakehouse
    progress: Progress

    @classmethod
    def create(cls, cfg: Config) -> Context:
        spark = get_spark(cfg)
        return cls(cfg, spark, Lakehouse(spark, cfg), Progress(spark))

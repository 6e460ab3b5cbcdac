"""Pseudonymous user ids: a keyed hash applied at ingest, so no raw id reaches the lakehouse."""
from __future__ import annotations

import os

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.config import ConfigError, PrivacyConf


def pseudonymise(df: DataFrame, conf: PrivacyConf, column: str = "user_id") -> DataFrame:
    """Replace `column` by sha256(key, id). The key lives only in an environment variable:
    the same key maps the same id the same way across batches; without it ids cannot be reversed."""
    if not conf.hash_user_ids:
        return df
    key = os.environ.get(conf.key_env)
    if not key:
        raise ConfigError(f"privacy.hash_user_ids is on but the environment variable {conf.key_env} is empty")
    hashed = F.sha2(F.concat(F.lit(key), F.lit("\x1f"), F.col(column)), 256)
    return df.withColumn(column, F.when(F.col(column).isNotNull(), hashed))

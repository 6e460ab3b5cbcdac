"""The one place a SparkSession is made, for the three places the jobs run."""
from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from recsys_spark.config import Config

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def get_spark(cfg: Config) -> SparkSession:
    """local: build one with the Delta jars resolved by pip's delta-spark; cluster: spark-submit
    has set master and packages; databricks: the notebook's or job's active session."""
    if cfg.runtime == "databricks":
        spark = SparkSession.getActiveSession() or SparkSession.builder.getOrCreate()
    else:
        builder = SparkSession.builder.appName(cfg.app_name)
        settings = {
            **DELTA_CONF,
            "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
            **cfg.spark.conf,
        }
        if cfg.runtime == "local":
            # Python workers must run the driver's interpreter (the venv), not whatever is on PATH
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = builder.master(cfg.spark.master)
            settings.update({
                "spark.driver.memory": cfg.spark.driver_memory,
                "spark.sql.adaptive.enabled": "true",
                "spark.databricks.delta.snapshotPartitions": "2",
                "spark.sql.warehouse.dir": f"{cfg.lakehouse.root}/_warehouse",
                "spark.driver.extraJavaOptions": "-Dderby.system.home=/tmp/recsys-spark/derby",
            })
        for key, value in settings.items():
            builder = builder.config(key, value)
        if cfg.runtime == "local":
            from delta import configure_spark_with_delta_pip

            builder = configure_spark_with_delta_pip(builder)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(cfg.spark.log_level)
    spark.sparkContext.setCheckpointDir(cfg.lakehouse.checkpoint_dir)
    return spark

"""The one place a SparkSession is made, for the three places the jobs run."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import metadata
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from recsys_spark.config import Config

log = logging.getLogger("recsys_spark")

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
_stage_frames: ContextVar[list[DataFrame] | None] = ContextVar("stage_frames", default=None)


def cache_for_stage(frame: DataFrame) -> DataFrame:
    """Cache a frame that a transform's lazy result is built on. The transform cannot release it
    (its caller has not written the result yet), so the running stage does when it ends. Outside a
    stage it stays cached for the session, as a plain cache() would."""
    frames = _stage_frames.get()
    if frames is not None:
        frames.append(frame)
    return frame.cache()


@contextmanager
def stage_caches() -> Iterator[None]:
    """Release the frames cached through cache_for_stage while this block ran, and only those:
    Spark's clearCache would also drop what other notebooks on a shared cluster cached."""
    token = _stage_frames.set([])
    try:
        yield
    finally:
        for frame in _stage_frames.get():
            frame.unpersist()
        _stage_frames.reset(token)


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
            # Parallel file listing (VACUUM's listing and deletes, large source directories) runs
            # in this many tasks; Spark's 10,000 cost half a minute per small table on a laptop.
            # The shuffle width is the scale the deployment has chosen.
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(cfg.spark.shuffle_partitions),
            "spark.sql.session.timeZone": "UTC",
            # toPandas and createDataFrame(pandas) through Arrow, as Databricks has it: row by row
            # through pickle, 2M rows of three columns took 8.2 s against 0.9 s
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.ui.showConsoleProgress": "false",
            # plans of the wider gold tables pass Spark's default of 25 fields, which it warns about
            # once a session: noise in a shopper's `search` or `recommend`
            "spark.sql.debug.maxToStringFields": "200",
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
                "spark.python.daemon.module": "recsys_spark.daemon",
                "spark.sql.warehouse.dir": f"{cfg.lakehouse.root}/_warehouse",
                "spark.driver.extraJavaOptions": " ".join(["-Dderby.system.home=/tmp/recsys-spark/derby",
                                                          *native_blas_options()]),
            })
        for key, value in settings.items():
            builder = builder.config(key, value)
        if cfg.runtime == "local":
            from delta import configure_spark_with_delta_pip

            builder = configure_spark_with_delta_pip(builder)
        spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(cfg.spark.log_level)
        log.info("Spark %s, MLlib BLAS: %s", spark.version, blas_in_use(spark))
    _require_delta(spark)
    spark.sparkContext.setCheckpointDir(cfg.lakehouse.checkpoint_dir)
    return spark


def native_blas_options() -> list[str]:
    """JVM options that point MLlib's BLAS (dev.ludovic.netlib) at the OpenBLAS `make` unpacked into
    the venv (blas/), and turn on the JDK vector API for what stays in Java. The library's directory
    joins LD_LIBRARY_PATH before the JVM starts (OpenBLAS needs libgfortran beside it); one thread
    per BLAS call, since Spark already runs a task per core."""
    options = ["--add-modules=jdk.incubator.vector"]
    lib = Path(sys.prefix) / "blas"
    if (lib / "libblas.so.3").is_file():
        paths = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != str(lib)]
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([str(lib), *paths])
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        options += [f"-Ddev.ludovic.netlib.blas.nativeLibPath={lib / 'libblas.so.3'}",
                    f"-Ddev.ludovic.netlib.lapack.nativeLibPath={lib / 'liblapack.so.3'}"]
    return options


def blas_in_use(spark: SparkSession) -> str:
    """Which implementation MLlib's BLAS calls reach: JNIBLAS (native), VectorBLAS or F2jBLAS (Java)."""
    return spark._jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()


def _require_delta(spark: SparkSession) -> None:
    from py4j.protocol import Py4JJavaError

    try:
        spark._jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass(
            "io.delta.sql.DeltaSparkSessionExtension")
    except Py4JJavaError as e:
        if "ClassNotFoundException" not in str(e.java_exception):
            raise  # any other failure is itself the news, not a missing jar
        raise RuntimeError(f"Delta Lake is not on this Spark's classpath: pass --packages {delta_package()} "
                           "to spark-submit (the project venv's spark-defaults.conf does this)") from e


def delta_package() -> str:
    return f"io.delta:delta-spark_2.12:{metadata.version('delta-spark')}"


def write_spark_defaults() -> Path:
    """Let a plain `spark-submit jobs/<stage>.py` in the project venv find Delta, as on a cluster
    where --packages or the image provides it."""
    import pyspark

    path = Path(pyspark.__file__).parent / "conf" / "spark-defaults.conf"
    path.parent.mkdir(exist_ok=True)
    lines = [f"spark.jars.packages {delta_package()}", *[f"{k} {v}" for k, v in DELTA_CONF.items()]]
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__" and sys.argv[1:] == ["--write-defaults"]:
    print(f"wrote {write_spark_defaults()}")

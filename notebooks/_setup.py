# Databricks notebook source
# MAGIC %md
# MAGIC Shared set-up for the notebooks. It `%pip install`s the project's wheel named by the `wheel` widget
# MAGIC (a workspace file or a Unity Catalog volume; the bundle's job passes the one it deployed), so that
# MAGIC the executors, which run the top-K scoring, the pandas UDFs and the training workers, import the
# MAGIC package too. `--no-deps`: Spark, Delta, pandas, torch and MLflow are the runtime's own (Databricks
# MAGIC Runtime 15.4 LTS ML: Spark 3.5, Python 3.11); requirements-databricks.txt adds what it lacks
# MAGIC or has in older releases.
# MAGIC
# MAGIC Needs classic compute in dedicated (single user) access mode: the stages use `sparkContext`
# MAGIC (job descriptions, broadcasts, the checkpoint directory), which standard (shared) access mode and
# MAGIC serverless do not offer. Tables go to the catalog named by `lakehouse.root` in conf/databricks.yaml
# MAGIC as `<catalog>.<layer>.<table>`.

# COMMAND ----------

dbutils.widgets.text("wheel", "/Volumes/main/recsys_spark/wheels/recsys_spark-0.1.0-py3-none-any.whl")
dbutils.widgets.text("dataset", "")
dbutils.widgets.text("overrides", "")
wheel = dbutils.widgets.get("wheel")

# COMMAND ----------

# MAGIC %pip install --quiet -r requirements-databricks.txt

# COMMAND ----------

# MAGIC %pip install --quiet --no-deps $wheel

# COMMAND ----------

import os

REPO = os.path.dirname(os.getcwd())
CONF = os.path.join(REPO, "conf", "databricks.yaml")

from recsys_spark.cli import main
from recsys_spark.config import Config, load_config
from recsys_spark.lakehouse import Lakehouse


def config() -> Config:
    """The config the stages run with: the databricks overlay, the widgets' dataset and overrides."""
    return load_config(CONF, dbutils.widgets.get("dataset") or None, dbutils.widgets.get("overrides").split())


def lakehouse() -> Lakehouse:
    return Lakehouse(spark, config())


def cli(*args: str) -> None:
    """`recsys-spark <args>` with the databricks overlay and the widgets' dataset and overrides."""
    argv = [*args, "--conf", CONF]
    dataset = dbutils.widgets.get("dataset")
    if dataset:
        argv += ["--dataset", dataset]
    for item in dbutils.widgets.get("overrides").split():
        argv += ["--set", item]
    if main(argv) != 0:
        raise RuntimeError(f"recsys-spark {' '.join(argv)} failed")


def run_stage_from_widgets(stage: str, *extra: str) -> None:
    """Run a stage (or `pipeline`), with `extra` key=value overrides."""
    cli(*(["pipeline"] if stage == "pipeline" else ["run", stage]), *[a for item in extra for a in ("--set", item)])

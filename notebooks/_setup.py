# Databricks notebook source
# MAGIC %md
# MAGIC Shared set-up for the stage notebooks: installs the package from this repo (Delta and Spark are
# MAGIC the runtime's own) and defines `run_stage_from_widgets`. Tables go to the catalog named by
# MAGIC `lakehouse.root` in conf/databricks.yaml as `<catalog>.<layer>.<table>`.

# COMMAND ----------

# MAGIC %pip install --quiet pyyaml

# COMMAND ----------

dbutils.widgets.text("dataset", "")
dbutils.widgets.text("overrides", "")

# COMMAND ----------

import os
import sys

REPO = os.path.dirname(os.getcwd())
sys.path.insert(0, REPO)

from recsys_spark.cli import main


def run_stage_from_widgets(stage: str, *extra: str) -> None:
    """Run a stage (or `pipeline`) with the databricks overlay, the widgets' dataset and overrides,
    and `extra` key=value overrides."""
    args = ["pipeline"] if stage == "pipeline" else ["run", stage]
    args += ["--conf", os.path.join(REPO, "conf", "databricks.yaml")]
    dataset = dbutils.widgets.get("dataset")
    if dataset:
        args += ["--dataset", dataset]
    for item in [*extra, *dbutils.widgets.get("overrides").split()]:
        args += ["--set", item]
    if main(args) != 0:
        raise RuntimeError(f"recsys-spark {' '.join(args)} failed")

# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: features
# MAGIC Silver into gold: stable id maps, the leakage-free split, interactions, user/item/context features
# MAGIC and padded sequences. Features read the training split only.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/features.py`. Widgets: `dataset` (a conf/datasets name,
# MAGIC empty for the synthetic shop) and `overrides` (space-separated `key=value`).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("features")

# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: ingest
# MAGIC Sources (the synthetic shop, files through a column mapping, or a data set under conf/datasets) into
# MAGIC bronze.events, bronze.items and bronze.users, each row tagged with its batch id, source and ingest
# MAGIC time.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/ingest.py`. Widgets: `dataset` (a conf/datasets name, empty
# MAGIC for the synthetic shop) and `overrides` (space-separated `key=value`).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("ingest")

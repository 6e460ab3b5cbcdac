# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: quality
# MAGIC Bronze into silver (typed, validated, de-duplicated) and quarantine (raw rows with a reason), plus
# MAGIC silver.quality_report. Every bronze row lands in exactly one of silver or quarantine.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/quality.py`. Widgets: `dataset` (a conf/datasets name,
# MAGIC empty for the synthetic shop) and `overrides` (space-separated `key=value`).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("quality")

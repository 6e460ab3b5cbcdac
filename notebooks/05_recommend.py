# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: recommend
# MAGIC Top-K lists for every user into gold.recs: ALS by the blocked top-K, and the popularity baselines;
# MAGIC seen items excluded.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/recommend.py`. Widgets: `dataset` and `overrides` (see _setup).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("recommend")

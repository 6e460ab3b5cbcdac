# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: recommend
# MAGIC Top-K lists for every user into gold.recs, seen items excluded: ALS by the blocked top-K,
# MAGIC item_knn (co-occurrence neighbours, SAR-style), user_knn (nearest users' items), and the
# MAGIC popularity baselines (global, recent, per category).
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/recommend.py`. Widgets: `dataset` and `overrides` (see _setup).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("recommend")

# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: evaluate
# MAGIC Every model in gold.recs against the held-out test split into gold.metrics: precision, recall,
# MAGIC NDCG, MAP, hit rate, MRR, coverage, novelty and diversity at k.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/evaluate.py`. Widgets: `dataset` and `overrides` (see _setup).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("evaluate")

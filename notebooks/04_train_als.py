# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: train_als
# MAGIC gold.interactions into an ALS model (saved under lakehouse.models_dir) and gold.als_user_factors /
# MAGIC gold.als_item_factors. With overrides cf.tune=true it first searches cf.tuning on the validation
# MAGIC split by NDCG@k.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/train_als.py`. Widgets: `dataset` and `overrides` (see _setup).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("train_als")

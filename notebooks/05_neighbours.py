# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: neighbours
# MAGIC Similar items and similar users into Delta: gold.item_neighbours with method `als_cosine`
# MAGIC (cosine of ALS item factors: "similar items") and `cooccurrence` (Jaccard or lift of the users
# MAGIC two items share: "bought together"), and gold.user_neighbours (cosine of ALS user factors).
# MAGIC Both scale by blocks, not a cross join: see recsys_spark/cf/neighbours.py.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/neighbours.py`. Widgets: `dataset` and `overrides` (see _setup).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("neighbours")

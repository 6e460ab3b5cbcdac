# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: end to end
# MAGIC Every stage on the synthetic shop (or the widget's data set): ingest -> quality -> features ->
# MAGIC search_index -> train_als -> neighbours -> recommend -> train_ranker -> train_deep -> hybrid ->
# MAGIC evaluate -> bandit, then a look at the quality report,
# MAGIC the gold tables and every model's metrics. Same code as `recsys-spark pipeline`.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("pipeline")

# COMMAND ----------

lake = lakehouse()
display(lake.read("silver", "quality_report").groupBy("table", "check").sum("rows"))
display(lake.read("gold", "interactions").where("cut = 'final'").limit(20))
display(lake.read("gold", "metrics").where("split = 'test'").groupBy("model").pivot("metric").avg("value"))

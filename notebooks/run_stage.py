# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: one stage
# MAGIC The notebook every task of the bundle's job runs (databricks.yml): the stage named by the `stage`
# MAGIC widget, with the same code as `spark-submit jobs/<stage>.py`.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

dbutils.widgets.text("stage", "ingest")
run_stage_from_widgets(dbutils.widgets.get("stage"))

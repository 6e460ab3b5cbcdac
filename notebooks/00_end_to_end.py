# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: end to end
# MAGIC ingest -> quality -> features on the synthetic shop (or the widget's data set), then a look at
# MAGIC the quality report and the gold tables. Same code as `recsys-spark pipeline`.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("pipeline")

# COMMAND ----------

from recsys_spark.config import load_config
from recsys_spark.lakehouse import Lakehouse

lake = Lakehouse(spark, load_config(os.path.join(REPO, "conf", "databricks.yaml")))
display(lake.read("silver", "quality_report").groupBy("table", "check").sum("rows"))
display(lake.read("gold", "interactions").limit(20))

# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: hybrid lists, cold start and explanations
# MAGIC `hybrid` fuses the models' candidate lists (average, rank average, fitted weights, Borda, RRF
# MAGIC and a LightGBM ranker learnt on the tuning cut) into gold.recs, and writes gold.recs_final:
# MAGIC the configured method's lists with a share of new items and a reason per row, plus
# MAGIC gold.popularity_context for users with no history. Runs the same code as
# MAGIC `spark-submit jobs/hybrid.py`. Widget `user`: whose list to print (anyone, known or not).

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("hybrid")

# COMMAND ----------

dbutils.widgets.text("user", "")
cli("recommend", "--user", dbutils.widgets.get("user") or "someone-new", "--explain")

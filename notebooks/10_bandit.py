# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: bandits that learn from clicks
# MAGIC `bandit` lets random, popularity, epsilon-greedy, LinUCB and linear Thompson sampling each
# MAGIC play more rounds against the simulated shop (the synthetic shop's planted tastes, with a
# MAGIC position bias), continuing from the state the last run saved under models/bandit/, and, with
# MAGIC the `obd` dataset (or any config that sets bandit.logs.root), judges policies on logged
# MAGIC feedback: replay, IPW, SNIPW and doubly robust, with bootstrap 95% intervals.
# MAGIC Results: gold.bandit_metrics. Runs the same code as `spark-submit jobs/bandit.py`.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("bandit")

# COMMAND ----------

display(lakehouse().read("gold", "bandit_metrics").orderBy("evaluated_at", "model", "metric"))

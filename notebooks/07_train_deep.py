# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: train_deep
# MAGIC One deep model, picked with the `model` widget (two_tower, ncf, gru4rec, sasrec): training data
# MAGIC prepared in Spark and materialised as Parquet for Petastorm, trained by HorovodRunner
# MAGIC (`deep.launcher: databricks` in conf/databricks.yaml; `torch_distributor` is the alternative),
# MAGIC early-stopped on validation NDCG@k, then scored for every user into gold.recs and, to hybrid's depth,
# MAGIC gold.candidates (both cuts: `deep` in hybrid.models fuses it; run this before 11_hybrid), item embeddings into
# MAGIC gold.deep_item_embeddings, and exported (TorchScript + serving.json) under lakehouse.models_dir.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/train_deep.py --set deep.model=<model>`. Needs a Databricks
# MAGIC ML runtime (torch, horovod, sparkdl); _setup installs petastorm 0.13.1.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

dbutils.widgets.dropdown("model", "sasrec", ["two_tower", "ncf", "gru4rec", "sasrec"])

# COMMAND ----------

run_stage_from_widgets("train_deep", f"deep.model={dbutils.widgets.get('model')}")

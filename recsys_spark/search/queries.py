"""Queries with known answers, to learn the re-ranker from and to judge search by.

logged: the shop's search events (the query and the item the shopper then clicked, grade 2 when
they bought it in the same session). known_item: made from a held-out item's title by a seeded
procedure, so any data set with item text gets search queries: 2-4 of its title words in title
order, and in `typo_rate` of them one letter dropped from a word of five letters or more.
"""
from __future__ import annotations

import random

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.search.text import words

COLUMNS = ["user_idx", "query", "item_idx", "grade"]


def logged_queries(splits: DataFrame, split: str) -> DataFrame:
    """(user_idx, query, item_idx, grade) of one split's search events."""
    searches = splits.where((F.col("split") == split) & (F.col("event_type") == "search")
                            & F.col("query").isNotNull() & (F.trim("query") != ""))
    bought = (splits.where(F.col("event_type") == "purchase").select("session_id", "item_idx").distinct()
              .withColumn("bought", F.lit(True)))
    return (searches.join(bought, ["session_id", "item_idx"], "left")
            .select("user_idx", "query", "item_idx",
                    F.when(F.col("bought"), 2).otherwise(1).alias("grade")))


def known_item_query(title: str, seed: int, user: int, item: int, typo_rate: float) -> str | None:
    """2-4 title words in title order, maybe with a typo; None for a title with no words."""
    rng = random.Random(f"{seed}:{user}:{item}")
    ws = list(dict.fromkeys(words(title)))
    if not ws:
        return None
    n = min(len(ws), rng.randint(2, 4))
    picked = [ws[i] for i in sorted(rng.sample(range(len(ws)), n))]
    long = [i for i, w in enumerate(picked) if len(w) >= 5]
    if long and rng.random() < typo_rate:
        i = rng.choice(long)
        at = rng.randrange(1, len(picked[i]))
        picked[i] = picked[i][:at] + picked[i][at + 1:]
    return " ".join(picked)


def known_item_queries(pairs: DataFrame, item_text: DataFrame, seed: int, typo_rate: float = 0.2,
                       max_queries: int = 5000) -> pd.DataFrame:
    """One query per (user, held-out item) pair, for at most `max_queries` pairs (a seeded sample)."""
    sample = (pairs.join(item_text.select("item_idx", "title"), "item_idx")
              .withColumn("_o", F.xxhash64(F.lit(seed), "user_idx", "item_idx")).orderBy("_o").limit(max_queries)
              .select("user_idx", "item_idx", "title").toPandas())
    sample["query"] = [known_item_query(t, seed, u, i, typo_rate)
                       for u, i, t in zip(sample["user_idx"], sample["item_idx"], sample["title"], strict=True)]
    sample["grade"] = 1
    return sample.dropna(subset=["query"])[COLUMNS].reset_index(drop=True)

"""A user's taste as the confidence-weighted mean of the text embeddings of what they had
(confidence already decays with age), scored against every item's embedding; and each item's
nearest items by text. Both come from the blocked top-K of cf.topk, never a cross join."""
from __future__ import annotations

from pyspark.ml.functions import array_to_vector, vector_to_array
from pyspark.ml.stat import Summarizer
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.cf.neighbours import factor_neighbours
from recsys_spark.cf.topk import top_k_for_all_users
from recsys_spark.config import TopKConf


def as_factors(embeddings: DataFrame) -> DataFrame:
    """(item_idx, embedding) -> (id, features), the shape the top-K code takes."""
    return embeddings.select(F.col("item_idx").alias("id"), F.col("embedding").alias("features"))


def user_profiles(interactions: DataFrame, embeddings: DataFrame) -> DataFrame:
    """(id, features): per user, the weighted mean embedding of their items (Summarizer, in the JVM)."""
    vectors = embeddings.select("item_idx", array_to_vector("embedding").alias("v"))
    return (interactions.join(vectors, "item_idx").groupBy("user_idx")
            .agg(Summarizer.mean(F.col("v"), F.col("confidence")).alias("mean"))
            .select(F.col("user_idx").alias("id"), vector_to_array("mean", "float32").alias("features")))


def content_recs(interactions: DataFrame, embeddings: DataFrame, k: int, conf: TopKConf,
                 among: DataFrame | None = None) -> DataFrame:
    """Top-k unseen items per user by cosine to their profile; every item can be recommended, or
    only those in `among` (item_idx)."""
    items = embeddings if among is None else embeddings.join(among.select("item_idx"), "item_idx")
    return top_k_for_all_users(user_profiles(interactions, embeddings), as_factors(items), k,
                               interactions.select("user_idx", "item_idx"), conf)


def content_neighbours(embeddings: DataFrame, n: int, conf: TopKConf) -> DataFrame:
    """Each item's n nearest items by text, interactions or not."""
    return factor_neighbours(as_factors(embeddings), "item_idx", n, conf)

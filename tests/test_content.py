"""Content-based recommendations: a known weighted profile, items nobody has touched yet getting
neighbours and places in lists, and planted category tastes found from item text alone."""
from __future__ import annotations

import pytest

from recsys_spark.config import TopKConf
from recsys_spark.content.recs import content_neighbours, content_recs, user_profiles
from recsys_spark.data.synthetic import user_tastes, vocabulary
from recsys_spark.pipeline.cf import history


def test_profile_is_the_confidence_weighted_mean(spark):
    interactions = spark.createDataFrame([(1, 10, 3.0), (1, 11, 1.0), (2, 11, 2.0)],
                                         "user_idx int, item_idx int, confidence double")
    embeddings = spark.createDataFrame([(10, [1.0, 0.0]), (11, [0.0, 1.0]), (12, [0.6, 0.8])],
                                       "item_idx int, embedding array<float>")
    profiles = {r["id"]: r["features"] for r in user_profiles(interactions, embeddings).collect()}
    assert profiles[1] == pytest.approx([0.75, 0.25]) and profiles[2] == pytest.approx([0.0, 1.0])
    recs = content_recs(interactions, embeddings, 2, TopKConf()).collect()
    recs = {(r["user_idx"], r["rank"]): r["item_idx"] for r in recs}
    assert recs == {(1, 1): 12, (2, 1): 12, (2, 2): 10}  # seen items never come back


def test_items_without_interactions_get_neighbours_and_places_in_lists(spark):
    """Item 12 has no interactions: it is recommended above and has text neighbours here."""
    embeddings = spark.createDataFrame([(10, [1.0, 0.0]), (11, [0.0, 1.0]), (12, [0.6, 0.8])],
                                       "item_idx int, embedding array<float>")
    near = content_neighbours(embeddings, 2, TopKConf()).collect()
    near = {(r["item_idx"], r["rank"]): r["neighbour_idx"] for r in near}
    assert near[(12, 1)] == 11 and near[(12, 2)] == 10 and near[(10, 1)] == 12


def test_content_lists_follow_planted_category_tastes(shop):
    """Item text is the only input: categories have their own words, so a user's profile points at
    the categories they favour (2 of 8 would be chance)."""
    conf = shop.cfg.source.synthetic
    users = shop.lake.read("gold", "id_map_users").join(user_tastes(shop.spark, conf), "user_id")
    items = shop.lake.read("gold", "item_text").select("item_idx", "category")
    index = {words[0]: c for c, words in enumerate(vocabulary(conf.seed, conf.n_categories))}
    active = history(shop, "interactions").groupBy("user_idx").count().where("count >= 10").select("user_idx")
    recs = (shop.lake.read("gold", "recs").where("model = 'content' AND NOT filled").join(active, "user_idx")
            .join(items, "item_idx").join(users, "user_idx").collect())
    liked = sum(index[r["category"]] in (r["fav"], r["second"]) for r in recs)
    assert len(recs) > 500 and liked / len(recs) > 0.6, liked / max(len(recs), 1)

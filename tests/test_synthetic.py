"""The generator is deterministic and plants the structure models are meant to find."""
import pytest
from pyspark.sql import functions as F

from recsys_spark.config import load_config
from recsys_spark.data.synthetic import (
    NOUN_SYNONYMS,
    SYNONYMS,
    generate,
    generate_clean_events,
    user_tastes,
    vocabulary,
)

OVERRIDES = ["source.synthetic.n_events=12000", "source.synthetic.n_users=300", "source.synthetic.n_items=400",
             "source.synthetic.n_categories=8"]


@pytest.fixture(scope="module")
def conf():
    return load_config(None, overrides=OVERRIDES).source.synthetic


@pytest.fixture(scope="module")
def clean(spark, conf):
    return generate_clean_events(spark, conf).cache()


def test_same_seed_same_rows_whatever_the_partitioning(spark, conf):
    a = generate(spark, conf)["events"].cache()   # two separate generations, each compared twice
    b = generate(spark, conf)["events"].repartition(7).cache()
    assert a.count() == b.count()
    assert a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0
    other = load_config(None, overrides=[*OVERRIDES, "source.synthetic.seed=7"]).source.synthetic
    assert generate(spark, other)["events"].exceptAll(a).count() > 0.9 * a.count()


def test_size_follows_config(clean):
    assert 0.85 * 12000 < clean.count() < 1.15 * 12000


def test_funnel_narrows(clean):
    counts = {r[0]: r[1] for r in clean.groupBy("event_type").count().collect()}
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > counts["rating"] > 0
    assert counts["search"] > 0


def test_purchases_follow_planted_tastes(spark, conf, clean):
    tastes = user_tastes(spark, conf)
    cats = {i: w[0] for i, w in enumerate(vocabulary(conf.seed, conf.n_categories))}
    cat_of = F.element_at(F.array(*[F.lit(cats[i]) for i in range(len(cats))]), F.col("fav") + 1)
    items = generate(spark, conf)["items"].select("item_id", "category").distinct()
    bought = (clean.where("event_type = 'purchase'").join(items, "item_id").join(tastes, "user_id")
              .withColumn("fav_cat", cat_of))
    share = bought.where(F.col("category") == F.col("fav_cat")).count() / bought.count()
    # a session browses the favourite category 60% of the time and converts better there
    assert share > 0.65
    # ratings are higher for the favourite category than elsewhere
    rated = clean.where("event_type = 'rating'").join(items, "item_id").join(tastes, "user_id") \
        .withColumn("fav_cat", cat_of).withColumn("is_fav", F.col("category") == F.col("fav_cat"))
    means = {r[0]: r[1] for r in rated.groupBy("is_fav").agg(F.avg(F.col("rating").cast("double"))).collect()}
    assert means[True] > means[False] + 1.0


def test_popularity_is_heavy_tailed(clean):
    views = [r[1] for r in clean.where("event_type = 'view'").groupBy("item_id").count()
             .orderBy(F.desc("count")).collect()]
    top = sum(views[: len(views) // 10])
    assert top / sum(views) > 0.3  # top 10% of items take over 30% of views


def test_search_queries_come_from_the_wanted_items_text(spark, conf, clean):
    """Every query word is a word of the item's title or category, its synonym, or one of them
    with one letter dropped; every kind of query occurs."""
    items = generate(spark, conf)["items"].select("item_id", "title", "category").distinct()
    searches = clean.where("event_type = 'search'").join(items, "item_id").collect()
    synonyms = {**SYNONYMS, **NOUN_SYNONYMS}
    kinds = set()
    for row in searches:
        title = row["title"].lower().split()
        words = set(title) | {synonyms[w] for w in title if w in synonyms} | {row["category"]}
        typos = {w[:i] + w[i + 1:] for w in words for i in range(1, len(w))}
        query = row["query"].split()
        assert len(query) == 2 and set(query) <= words | typos, (row["query"], title)
        kinds.add("specific" if query[0] == title[2] else "generic" if query[0] == title[1]
                  else "synonyms" if query[0] == SYNONYMS[title[1]] else "category")
    assert kinds == {"specific", "generic", "synonyms", "category"}
    assert sum(not set(r["query"].split()) <= set(r["title"].lower().split()) | {r["category"]} for r in searches)


def test_weekends_are_busier(clean):
    per_day = clean.groupBy(F.to_date("ts").alias("d")).count().withColumn("weekend", F.dayofweek("d").isin(1, 7))
    avg = {r[0]: r[1] for r in per_day.groupBy("weekend").agg(F.avg("count")).collect()}
    assert avg[True] > 1.1 * avg[False]


def test_bad_rows_are_planted_at_their_rates(spark, conf):
    events = generate(spark, conf)["events"]
    n = events.count()
    assert events.where(F.col("user_id").isNull()).count() == pytest.approx(0.002 * n, rel=0.5)
    assert events.where(F.col("item_id").startswith("x")).count() == pytest.approx(0.002 * n, rel=0.5)
    assert events.where(F.col("ts").startswith("2099")).count() > 0
    assert events.where(F.col("ts").startswith("1970")).count() > 0
    assert events.where(F.col("price").startswith("-")).count() > 0
    assert events.where(F.col("price") == "twelve,50").count() > 0
    assert n - events.distinct().count() == pytest.approx(0.005 * n, rel=0.5)

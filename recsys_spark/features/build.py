"""Gold features from training events only: interactions, user, item and context features,
and fixed-length item sequences."""
from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.config import FeaturesConf


def with_context(events: DataFrame, holidays: list[str]) -> DataFrame:
    """Hour, weekday (1 = Sunday), season and holiday flag of each event."""
    month = F.month("ts")
    season = (F.when(month.isin(12, 1, 2), "winter").when(month.isin(3, 4, 5), "spring")
              .when(month.isin(6, 7, 8), "summer").otherwise("autumn"))
    return events.withColumns({
        "hour": F.hour("ts"),
        "weekday": F.dayofweek("ts"),
        "season": season,
        "is_holiday": F.date_format("ts", "MM-dd").isin(*holidays),
    })


def _weight(conf: FeaturesConf) -> Column:
    expr = F.lit(0.0)
    for event_type, w in conf.event_weights.items():
        expr = F.when(F.col("event_type") == event_type, F.lit(w)).otherwise(expr)
    return expr


def _days_before(end: datetime, col: str) -> Column:
    return (F.unix_timestamp(F.lit(end)) - F.unix_timestamp(col)) / 86400.0


def interactions(train: DataFrame, conf: FeaturesConf, end: datetime) -> DataFrame:
    """Implicit confidence per (user, item): event weights, halved every `half_life_days`
    before the end of training. The last rating is kept for explicit models."""
    decay = F.pow(F.lit(0.5), _days_before(end, "ts") / conf.half_life_days)
    decayed = train.withColumn("_w", _weight(conf) * decay)
    return decayed.where(F.col("_w") > 0).groupBy("user_idx", "item_idx").agg(
        F.round(F.sum("_w"), 6).alias("confidence"),
        F.count("*").alias("n_events"),
        F.max("ts").alias("last_ts"),
        F.max_by(F.col("rating"), F.when(F.col("rating").isNotNull(), F.col("ts"))).alias("rating"),
        F.max((F.col("event_type") == "purchase").cast("int")).cast("boolean").alias("purchased"),
    )


def _counts(types: list[str]) -> list[Column]:
    return [F.sum((F.col("event_type") == t).cast("int")).alias(f"n_{t}") for t in types]


def item_features(train: DataFrame, items: DataFrame, conf: FeaturesConf, end: datetime) -> DataFrame:
    """Catalog attributes for every item, behaviour from training only; price level is the
    item's price quantile within its category."""
    types = list(conf.event_weights)
    stats = train.groupBy("item_idx").agg(
        F.count("*").alias("n_events"), F.countDistinct("user_idx").alias("n_users"),
        *_counts(types), F.max("ts").alias("last_ts"))
    level = (F.percent_rank().over(Window.partitionBy("category").orderBy("price")) * conf.price_levels)
    text = F.lower(F.concat_ws(" ", "title", "description", "category", "brand"))
    return (items.withColumns({"price_level": F.least(level.cast("int"), F.lit(conf.price_levels - 1)),
                               "text": text})
            .join(stats, "item_idx", "left")
            .fillna(0, subset=["n_events", "n_users", *[f"n_{t}" for t in types]])
            .withColumn("recency_days", _days_before(end, "last_ts")))


def user_features(train: DataFrame, users: DataFrame, items: DataFrame, conf: FeaturesConf,
                  end: datetime) -> DataFrame:
    """Activity counts, recency, price level and category shares (share, category), largest first."""
    types = list(conf.event_weights)
    ev = train.join(items.select("item_idx", "category", "price_level"), "item_idx", "left")
    stats = ev.groupBy("user_idx").agg(
        F.count("*").alias("n_events"), F.countDistinct("item_idx").alias("n_items"),
        *_counts(types),
        F.min("ts").alias("first_ts"), F.max("ts").alias("last_ts"),
        F.avg("price").alias("avg_price"), F.avg("price_level").alias("price_level"))
    per_cat = ev.groupBy("user_idx", "category").count()
    shares = per_cat.withColumn("share", F.col("count") / F.sum("count").over(Window.partitionBy("user_idx")))
    cats = shares.groupBy("user_idx").agg(
        F.sort_array(F.collect_list(F.struct(F.col("share").alias("share"), F.col("category").alias("category"))),
                     asc=False).alias("category_shares"))
    return (stats.join(cats, "user_idx", "left").join(users, "user_idx", "left")
            .withColumn("recency_days", _days_before(end, "last_ts")))


def sequences(train: DataFrame, conf: FeaturesConf) -> DataFrame:
    """The last `sequence_length` items per user in time order, left-padded with 0."""
    n = conf.sequence_length
    ev = train.where(F.col("event_type").isin(*conf.sequence_event_types))
    seq = ev.groupBy("user_idx").agg(
        F.sort_array(F.collect_list(F.struct("ts", "item_idx"))).alias("_s"), F.max("ts").alias("last_ts"))
    items = F.transform(F.col("_s"), lambda s: s["item_idx"])
    last = F.slice(items, F.greatest(F.size(items) - n + 1, F.lit(1)), n)
    padded = F.concat(F.array_repeat(F.lit(0), n - F.size(last)), last)
    return seq.select("user_idx", padded.alias("items"), F.size(last).alias("length"), "last_ts")

"""The built-in synthetic shop: a deterministic, Spark-native generator with planted structure.

Every random draw is a hash of (seed, purpose, row keys), so the same seed gives the same rows
whatever the partitioning. Users have a favourite and a second category; a session browses
one category and walks a view -> click -> add_to_cart -> purchase -> rating funnel whose
probabilities grow with the user's affinity for the item, so models have tastes to find.
Popularity is power-law over items and users; days follow weekly and yearly seasons with
holiday peaks. Bad rows are planted at configured rates. All columns are raw strings, as a
real export would be.
"""
from __future__ import annotations

import math
import random
from datetime import date, timedelta
from itertools import accumulate

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_spark.config import SyntheticConf

CATEGORIES = [
    "electronics", "books", "kitchen", "garden", "toys", "fashion", "sports", "beauty", "music",
    "office", "pets", "tools", "grocery", "baby", "auto", "games", "health", "home", "outdoor", "art",
]
# Adjectives and product nouns are shared by every category, each with a synonym a shopper may
# type instead: the words lexical search misses and a sentence-embedding model can still match.
SYNONYMS = {
    "classic": "traditional", "premium": "luxury", "compact": "small", "deluxe": "fancy", "eco": "green",
    "smart": "intelligent", "vintage": "retro", "pro": "professional", "mini": "tiny", "ultra": "extreme",
}
ADJECTIVES = list(SYNONYMS)
NOUN_SYNONYMS = {
    "lamp": "light", "bag": "sack", "box": "container", "mat": "rug", "bottle": "flask", "chair": "seat",
    "cup": "mug", "jacket": "coat", "shoes": "sneakers", "clock": "watch",
}
NOUNS = list(NOUN_SYNONYMS)
# A search session's query, built from the wanted item's title: the share of each kind, in order.
QUERY_KINDS = {"specific": 0.35, "generic": 0.3, "synonyms": 0.2, "category": 0.15}
TYPO_RATE = 0.2          # queries with one letter dropped from a word of five letters or more
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
REGIONS = ["north", "south", "east", "west", "central"]
FUNNEL = ["view", "click", "add_to_cart", "purchase", "rating"]
MAX_VIEWS = 6            # views per session: 1..MAX_VIEWS, uniform
SEARCH_RATE = 0.3        # sessions that start with a search
CHOICE = (0.6, 0.25)     # a session browses the favourite, the second, else a random category
AFFINITY = (1.0, 0.6, 0.1)
RATING_RATE = 0.4
HOLIDAYS = {(1, 1), (2, 14), (11, 28), (11, 29), (12, 24), (12, 25), (12, 26), (12, 31)}
DAY_SLOTS = 4096


def _u(seed: int, purpose: str, *keys: Column) -> Column:
    """A uniform [0, 1) draw that depends only on the seed, the purpose and the row's keys."""
    h = F.xxhash64(F.lit(seed), F.lit(purpose), *keys)
    return F.pmod(h, F.lit(1 << 53)).cast("double") / float(1 << 53)


def _pick(options: list, u: Column) -> Column:
    return F.element_at(F.array(*[F.lit(o) for o in options]), (u * len(options)).cast("int") + 1)


def funnel_probs(a: Column | float) -> tuple:
    """click, cart-given-click and purchase-given-cart probabilities at affinity a."""
    return 0.15 + 0.5 * a, 0.1 + 0.4 * a, 0.3 + 0.5 * a


def expected_events_per_session() -> float:
    """Sizes the session count so that about n_events come out."""
    share = (CHOICE[0], CHOICE[1], 1 - CHOICE[0] - CHOICE[1])
    per_view = 0.0
    for s, a in zip(share, AFFINITY, strict=True):
        pc, pk, pp = funnel_probs(a)
        per_view += s * (1 + pc * (1 + pk * (1 + pp * (1 + RATING_RATE))))
    return (MAX_VIEWS + 1) / 2 * per_view + SEARCH_RATE


def vocabulary(seed: int, n_categories: int) -> list[list[str]]:
    """Per-category words, made of syllables so each category's text is distinct."""
    rng = random.Random(seed)
    syll = ["ka", "lo", "mi", "ren", "to", "sa", "vi", "no", "ra", "pe", "lu", "zo", "fi", "da", "mo"]
    vocab = []
    for c in range(n_categories):
        base = CATEGORIES[c % len(CATEGORIES)] + ("" if c < len(CATEGORIES) else str(c))
        words = {base}
        while len(words) < 16:
            words.add("".join(rng.choice(syll) for _ in range(rng.randint(2, 3))))
        vocab.append(sorted(words))
    return vocab


def day_weights(start: date, days: int) -> list[float]:
    """Weekend and holiday peaks over a yearly wave."""
    out = []
    for d in range(days):
        day = start + timedelta(days=d)
        w = (1.3 if day.weekday() >= 5 else 1.0) * (1 + 0.2 * math.sin(2 * math.pi * day.timetuple().tm_yday / 365))
        out.append(w * (2.0 if (day.month, day.day) in HOLIDAYS else 1.0))
    return out


def _int_array(values: list[int]) -> Column:
    """An array literal that Spark parses in one call: an F.lit per element is a py4j round trip
    each, and the 4,096 day slots cost 4 s of driver time per generation that way."""
    return F.expr(f"array({', '.join(map(str, values))})")


def _slots(weights: list[float], n: int) -> list[int]:
    """Index slots whose frequency follows the weights: draw a slot uniformly to sample."""
    total, acc, out, i = sum(weights), 0.0, [], 0
    for s in range(n):
        target = (s + 0.5) / n * total
        while acc + weights[i] < target:
            acc += weights[i]
            i += 1
        out.append(i)
    return out


def generate_users(spark: SparkSession, conf: SyntheticConf) -> DataFrame:
    seed, c = conf.seed, conf.n_categories
    uid = F.col("id")
    return spark.range(conf.n_users).select(
        F.format_string("u%07d", uid).alias("user_id"),
        _pick(AGE_BANDS, _u(seed, "age", uid)).alias("age_band"),
        _pick(["f", "m", "x"], _u(seed, "gender", uid)).alias("gender"),
        _pick(REGIONS, _u(seed, "region", uid)).alias("region"),
        (_u(seed, "fav", uid) * c).cast("int").alias("fav"),
        (_u(seed, "second", uid) * (c - 1)).cast("int").alias("second_offset"),
    ).withColumn("second", (F.col("fav") + 1 + F.col("second_offset")) % c).drop("second_offset")


def user_tastes(spark: SparkSession, conf: SyntheticConf) -> DataFrame:
    """The planted truth: each user's favourite and second category (ints)."""
    return generate_users(spark, conf).select("user_id", "fav", "second")


def generate_items(spark: SparkSession, conf: SyntheticConf) -> DataFrame:
    """Item i has category i % C and popularity rank i // C within it."""
    seed, c = conf.seed, conf.n_categories
    vocab = vocabulary(seed, c)
    vocab_col = F.array(*[F.array(*[F.lit(w) for w in words]) for words in vocab])
    iid = F.col("id")
    cat = (iid % c).cast("int")
    words = F.element_at(vocab_col, cat + 1)

    def word(purpose: str) -> Column:
        return F.element_at(words, (_u(seed, purpose, iid) * 16).cast("int") + 1)

    base_price = 5.0 + 10.0 * (cat % 7)
    brand = F.format_string("brand%02d_%d", cat, (_u(seed, "brand", iid) * 6).cast("int"))
    return spark.range(conf.n_items).select(
        F.format_string("i%06d", iid).alias("item_id"),
        F.concat_ws(" ", brand, _pick(ADJECTIVES, _u(seed, "adj", iid)), word("t1"), word("t2"),
                    _pick(NOUNS, _u(seed, "noun", iid))).alias("title"),
        F.concat_ws(" ", *[word(f"d{k}") for k in range(6)],
                    _pick(ADJECTIVES, _u(seed, "adj2", iid))).alias("description"),
        F.element_at(F.array(*[F.lit(w[0]) for w in vocab]), cat + 1).alias("category"),
        brand.alias("brand"),
        F.round(base_price * F.pow(0.5 + 1.5 * _u(seed, "price", iid), 2), 2).alias("price"),
        (_u(seed, "stock", iid) * 100).cast("int").alias("stock"),
    )


def _item_in_category(conf: SyntheticConf, cat: Column, u: Column) -> Column:
    """Power-law pick: rank = floor(n * u^3) has density ~ rank^(-2/3)."""
    per_cat = max(conf.n_items // conf.n_categories, 1)
    rank = F.least((F.pow(u, 3) * per_cat).cast("long"), F.lit(per_cat - 1))
    return rank * conf.n_categories + cat


def generate_clean_events(spark: SparkSession, conf: SyntheticConf) -> DataFrame:
    seed, c = conf.seed, conf.n_categories
    n_sessions = max(int(conf.n_events / expected_events_per_session()), 1)
    start = date.fromisoformat(conf.start_date)
    days = _slots(day_weights(start, conf.days), DAY_SLOTS)
    hours = _slots([0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6, 1.6, 1.7, 1.9, 1.8, 1.6, 1.5,
                    1.5, 1.7, 2.0, 2.4, 2.6, 2.2, 1.4, 0.7], 256)
    users = generate_users(spark, conf).select("user_id", "fav", "second")
    items = generate_items(spark, conf).select("item_id", "title", "category", "price")
    sid = F.col("session")
    sessions = spark.range(n_sessions).withColumnRenamed("id", "session").select(
        sid,
        F.format_string("u%07d", F.least((F.pow(_u(seed, "user", sid), 1.5) * conf.n_users).cast("long"),
                                         F.lit(conf.n_users - 1))).alias("user_id"),
        (F.unix_timestamp(F.lit(conf.start_date), "yyyy-MM-dd")
         + F.element_at(_int_array(days), (_u(seed, "day", sid) * DAY_SLOTS).cast("int") + 1) * 86400
         + F.element_at(_int_array(hours), (_u(seed, "hour", sid) * 256).cast("int") + 1) * 3600
         + (_u(seed, "minute", sid) * 3000).cast("int")).alias("start"),
        (1 + _u(seed, "views", sid) * MAX_VIEWS).cast("int").alias("n_views"),
        (_u(seed, "search", sid) < SEARCH_RATE).alias("searched"),
        _u(seed, "choice", sid).alias("choice"),
        (_u(seed, "randcat", sid) * c).cast("int").alias("randcat"),
    ).join(users, "user_id")
    cat = (F.when(F.col("choice") < CHOICE[0], F.col("fav"))
           .when(F.col("choice") < CHOICE[0] + CHOICE[1], F.col("second")).otherwise(F.col("randcat")))
    affinity = (F.when(cat == F.col("fav"), AFFINITY[0]).when(cat == F.col("second"), AFFINITY[1])
                .otherwise(AFFINITY[2]))
    pos = F.col("pos")
    views = sessions.withColumns({"cat": cat, "affinity": affinity}).select(
        "*", F.explode(F.sequence(F.lit(0), F.col("n_views") - 1)).alias("pos"))
    item_idx = _item_in_category(conf, F.col("cat"), _u(seed, "item", sid, pos))
    pc, pk, pp = funnel_probs(F.col("affinity"))
    forced = F.col("searched") & (pos == 0)
    click = forced | (_u(seed, "click", sid, pos) < pc)
    cart = click & (_u(seed, "cart", sid, pos) < pk)
    buy = cart & (_u(seed, "buy", sid, pos) < pp)
    rate = buy & (_u(seed, "rate", sid, pos) < RATING_RATE)
    depth = 1 + click.cast("int") + cart.cast("int") + buy.cast("int") + rate.cast("int")
    views = views.withColumns({
        "item_id": F.format_string("i%06d", item_idx),
        "depth": depth,
    }).join(items, "item_id")
    stars = F.round(1.0 + 3 * F.col("affinity") + _u(seed, "stars", sid, pos) * 1.5)
    rating = F.least(F.lit(5), F.greatest(F.lit(1), stars))
    funnel = F.slice(F.array(*map(F.lit, FUNNEL)), 1, F.col("depth"))
    steps = views.select("*", F.posexplode(funnel).alias("step", "event_type"))
    ts = F.col("start") + pos * 90 + F.col("step") * 20
    events = steps.select(
        "user_id", "item_id", "event_type",
        F.from_unixtime(ts).alias("ts"),
        F.format_string("s%09d", sid).alias("session_id"),
        F.when(F.col("event_type").isin("add_to_cart", "purchase"),
               (1 + _u(seed, "qty", sid, pos) * 3).cast("int").cast("string")).alias("quantity"),
        F.format_string("%.2f", F.col("price")).alias("price"),
        F.when(F.col("event_type") == "rating", rating.cast("int").cast("string")).alias("rating"),
        F.lit(None).cast("string").alias("query"),
        F.when(F.col("event_type") == "rating",
               F.when(rating >= 4, F.lit("great value love it")).otherwise(F.lit("not what i hoped"))).alias("review"),
        sid.alias("_session"), pos.alias("_pos"), F.col("step").alias("_step"),
    )
    searches = views.where(F.col("searched") & (pos == 0)).select(
        "user_id", "item_id", F.lit("search").alias("event_type"),
        F.from_unixtime(F.col("start") - 15).alias("ts"),
        F.format_string("s%09d", sid).alias("session_id"),
        F.lit(None).cast("string").alias("quantity"),
        F.lit(None).cast("string").alias("price"),
        F.lit(None).cast("string").alias("rating"),
        search_query(seed, F.col("title"), F.col("category"), sid).alias("query"),
        F.lit(None).cast("string").alias("review"),
        sid.alias("_session"), F.lit(-1).alias("_pos"), F.lit(0).alias("_step"),
    )
    return events.unionByName(searches)


def search_query(seed: int, title: Column, category: Column, session: Column) -> Column:
    """What a shopper types for the title's item (brand adjective word word noun): its two rare
    words, its adjective and noun (which match items of every category, so the shopper's tastes
    decide), their synonyms, or its category and noun; some with a typo."""
    words = F.split(title, " ")
    adj, w1, w2, noun = (F.element_at(words, i) for i in (2, 3, 4, 5))

    def syn(table: dict[str, str], w: Column) -> Column:
        return F.element_at(F.create_map(*[F.lit(x) for kv in table.items() for x in kv]), w)

    u = _u(seed, "query", session)
    bounds = list(accumulate(QUERY_KINDS.values()))
    first = (F.when(u < bounds[0], w1).when(u < bounds[1], adj).when(u < bounds[2], syn(SYNONYMS, adj))
             .otherwise(category))
    second = F.when(u < bounds[0], w2).when(u < bounds[2], F.when(u < bounds[1], noun)
                                                                .otherwise(syn(NOUN_SYNONYMS, noun))).otherwise(noun)
    at = (2 + _u(seed, "typo_at", session) * (F.length(second) - 1)).cast("int")  # 2..len
    typo = F.concat(second.substr(F.lit(1), at - 1), second.substr(at + 1, F.length(second)))
    second = F.when((_u(seed, "typo", session) < TYPO_RATE) & (F.length(second) >= 5), typo).otherwise(second)
    return F.lower(F.concat_ws(" ", first, second))


def _plant(df: DataFrame, seed: int, rates: dict[str, float], corruptions: dict[str, dict[str, Column]],
           keys: list[Column]) -> DataFrame:
    """Corrupt disjoint slices of rows, one kind each, then add exact duplicates."""
    df = df.withColumns({"_bad": _u(seed, "bad", *keys), "_dup": _u(seed, "dup", *keys)})
    lo = 0.0
    for kind, changes in corruptions.items():
        hit = (F.col("_bad") >= lo) & (F.col("_bad") < lo + rates[kind])
        df = df.withColumns({col: F.when(hit, value).otherwise(F.col(col)) for col, value in changes.items()})
        lo += rates[kind]
    return df.unionByName(df.where(F.col("_dup") < rates["duplicate"])).drop("_bad", "_dup")


def generate(spark: SparkSession, conf: SyntheticConf) -> dict[str, DataFrame]:
    """The three raw tables (events, items, users), bad rows included, all columns strings."""
    rates = conf.bad_rows.model_dump()
    seed = conf.seed
    events = _plant(
        generate_clean_events(spark, conf), seed, rates,
        {
            "null_id": {"user_id": F.lit(None).cast("string")},
            "unknown_item": {"item_id": F.concat(F.lit("x"), F.col("item_id"))},
            "future_timestamp": {"ts": F.regexp_replace("ts", "^20..", "2099")},
            "ancient_timestamp": {"ts": F.regexp_replace("ts", "^20..", "1970")},
            "negative_value": {"price": F.concat(F.lit("-"), F.col("price"))},
            "unparseable": {"price": F.lit("twelve,50")},
        },
        [F.col("_session"), F.col("_pos"), F.col("_step")],
    ).drop("_session", "_pos", "_step")
    items = generate_items(spark, conf)
    items = _plant(
        items.withColumns({"price": F.format_string("%.2f", "price"), "stock": F.col("stock").cast("string")}),
        seed, rates,
        {"null_id": {"item_id": F.lit(None).cast("string")},
         "negative_value": {"price": F.concat(F.lit("-"), F.col("price"))},
         "unparseable": {"stock": F.lit("many")}},
        [F.col("item_id")],
    )
    users = _plant(generate_users(spark, conf).drop("fav", "second"), seed, rates,
                   {"null_id": {"user_id": F.lit(None).cast("string")}}, [F.col("user_id")])
    return {"events": events, "items": items, "users": users}

"""Validation as pure DataFrame transforms.

Each rule adds nothing but a reason: `_reason` holds the first rule a row fails, null when it
passes. A row is then either typed and normalised (silver) or kept raw with its reason
(quarantine), so every bronze row is accounted for.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from recsys_spark.config import QualityConf

META = ["_batch_id", "_source", "_ingested_at"]


@dataclass(frozen=True)
class TableRules:
    """What a raw table must satisfy: required fields, numeric types and their ranges, the key."""

    key: list[str]
    required: list[str]
    numeric: dict[str, str] = field(default_factory=dict)
    timestamp: str | None = None
    text: list[str] = field(default_factory=list)


EVENTS = TableRules(
    key=[],  # events' key comes from config (quality.event_key)
    required=["user_id", "item_id", "event_type", "ts"],
    numeric={"quantity": "int", "price": "double", "rating": "double"},
    timestamp="ts",
    text=["query", "review"],
)
ITEMS = TableRules(key=["item_id"], required=["item_id"], numeric={"price": "double", "stock": "int"},
                   text=["title", "description", "category", "brand"])
USERS = TableRules(key=["user_id"], required=["user_id"], text=["age_band", "gender", "region"])


def _blank(c: Column) -> Column:
    return c.isNull() | (F.trim(c) == "")


def parse_timestamp(c: Column, formats: list[str]) -> Column:
    """Any of the configured formats, or epoch seconds."""
    parsed = [F.try_to_timestamp(c, F.lit(f)) for f in formats]
    epoch = F.when(c.rlike(r"^\d{9,10}$"), F.timestamp_seconds(c.cast("long")))
    return F.coalesce(*parsed, epoch)


def _clean_text(c: Column) -> Column:
    return F.nullif(F.trim(F.regexp_replace(c, r"\s+", " ")), F.lit(""))


def range_checks(conf: QualityConf) -> dict[str, Column]:
    """reason -> condition under which a typed value is out of range (null values pass)."""
    now = F.current_timestamp()
    return {
        "timestamp_out_of_range": (F.col("_t_ts") < F.to_timestamp(F.lit(conf.min_timestamp)))
        | (F.col("_t_ts") > now + F.make_dt_interval(F.lit(conf.max_future_days))),
        "out_of_range:price": F.col("_t_price") < 0,
        "out_of_range:quantity": (F.col("_t_quantity") < 1) | (F.col("_t_quantity") > conf.max_quantity),
        "out_of_range:rating": (F.col("_t_rating") < conf.rating_min) | (F.col("_t_rating") > conf.rating_max),
        "out_of_range:stock": F.col("_t_stock") < 0,
    }


def _typed(rules: TableRules, conf: QualityConf) -> dict[str, Column]:
    typed = {f"_t_{c}": F.trim(F.col(c)).cast(t) for c, t in rules.numeric.items()}
    if rules.timestamp:
        typed[f"_t_{rules.timestamp}"] = parse_timestamp(F.trim(F.col(rules.timestamp)), conf.timestamp_formats)
    return typed


def row_checks(columns: list[str], rules: TableRules, conf: QualityConf) -> list[tuple[str, Column]]:
    """(reason, failing condition) in the order they are tried; the typed `_t_` columns must exist."""
    typed = _typed(rules, conf)
    checks: list[tuple[str, Column]] = [(f"missing:{c}", _blank(F.col(c))) for c in rules.required]
    checks += [(f"unparseable:{c[3:]}", ~_blank(F.col(c[3:])) & F.col(c).isNull()) for c in typed]
    if "event_type" in rules.required:
        checks.append(("invalid_value:event_type", ~F.lower(F.trim(F.col("event_type"))).isin(*conf.event_types)))
    # a data set's own rules name the cause (a cancellation), so they go before generic ranges
    checks += [(rule.reason, F.coalesce(F.col(rule.column).rlike(rule.regex), F.lit(False)))
               for rule in conf.exclude if rule.column in columns]
    checks += [(reason, cond) for reason, cond in range_checks(conf).items() if _applies(reason, typed)]
    return checks


def check_rules(raw: DataFrame, rules: TableRules, conf: QualityConf) -> DataFrame:
    """Type the raw columns into `_t_<col>` and set `_reason` to the first failed row-level rule."""
    checks = row_checks(raw.columns, rules, conf)
    reason = F.coalesce(*[F.when(cond, F.lit(name)) for name, cond in checks])
    return raw.withColumns(_typed(rules, conf)).withColumn("_reason", reason)


def _applies(reason: str, typed: dict[str, Column]) -> bool:
    col = "ts" if reason.startswith("timestamp") else reason.split(":")[1]
    return f"_t_{col}" in typed


def mark_unknown(df: DataFrame, column: str, known: DataFrame, reason: str) -> DataFrame:
    """Referential integrity: rows still valid whose `column` is not among `known` ids."""
    ids = known.select(F.col(column).alias("_known")).distinct().withColumn("_hit", F.lit(True))
    joined = df.join(ids, F.col(column) == F.col("_known"), "left")
    return joined.withColumn(
        "_reason", F.when(F.col("_reason").isNull() & F.col("_hit").isNull(), F.lit(reason)).otherwise(F.col("_reason"))
    ).drop("_known", "_hit")


def mark_duplicates(df: DataFrame, key: list[str], seen_keys: DataFrame | None = None) -> DataFrame:
    """Second and later rows of a key (exact copies included) and keys already in silver become
    'duplicate'. Which copy survives is fixed by ordering on every column, so re-runs agree."""
    key_col = F.sha2(F.to_json(F.struct(*[F.col(k) for k in key])), 256)
    df = df.withColumn("_key", key_col)
    order = [F.col(c).asc_nulls_last() for c in df.columns if c not in ("_ingested_at", "_reason")]
    w = Window.partitionBy("_key").orderBy(F.col("_reason").isNotNull(), *order)
    df = df.withColumn("_rank", F.row_number().over(w))
    dup = F.col("_rank") > 1
    if seen_keys is not None:
        seen = seen_keys.select(F.col("_key").alias("_seen")).withColumn("_in_silver", F.lit(True))
        df = df.join(seen, F.col("_key") == F.col("_seen"), "left").drop("_seen")
        dup = dup | F.col("_in_silver").isNotNull()
    return df.withColumn(
        "_reason", F.when(F.col("_reason").isNull() & dup, F.lit("duplicate")).otherwise(F.col("_reason"))
    ).drop("_rank", "_in_silver")


def collision_candidates(silver: DataFrame, checked: DataFrame, key: list[str], ts: str = "ts") -> DataFrame:
    """The earlier silver rows a batch's keys can collide with. With the timestamp in the key, a
    duplicate lies inside the batch's time range, so only that range is read: Delta skips the files
    outside it by their min/max statistics, and a batch is not joined with the whole history."""
    if ts not in key:
        return silver
    lo, hi = checked.where(F.col("_reason").isNull()).agg(F.min(f"_t_{ts}"), F.max(f"_t_{ts}")).first()
    if lo is None:
        return silver.limit(0)
    return silver.where(F.col(ts).between(F.lit(lo), F.lit(hi)))


def split_valid(df: DataFrame, rules: TableRules, raw_columns: list[str]) -> tuple[DataFrame, DataFrame]:
    """(silver rows: typed and normalised, quarantine rows: raw values plus the reason)."""
    good = df.where(F.col("_reason").isNull())
    typed = {c: F.col(f"_t_{c}") for c in rules.numeric}
    if rules.timestamp:
        typed[rules.timestamp] = F.col(f"_t_{rules.timestamp}")
    for c in rules.text:
        typed[c] = _clean_text(F.col(c))
    if "event_type" in raw_columns:
        typed["event_type"] = F.lower(F.trim(F.col("event_type")))
    if "price" in typed:
        typed["price"] = F.round(typed["price"], 2)
    for c in rules.key + rules.required:
        if c not in typed and c != "event_type":
            typed[c] = F.trim(F.col(c))
    keep = [c for c in ("_key",) if c in df.columns]
    silver = good.select(*[typed.get(c, F.col(c)).alias(c) for c in raw_columns], *keep, *META)
    quarantine = df.where(F.col("_reason").isNotNull()).select(*raw_columns, *META, "_reason")
    return silver, quarantine

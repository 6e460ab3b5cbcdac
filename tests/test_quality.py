"""Every quality rule with the bad rows it must catch, through the real stage and Delta tables."""
import pytest
from pyspark.sql import functions as F

from recsys_spark.data.raw import RAW_COLUMNS, to_raw
from recsys_spark.lakehouse import with_ingest_metadata
from recsys_spark.pipeline import quality
from recsys_spark.quality.rules import collision_candidates

GOOD = {"user_id": "u1", "item_id": "i1", "event_type": "view", "ts": "2025-03-01 10:00:00",
        "session_id": "s1", "quantity": None, "price": "9.99", "rating": None, "query": None, "review": None}

# (changes to a good event, the reason it must be quarantined with)
BAD_EVENTS = [
    ({"user_id": None}, "missing:user_id"),
    ({"item_id": "  "}, "missing:item_id"),
    ({"event_type": None}, "missing:event_type"),
    ({"ts": None}, "missing:ts"),
    ({"ts": "first of march"}, "unparseable:ts"),
    ({"price": "twelve,50"}, "unparseable:price"),
    ({"quantity": "two", "event_type": "purchase"}, "unparseable:quantity"),
    ({"rating": "*****", "event_type": "rating"}, "unparseable:rating"),
    ({"event_type": "like"}, "invalid_value:event_type"),
    ({"ts": "2099-01-01 00:00:00"}, "timestamp_out_of_range"),
    ({"ts": "1999-12-31 23:59:59"}, "timestamp_out_of_range"),
    ({"price": "-1.00"}, "out_of_range:price"),
    ({"quantity": "-3", "event_type": "purchase"}, "out_of_range:quantity"),
    ({"quantity": "0", "event_type": "purchase"}, "out_of_range:quantity"),
    ({"rating": "7", "event_type": "rating"}, "out_of_range:rating"),
    ({"item_id": "i404"}, "unknown_item"),
    ({"user_id": "u404"}, "unknown_user"),
    ({"session_id": "C536379"}, "cancellation"),
]
GOOD_VARIANTS = [
    {"event_type": " VIEW "},                      # normalised to 'view'
    {"ts": "1740823200", "session_id": "s2"},      # epoch seconds
    {"ts": "2025-03-01T10:00:05", "item_id": "i2"},
    {"event_type": "rating", "rating": "4", "review": "  so   good "},
    {"event_type": "purchase", "quantity": "2", "price": "3.456"},
]


def put_bronze(ctx, table, rows, batch="b1"):
    df = ctx.spark.createDataFrame(rows, ", ".join(f"{c} string" for c in RAW_COLUMNS[table]))
    ctx.lake.append(with_ingest_metadata(to_raw(df, table), batch, "test"), "bronze", table)


def row(table, **values):
    return tuple(values.get(c) for c in RAW_COLUMNS[table])


@pytest.fixture(scope="module")
def ctx(make_module_ctx):
    ctx = make_module_ctx("quality.require_known_users=true",
                   "quality.exclude=[{column: session_id, regex: '^C', reason: cancellation}]")
    put_bronze(ctx, "items", [row("items", item_id="i1", title=" Red   Mug ", price="9.99", stock="3"),
                              row("items", item_id="i2", price="5", stock="1"),
                              row("items", item_id="i3", price="-2", stock="1"),
                              row("items", item_id="i4", price="cheap", stock="1"),
                              row("items", item_id="i5", price="1", stock="-1"),
                              row("items", item_id=None, price="1"),
                              row("items", item_id="i1", title=" Red   Mug ", price="9.99", stock="3")])
    put_bronze(ctx, "users", [row("users", user_id="u1"), row("users", user_id="u1"),
                              row("users", user_id="")])
    events = [row("events", **{**GOOD, **change}) for change, _ in BAD_EVENTS]
    events += [row("events", **GOOD), row("events", **GOOD)]          # an exact duplicate
    events += [row("events", **{**GOOD, "price": "8.00"})]            # same key, other price
    events += [row("events", **{**GOOD, **v}) for v in GOOD_VARIANTS]
    put_bronze(ctx, "events", events)
    quality.run(ctx)
    return ctx


def reasons(ctx, table):
    return sorted(r[0] for r in ctx.lake.read("quarantine", table).select("_reason").collect())


def test_each_event_rule_quarantines_its_row(ctx):
    expected = sorted([reason for _, reason in BAD_EVENTS] + ["duplicate", "duplicate"])
    assert reasons(ctx, "events") == expected


def test_items_and_users_rules(ctx):
    assert reasons(ctx, "items") == ["duplicate", "missing:item_id", "out_of_range:price", "out_of_range:stock",
                                     "unparseable:price"]
    assert reasons(ctx, "users") == ["duplicate", "missing:user_id"]


def test_silver_is_typed_and_normalised(ctx):
    silver = ctx.lake.read("silver", "events")
    assert silver.count() == 1 + len(GOOD_VARIANTS)
    assert dict(silver.dtypes)["ts"] == "timestamp" and dict(silver.dtypes)["price"] == "double"
    assert {r[0] for r in silver.select("event_type").collect()} == {"view", "rating", "purchase"}
    rating = silver.where("event_type = 'rating'").first()
    assert rating["review"] == "so good" and rating["rating"] == 4.0
    assert silver.where("event_type = 'purchase'").first()["price"] == 3.46
    assert silver.where("session_id = 's2'").first()["ts"].isoformat() == "2025-03-01T10:00:00"
    assert ctx.lake.read("silver", "items").where("item_id = 'i1'").first()["title"] == "Red Mug"


def test_nothing_is_lost_and_the_report_adds_up(ctx):
    for table in ("events", "items", "users"):
        bronze = ctx.lake.count("bronze", table)
        assert bronze == ctx.lake.count("silver", table) + ctx.lake.count("quarantine", table)
    report = ctx.lake.read("silver", "quality_report").where("table = 'events'")
    failed = report.where("check != 'accepted'").agg(F.sum("rows")).first()[0]
    accepted = report.where("check = 'accepted'").first()
    assert failed + accepted["rows"] == accepted["rows_in"] == ctx.lake.count("bronze", "events")
    # every check has its row, the ones that caught nothing included
    checks = {r["check"] for r in report.collect()}
    assert checks == {reason for _, reason in BAD_EVENTS} | {"duplicate", "accepted"}
    items = ctx.lake.read("silver", "quality_report").where("table = 'items' AND rows = 0").collect()
    assert [r["check"] for r in items] == ["unparseable:stock"]


def test_quarantine_keeps_raw_values(ctx):
    bad = ctx.lake.read("quarantine", "events").where("_reason = 'unparseable:price'").first()
    assert bad["price"] == "twelve,50" and bad["_batch_id"] == "b1"


def test_rerun_checks_nothing_twice(ctx):
    def versions():
        return {(layer, t): ctx.lake.version(layer, t) for layer in ("silver", "quarantine", "bronze")
                for t in ("events", "items", "users")}

    before = versions()
    quality.run(ctx)
    assert versions() == before


def test_second_batch_duplicates_of_silver_are_quarantined(ctx):
    put_bronze(ctx, "events", [row("events", **GOOD), row("events", **{**GOOD, "session_id": "s9"})], batch="b2")
    quality.run(ctx)
    b2 = ctx.lake.read("quarantine", "events").where("_batch_id = 'b2'").collect()
    assert [r["_reason"] for r in b2] == ["duplicate"]
    assert ctx.lake.read("silver", "events").where("_batch_id = 'b2'").count() == 1


def test_a_batch_is_checked_only_against_silver_rows_in_its_time_range(spark):
    silver = spark.createDataFrame([("2025-01-01 00:00:00",), ("2025-03-01 10:00:00",), ("2025-06-01 00:00:00",)],
                                   "ts string").withColumn("ts", F.to_timestamp("ts"))
    batch = spark.createDataFrame([("2025-02-01 00:00:00", None), ("2025-03-05 00:00:00", None),
                                   ("2025-12-01 00:00:00", "unparseable:price")], "t string, _reason string")
    checked = batch.withColumn("_t_ts", F.to_timestamp("t"))
    key = ["user_id", "ts"]
    got = [str(r["ts"]) for r in collision_candidates(silver, checked, key).collect()]
    assert got == ["2025-03-01 10:00:00"]                     # the rejected row widens nothing
    assert collision_candidates(silver, checked, ["user_id"]).count() == 3   # no time in the key: all
    assert collision_candidates(silver, checked.where("_reason IS NOT NULL"), key).count() == 0

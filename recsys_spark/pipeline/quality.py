"""quality: bronze -> silver + quarantine + silver.quality_report, for batches not yet checked.

Items and users first (events are checked against them). Every bronze row of a batch ends in
exactly one of silver or quarantine; the stage recounts the tables after writing and fails if
the counts do not add up.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.data.raw import RAW_COLUMNS
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once, utc_now
from recsys_spark.quality.rules import (
    EVENTS,
    ITEMS,
    USERS,
    TableRules,
    check_rules,
    collision_candidates,
    mark_duplicates,
    mark_unknown,
    row_checks,
    split_valid,
)

STAGE = "quality"
RULES = {"items": ITEMS, "users": USERS, "events": EVENTS}


class AccountingError(RuntimeError):
    """Bronze rows that did not end in exactly one of silver and quarantine, by count."""


def pending_batches(ctx: Context, table: str) -> list[str]:
    bronze = ctx.lake.read("bronze", table).select("_batch_id").distinct()
    if ctx.lake.exists("silver", "quality_report"):
        done = ctx.lake.read("silver", "quality_report").where(F.col("table") == table).select("_batch_id")
        bronze = bronze.join(done.distinct(), "_batch_id", "left_anti")
    return sorted(r[0] for r in bronze.collect())


def validate(ctx: Context, table: str, raw: DataFrame, batches: list[str]) -> DataFrame:
    """The raw rows with `_reason` set by every rule, joins and de-duplication included."""
    conf = ctx.cfg.quality
    rules = RULES[table]
    checked = check_rules(raw, rules, conf)
    if table == "events":
        seen = None
        if ctx.lake.exists("silver", "events"):  # bounded before the joins below, which its range needs not
            earlier = ctx.lake.read("silver", "events").where(~F.col("_batch_id").isin(batches))
            seen = collision_candidates(earlier, checked, conf.event_key, rules.timestamp)
        if conf.require_known_items:
            checked = mark_unknown(checked, "item_id", ctx.lake.read("silver", "items"), "unknown_item")
        if conf.require_known_users:
            checked = mark_unknown(checked, "user_id", ctx.lake.read("silver", "users"), "unknown_user")
        return mark_duplicates(checked, conf.event_key, seen)
    return mark_duplicates(checked, rules.key)


def report_rows(ctx: Context, table: str, rules: TableRules, counts: dict, batches: list[str],
                run_id: str) -> list[tuple]:
    """One row per batch and check: `rows` it caught (zero included), and an 'accepted' row
    with the rows that reached silver; `rows_in` is the batch's bronze rows."""
    names = [n for n, _ in row_checks(RAW_COLUMNS[table], rules, ctx.cfg.quality)]
    names += {"events": ["unknown_item", "unknown_user"]}.get(table, []) + ["duplicate"]
    now = utc_now()
    rows = []
    for b in batches:
        total = sum(n for (bb, _), n in counts.items() if bb == b)
        for name in names + ["accepted"]:
            caught = counts.get((b, None if name == "accepted" else name), 0)
            rows.append((run_id, b, table, name, total, caught, now))
    return rows


def check_table(ctx: Context, table: str, run_id: str) -> None:
    batches = pending_batches(ctx, table)
    if not batches:
        return
    rules = RULES[table]
    raw = ctx.lake.read("bronze", table).where(F.col("_batch_id").isin(batches))
    with ctx.progress.step(STAGE, f"check {table}") as step:
        checked = validate(ctx, table, raw, batches).persist()
        counts = {(r["_batch_id"], r["_reason"]): r["count"]
                  for r in checked.groupBy("_batch_id", "_reason").count().collect()}
        step.rows = sum(counts.values())
    bronze_n = raw.count()
    if step.rows != bronze_n:
        raise AccountingError(f"{table}: {bronze_n} bronze rows became {step.rows} checked rows")
    silver, quarantine = split_valid(checked, rules, RAW_COLUMNS[table])
    # Writes a re-run can repeat: silver items/users upsert by key, silver events and the
    # quarantine replace exactly the batches this run owns.
    owned = "_batch_id IN (" + ", ".join("'" + b.replace("'", "''") + "'" for b in batches) + ")"
    accepted = sum(n for (_, reason), n in counts.items() if reason is None)
    with ctx.progress.step(STAGE, f"silver.{table}") as step:
        if table == "events":
            ctx.lake.overwrite(silver, "silver", table, replace_where=owned)
        else:
            ctx.lake.merge(silver, "silver", table, rules.key)
        step.rows = accepted
    with ctx.progress.step(STAGE, f"quarantine.{table}") as step:
        ctx.lake.overwrite(quarantine.withColumn("_quality_run", F.lit(run_id)), "quarantine", table,
                           replace_where=owned)
        step.rows = bronze_n - accepted
    checked.unpersist()
    if table == "events":
        account_events(ctx, batches)
    write_report(ctx, report_rows(ctx, table, rules, counts, batches, run_id))


def write_report(ctx: Context, rows: list[tuple]) -> None:
    """Written last for each table: a batch counts as checked only once its rows are in place."""
    schema = ("run_id string, _batch_id string, table string, check string, rows_in long, rows long, "
              "checked_at timestamp")
    ctx.lake.append(ctx.spark.createDataFrame(rows, schema), "silver", "quality_report")


def account_events(ctx: Context, batches: list[str]) -> None:
    """Recount from the written tables: bronze = silver + quarantine, batch by batch."""
    def per_batch(layer: str) -> dict[str, int]:
        df = ctx.lake.read(layer, "events").where(F.col("_batch_id").isin(batches))
        return {r[0]: r[1] for r in df.groupBy("_batch_id").count().collect()}

    bronze, silver, quarantine = per_batch("bronze"), per_batch("silver"), per_batch("quarantine")
    for b in batches:
        s, q = silver.get(b, 0), quarantine.get(b, 0)
        if bronze.get(b, 0) != s + q:
            raise AccountingError(f"events batch {b}: bronze {bronze.get(b, 0)} != silver {s} + quarantine {q}")


def run(ctx: Context) -> None:
    run_once(ctx, STAGE, lambda run_id: _check(ctx, run_id))


def _check(ctx: Context, run_id: str) -> None:
    for table in ("items", "users", "events"):
        if ctx.lake.exists("bronze", table):
            check_table(ctx, table, run_id)

"""End to end on a tiny synthetic shop: accounting, idempotence, a second batch, the split."""
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from recsys_spark.config import SplitConf
from recsys_spark.features.idmap import extend_id_map
from recsys_spark.features.split import leave_last_out_split, make_split
from recsys_spark.pipeline import STAGES, TABLES, bandit_summary, metrics_summary, run_stage
from recsys_spark.pipeline.cf import history
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.maintain import RETENTION_CHECK
from recsys_spark.pipeline.runs import changed_reads, last_run
from tests.conftest import tiny_config


def run_all(ctx):
    for stage in ("ingest", "quality", "features"):
        run_stage(ctx, stage)


def versions(ctx):
    return {(layer, t): ctx.lake.version(layer, t) for layer, tables in TABLES.items() for t in tables}


@pytest.fixture
def ctx(shop):
    return shop


def test_builds_every_table_and_accounts_for_every_row(ctx):
    assert all(v is not None for v in versions(ctx).values())
    bronze, silver, quar = (ctx.lake.count(layer, "events") for layer in ("bronze", "silver", "quarantine"))
    assert bronze == silver + quar and quar > 0
    reasons = {r[0] for r in ctx.lake.read("quarantine", "events").select("_reason").distinct().collect()}
    assert {"duplicate", "missing:user_id", "unknown_item", "timestamp_out_of_range", "out_of_range:price",
            "unparseable:price"} <= reasons


def test_rerun_changes_nothing(ctx):
    before = versions(ctx)
    run_all(ctx)
    assert versions(ctx) == before  # no stage committed anything: same input, same tables


def test_a_stage_releases_what_it_cached_and_nothing_else(ctx, monkeypatch):
    """One session runs the whole pipeline: a stage's cached intermediates must not pile up, and
    frames cached outside it (another notebook's, on a shared cluster) must stay."""
    persisted = ctx.spark.sparkContext._jsc.getPersistentRDDs
    theirs = ctx.spark.range(3).cache()
    theirs.count()
    before, during = persisted().size(), []

    def probe(c: Context) -> None:
        ids = c.lake.read("gold", "id_map_users").select("user_id")
        assert extend_id_map(None, ids, "user_id", "user_idx").count() == ids.count()
        during.append(persisted().size())  # the distinct ids, read by sort, offsets and numbering

    monkeypatch.setitem(STAGES, "probe", probe)
    run_stage(ctx, "probe")
    assert during == [before + 1] and persisted().size() == before
    assert theirs.storageLevel.useMemory
    theirs.unpersist()


def test_temporal_split_has_no_leakage(ctx):
    splits = ctx.lake.read("gold", "splits")
    bounds = {r[0]: (r[1], r[2]) for r in splits.groupBy("split").agg(F.min("ts"), F.max("ts")).collect()}
    assert bounds["train"][1] <= bounds["validation"][0] and bounds["validation"][1] <= bounds["test"][0]
    # the tuning cut ends with training, the final cut with validation; nothing reads test
    for cut, end in (("tuning", bounds["train"][1]), ("final", bounds["validation"][1])):
        for table in ("interactions", "sequences", "user_features"):
            assert history(ctx, table, cut).agg(F.max("last_ts")).first()[0] <= end, (table, cut)
    assert history(ctx, "interactions", "final").agg(F.max("last_ts")).first()[0] > bounds["train"][1]


def test_leave_last_out_holds_out_each_users_last_item(ctx):
    events = ctx.lake.read("gold", "splits").drop("split")
    splits = leave_last_out_split(events)
    last = splits.groupBy("user_idx").agg(F.max_by("item_idx", F.struct("ts", "item_idx")).alias("last_item"))
    test = splits.where("split = 'test'").select("user_idx", "item_idx").distinct()
    assert test.count() > 0
    assert test.groupBy("user_idx").count().where("count > 1").count() == 0
    assert test.join(last, "user_idx").where(F.col("item_idx") != F.col("last_item")).count() == 0
    train_pairs = splits.where("split = 'train'").select("user_idx", "item_idx")
    assert test.join(train_pairs, ["user_idx", "item_idx"]).count() == 0


def test_stratified_split_holds_out_the_same_share_of_every_item(spark):
    """Item 1 has 8 users: 6 stay (round(8 * .75)), of which round(6 * .75) = 5 train and 1
    validation, 2 test; item 2 has 4 users: 3 stay (2 train, 1 validation), 1 test. A pair's events
    share its split."""
    pairs = [(u, 1) for u in range(8)] + [(u, 2) for u in range(4)] + [(0, 1)]
    events = spark.createDataFrame(pairs, "user_idx int, item_idx int")
    out = make_split(events, SplitConf(kind="stratified", test_share=0.25, seed=3))
    counts = {(r["item_idx"], r["split"]): r["n"] for r in
              out.distinct().groupBy("item_idx", "split").agg(F.count("*").alias("n")).collect()}
    assert counts == {(1, "train"): 5, (1, "validation"): 1, (1, "test"): 2,
                      (2, "train"): 2, (2, "validation"): 1, (2, "test"): 1}
    assert out.count() == len(pairs)
    assert out.groupBy("user_idx", "item_idx").agg(F.countDistinct("split").alias("n")).where("n > 1").count() == 0


def test_gold_shapes(ctx):
    seq = history(ctx, "sequences")
    assert {len(r["items"]) for r in seq.collect()} == {50}
    assert seq.where(F.col("length") < 50).where(F.col("items")[0] != 0).count() == 0
    feats = history(ctx, "item_features")
    assert feats.count() == ctx.lake.count("silver", "items")
    assert feats.agg(F.max("price_level")).first()[0] == 4
    shares = history(ctx, "user_features").first()["category_shares"]
    assert abs(sum(s["share"] for s in shares) - 1.0) < 1e-9
    assert set(ctx.lake.read("gold", "splits").columns) >= {"hour", "weekday", "season", "is_holiday"}


def test_models_are_trained_recommended_and_evaluated(ctx):
    metrics = {(r["model"], r["metric"]): r["value"] for r in ctx.lake.read("gold", "metrics")
               .where("slice = 'all'").collect()}
    assert metrics[("als", "ndcg")] > 1.5 * metrics[("popularity", "ndcg")]
    assert metrics[("als", "coverage")] > metrics[("popularity", "coverage")]
    for model in ("ease", "item_knn", "user_knn", "popularity_category"):  # each finds the planted tastes too
        assert metrics[(model, "ndcg")] > 1.2 * metrics[("popularity", "ndcg")], model
    models = {m for m, _ in metrics}
    assert all(0.0 < metrics[(m, "diversity_embedding")] < 2.0 for m in models)  # cosine distance, from ALS factors
    recs = ctx.lake.read("gold", "recs")
    seen = history(ctx, "interactions").select("user_idx", "item_idx")  # train + validation
    assert recs.join(seen, ["user_idx", "item_idx"]).count() == 0
    # every model gives every known user exactly k items, filling from popularity
    per_user = recs.groupBy("model", "user_idx").count()
    assert {r[0] for r in per_user.select("count").distinct().collect()} == {10}
    n_users = ctx.lake.count("gold", "id_map_users")
    assert {r[1] for r in per_user.groupBy("model").count().collect()} == {n_users}
    assert metrics[("popularity", "lists_filled")] == 0.0 and metrics[("item_knn", "lists_filled")] > 0.0
    runs = {r["stage"]: json.loads(r["inputs"]) for r in ctx.lake.read("gold", "runs").collect()}
    assert runs["train_als"]["gold.interactions"] == ctx.lake.identity("gold", "interactions")
    assert set(runs) == set(STAGES)


def test_neighbours_share_the_planted_categories(ctx):
    """Tastes are planted per category, so similar items should mostly share one (chance: 1 in 8)."""
    category = history(ctx, "item_features").select("item_idx", "category")
    pairs = ctx.lake.read("gold", "item_neighbours").where("rank <= 5").join(category, "item_idx").join(
        category.withColumnsRenamed({"item_idx": "neighbour_idx", "category": "neighbour_category"}), "neighbour_idx")
    same = {r["method"]: r["same"] for r in pairs.groupBy("method").agg(
        F.avg((F.col("category") == F.col("neighbour_category")).cast("double")).alias("same")).collect()}
    assert same["als_cosine"] > 0.5 and same["cooccurrence"] > 0.3, same
    users = ctx.lake.read("gold", "user_neighbours")
    assert users.where("user_idx = neighbour_idx").count() == 0
    assert users.groupBy("user_idx").count().agg(F.max("count")).first()[0] == ctx.cfg.cf.neighbours.n


def test_hashed_user_ids(make_ctx, monkeypatch):
    monkeypatch.setenv("RECSYS_SPARK_ID_KEY", "k1")
    ctx = make_ctx("privacy.hash_user_ids=true", "source.synthetic.n_events=2000")
    run_stage(ctx, "ingest")
    ids = [r[0] for r in ctx.lake.read("bronze", "users").select("user_id").where("user_id IS NOT NULL").collect()]
    assert ids and all(len(i) == 64 and not i.startswith("u") for i in ids)


def test_second_batch_flows_through_and_keeps_ids(ctx, make_ctx, tmp_path):
    umap = {r["user_id"]: r["user_idx"] for r in ctx.lake.read("gold", "id_map_users").collect()}
    bronze_before = ctx.lake.count("bronze", "events")
    shutil.copytree(ctx.cfg.lakehouse.root, tmp_path / "lakehouse")  # the shared shop stays as it was
    # a later week of the same shop: same users and items, new events
    later = make_ctx("source.synthetic.seed=43", "source.synthetic.start_date=2025-07-01",
                     "source.synthetic.days=7", "source.synthetic.n_events=3000")
    run_all(later)
    assert later.lake.count("bronze", "events") > bronze_before
    assert later.lake.count("bronze", "events") == (later.lake.count("silver", "events")
                                                      + later.lake.count("quarantine", "events"))
    after = {r["user_id"]: r["user_idx"] for r in later.lake.read("gold", "id_map_users").collect()}
    assert all(after[u] == i for u, i in umap.items())
    assert sorted(after.values()) == list(range(1, len(after) + 1))
    assert later.lake.read("gold", "splits").agg(F.max("ts")).first()[0].month == 7


@pytest.mark.parametrize("stage, override, changed", [
    ("train_deep", "cf.k=5", "config cf.k"),  # it scores top k and early-stops on NDCG@k
    ("train_deep", "cf.relevant_event_types=[purchase]", "config cf.relevant_event_types"),
    ("train_deep", "deep.sasrec.blocks=3", "config deep"),
    ("neighbours", "cf.topk.block_mb=64", "config cf.topk.block_mb"),
    ("train_als", "cf.tune=true", "config cf.tune"),
    ("evaluate", "cf.k=5", "config cf.k"),
])
def test_a_changed_setting_is_seen_by_the_stage_that_read_it(ctx, stage, override, changed):
    root = Path(ctx.cfg.lakehouse.root).parent
    assert changed_reads(ctx, last_run(ctx, stage)) == []
    moved = Context(tiny_config(root, override), ctx.spark, ctx.lake, ctx.progress)
    assert changed in changed_reads(moved, last_run(moved, stage))
    assert changed_reads(moved, last_run(moved, "ingest" if stage == "features" else "features")) == []


def test_after_a_whole_run_no_stage_has_anything_to_do(ctx):
    """A second `pipeline` skips every stage: stages that write their own rows of a shared table
    (gold.recs, gold.candidates) do not depend on the rows the others write there."""
    assert {stage: changed_reads(ctx, last_run(ctx, stage)) for stage in STAGES} == {stage: [] for stage in STAGES}


def test_end_of_run_summaries_name_each_model_and_policy_once(ctx):
    models = [line.split()[0] for line in metrics_summary(ctx).splitlines()[2:]]
    assert "als" in models and len(models) == len(set(models))
    policies = [line.split()[0] for line in bandit_summary(ctx).splitlines()[2:]]
    assert sorted(policies) == sorted(ctx.cfg.bandit.policies)   # no benchmark ratio rows among them


def test_maintain_compacts_and_vacuums_without_changing_a_row_or_rerunning_a_stage(make_ctx, tmp_path):
    ctx = make_ctx("lakehouse.vacuum_hours=0", "source.synthetic.n_events=3000")
    run_all(ctx)   # bronze, silver, quarantine and the gold features: the tables batches append to
    counts = {(layer, t): ctx.lake.count(layer, t) for layer, tables in TABLES.items() for t in tables
              if ctx.lake.exists(layer, t)}
    before = {stage: last_run(ctx, stage)["run_id"] for stage in ("quality", "features")}
    files = len(list((tmp_path / "lakehouse").rglob("*.parquet")))
    check = ctx.spark.conf.get(RETENTION_CHECK, None)
    run_stage(ctx, "maintain")
    assert ctx.spark.conf.get(RETENTION_CHECK, None) == check   # off for the stage only, as it was after
    counts[("gold", "runs")] += 1   # the maintain run itself
    assert {key: ctx.lake.count(*key) for key in counts} == counts   # every table readable, rows as they were
    assert len(list((tmp_path / "lakehouse").rglob("*.parquet"))) < files   # compacted, old versions vacuumed
    for stage in before:   # compaction is not a change of data: nothing downstream runs again
        run_stage(ctx, stage)
        assert last_run(ctx, stage)["run_id"] == before[stage]

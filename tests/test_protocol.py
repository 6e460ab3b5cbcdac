"""The evaluation protocol: test lists from the final cut (train + validation), lists filled to k,
and the generic file formats that next-item data sets come in.

The planted data: every user walks the catalogue in order (item i is followed by i + 1), so the
transition model's next item after the user's last one is known exactly.
"""
import logging
import shutil

import pytest
from pyspark.sql import functions as F

from recsys_spark.cli import main
from recsys_spark.config import FileSourceConf
from recsys_spark.data.raw import read_file_source
from recsys_spark.evaluation.ranking import fill_to_k
from recsys_spark.lakehouse import table_path
from recsys_spark.pipeline import run_stage, warn_stale_upstream
from recsys_spark.pipeline.cf import history
from recsys_spark.pipeline.runs import changed_reads, last_run
from tests.conftest import TINY

N_USERS, N_ITEMS, STEPS = 60, 20, 6


def walk(user: int) -> list[int]:
    return [(user + step) % N_ITEMS + 1 for step in range(STEPS)]


@pytest.fixture(scope="module")
def walked(make_module_ctx, tmp_path_factory):
    """The walks as a `user item` lines file (line order is time order) with a RecBole .item file,
    through the pipeline with k = 1."""
    d = tmp_path_factory.mktemp("walks")
    lines = [f"u{u} i{walk(u)[step]}" for step in range(STEPS) for u in range(N_USERS)]
    (d / "walks.txt").write_text("\n".join(lines) + "\n")
    (d / "walks.item").write_text("item_id:token\ttitle:token_seq\n"
                                  + "".join(f"i{i}\tItem number {i}\n" for i in range(1, N_ITEMS + 1)))
    (d / "walks.yaml").write_text(f"""
source:
  kind: files
  files:
    events: {{path: {d}/walks.txt, format: lines, columns: {{user_id: _c0, item_id: _c1, ts: _ts}},
              constants: {{event_type: purchase}}}}
    items: {{path: {d}/walks.item, format: recbole, columns: {{item_id: item_id, title: title}}}}
quality: {{event_key: [user_id, item_id, ts]}}
features: {{split: {{kind: leave_last_out}}, sequence_event_types: [purchase]}}
cf: {{k: 1, relevant_event_types: [purchase], topk: {{block_mb: 0.0001}}}}
""")
    ctx = make_module_ctx(dataset=str(d / "walks.yaml"))
    for stage in ("ingest", "quality", "features", "train_als", "neighbours", "recommend", "evaluate"):
        run_stage(ctx, stage)
    return ctx


def test_lines_file_loads_in_line_order(walked):
    events = walked.lake.read("silver", "events")
    assert events.count() == N_USERS * STEPS
    u7 = [r["item_id"] for r in events.where("user_id = 'u7'").orderBy("ts").collect()]
    assert u7 == [f"i{i}" for i in walk(7)]
    assert walked.lake.count("silver", "items") == N_ITEMS


def test_test_lists_come_from_train_plus_validation(walked):
    """From the training history alone the transition model would name the validation item (a miss
    on test); from train + validation it names the test item."""
    metrics = {(r["model"], r["metric"]): r["value"] for r in walked.lake.read("gold", "metrics")
               .where("slice = 'all'").collect()}
    assert metrics[("transitions", "hit_rate")] == 1.0
    recs = walked.lake.read("gold", "recs")
    assert {r[0] for r in recs.select("cut").distinct().collect()} == {"final"}
    splits = walked.lake.read("gold", "splits")
    validation = splits.where("split = 'validation'").select("user_idx", "item_idx")
    assert validation.count() == N_USERS
    assert recs.join(validation, ["user_idx", "item_idx"]).count() == 0  # never recommended back
    seen = history(walked, "interactions").select("user_idx", "item_idx")
    assert seen.join(validation, ["user_idx", "item_idx"]).count() == N_USERS
    assert recs.join(seen, ["user_idx", "item_idx"]).count() == 0
    tuning = history(walked, "interactions", "tuning")
    assert tuning.join(validation, ["user_idx", "item_idx"]).count() == 0


def test_every_model_gives_every_user_k_items(walked):
    recs = walked.lake.read("gold", "recs")
    per_model = {r["model"]: (r["users"], r["rows"]) for r in recs.groupBy("model").agg(
        F.countDistinct("user_idx").alias("users"), F.count("*").alias("rows")).collect()}
    assert {"als", "item_knn", "user_knn", "transitions", "popularity"} <= set(per_model)
    assert set(per_model.values()) == {(N_USERS, N_USERS)}


def test_fill_to_k_keeps_the_models_order_then_fills(spark):
    schema = "user_idx int, rank int, item_idx int, score double"
    recs = spark.createDataFrame([(1, 1, 10, 0.9), (1, 2, 11, 0.5)], schema)
    fallback = spark.createDataFrame([(u, r, i, 1.0 / r) for u in (1, 2) for r, i in enumerate([11, 12, 13, 14], 1)],
                                     schema)
    out = fill_to_k(recs, fallback, 3).orderBy("user_idx", "rank").collect()
    assert [(r["user_idx"], r["item_idx"], r["filled"]) for r in out] == [
        (1, 10, False), (1, 11, False), (1, 12, True), (2, 11, True), (2, 12, True), (2, 13, True)]


def test_recbole_history_file(spark, tmp_path):
    """RecBole atomic .inter with a token_seq history: the history in order, then the row's item."""
    path = tmp_path / "x.test.inter"
    path.write_text("user_id:token\titem_id_list:token_seq\titem_id:token\n0\t5 3 9\t4\n1\t7\t2\n")
    spec = FileSourceConf(path=str(path), format="recbole", options={"history": "item_id_list"},
                          columns={"user_id": "user_id", "item_id": "item_id", "ts": "_ts"})
    rows = read_file_source(spark, spec, "events").orderBy("user_id", "ts").collect()
    assert [(r["user_id"], r["item_id"]) for r in rows] == [("0", "5"), ("0", "3"), ("0", "9"), ("0", "4"),
                                                            ("1", "7"), ("1", "2")]
    assert [int(r["ts"]) for r in rows[:4]] == [946684800 + i for i in range(4)]


def test_a_stage_runs_again_when_what_it_read_changed(walked, make_module_ctx):
    """Signatures come from what a stage read: a table it reads changed (recommend reads the user
    id map), a setting it reads changed (cf.k), a setting only its tuning reads (train_als)."""
    runs = walked.lake.count("gold", "runs")
    run_stage(walked, "recommend")
    assert walked.lake.count("gold", "runs") == runs  # nothing changed: skipped

    umap = walked.lake.read("gold", "id_map_users")
    walked.lake.append(umap.limit(1).withColumns({"user_id": F.lit("newcomer"), "user_idx": F.lit(N_USERS + 1)}),
                       "gold", "id_map_users")
    assert changed_reads(walked, last_run(walked, "recommend")) == ["table gold.id_map_users"]
    run_stage(walked, "recommend")
    newcomer = walked.lake.read("gold", "recs").where(f"user_idx = {N_USERS + 1}")
    # 8 models, k = 1: the two popularity lists cover every user; the other six are filled
    assert newcomer.count() == 8 and newcomer.where("filled").count() == 6

    k2 = make_module_ctx("cf.k=2", dataset=walked_yaml(walked))
    assert changed_reads(k2, last_run(k2, "recommend")) == ["config cf.k"]
    run_stage(k2, "recommend")
    assert {r[0] for r in k2.lake.read("gold", "recs").groupBy("model", "user_idx").count().select("count")
            .distinct().collect()} == {2}

    grid = ["cf.tune=true", "cf.tuning.rank=[4]", "cf.tuning.alpha=[1.0]", "cf.tuning.reg_param=[0.1]",
            "cf.tuning.max_iter=[2]"]
    run_stage(make_module_ctx(*grid, dataset=walked_yaml(walked)), "train_als")
    other = make_module_ctx(*grid, "cf.relevant_event_types=[click]", dataset=walked_yaml(walked))
    assert "config cf.relevant_event_types" in changed_reads(other, last_run(other, "train_als"))


def test_a_stage_run_alone_names_the_earlier_stages_its_config_outdated(walked, make_module_ctx, caplog):
    """A changed setting of an earlier stage that is not re-run: its tables follow the old value, so
    running a later stage alone warns, naming that stage, the key and both values."""
    then = walked.cfg.features.half_life_days
    changed = make_module_ctx("features.half_life_days=7", dataset=walked_yaml(walked))
    assert warn_stale_upstream(changed, ["train_als"]) == {"features": {"features.half_life_days": (then, 7.0)}}
    assert warn_stale_upstream(changed, ["features", "train_als"]) == {}  # re-run in the same run
    assert warn_stale_upstream(walked, ["train_als"]) == {}

    root = walked.cfg.lakehouse.root
    sets = [a for s in [*TINY, f"lakehouse.root={root}", f"lakehouse.checkpoint_dir={root}/../ckpt",
                        "quality.max_quantity=5"] for a in ("--set", s)]
    with caplog.at_level(logging.WARNING, logger="recsys_spark"):
        assert main(["run", "features", "--dataset", walked_yaml(walked), *sets]) == 0
    assert ("[quality] config changed since its last run (quality.max_quantity: 10000 -> 5): its tables follow "
            "the old values; run quality before features") in caplog.text


def walked_yaml(ctx) -> str:
    return ctx.cfg.source.files.events.path.replace("walks.txt", "walks.yaml")


def test_hybrid_runs_on_events_without_a_users_table(walked):
    """No silver.users: the final lists and context popularity do without region and age band."""
    run_stage(walked, "hybrid")
    users = walked.lake.read("gold", "id_map_users").count()
    assert walked.lake.read("gold", "recs_final").select("user_idx").distinct().count() == users
    contexts = {r[0] for r in walked.lake.read("gold", "popularity_context").select("context").distinct().collect()}
    assert "all" in contexts and not {"region", "age_band"} & contexts


def test_a_stage_runs_again_once_a_table_it_only_wrote_is_dropped(walked):
    """Writing a table is no dependency on it (tests/test_pipeline.py: after a whole run no stage has
    anything to do), but the rows are the stage's: once the table is gone, the stage writes them again."""
    run_stage(walked, "evaluate")   # the tests before changed what it reads
    assert changed_reads(walked, last_run(walked, "evaluate")) == []
    shutil.rmtree(table_path(walked.cfg.lakehouse.root, "gold", "metrics"))
    assert changed_reads(walked, last_run(walked, "evaluate")) == ["table gold.metrics (written)"]
    run_stage(walked, "evaluate")
    assert walked.lake.read("gold", "metrics").where("metric = 'ndcg'").select("model").distinct().count() >= 8

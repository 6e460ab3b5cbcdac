"""MLflow tracking: each stage run read back with the MLflow client; off means never imported."""
import ast
import json
import shutil
from pathlib import Path

from recsys_spark.pipeline import run_stage
from recsys_spark.pipeline.runs import last_run

PACKAGE = Path(__file__).resolve().parent.parent / "recsys_spark"


def test_stage_runs_are_logged_with_params_inputs_metrics_and_models(shop, make_ctx, tmp_path):
    # the shared shop, copied: a changed rank re-runs train_als and a changed k re-runs evaluate
    shutil.copytree(shop.cfg.lakehouse.root, tmp_path / "lakehouse")
    ctx = make_ctx("tracking.mlflow=true", "cf.als.rank=8", "cf.k=5")
    for stage in ("train_als", "evaluate"):
        run_stage(ctx, stage)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path.resolve()}/lakehouse/_mlflow/mlflow.db")
    exp = client.get_experiment_by_name("recsys-spark")
    runs = {r.data.tags["recsys.stage"]: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"train_als", "evaluate"}

    als = runs["train_als"]
    assert als.data.params["cf.als.rank"] == "8"
    assert als.data.tags["recsys.run_id"] == last_run(ctx, "train_als")["run_id"]
    assert als.data.tags["input.gold.interactions"] == ctx.lake.identity("gold", "interactions")
    saved = {a.path for a in client.list_artifacts(als.info.run_id, "models")}
    assert "models/als" in saved
    assert json.loads(Path(client.download_artifacts(als.info.run_id, "models/als/metadata/part-00000",
                                                     str(tmp_path / "dl"))).read_text())["rank"] == 8

    evaluate = runs["evaluate"]
    run_id = evaluate.data.tags["recsys.run_id"]
    rows = ctx.lake.read("gold", "metrics").where(f"run_id = '{run_id}' AND split = 'test' AND slice = 'all'")
    ndcg = {r["model"]: r["value"] for r in rows.where("metric = 'ndcg'").collect()}
    assert ndcg and all(abs(evaluate.data.metrics[f"test.all.{m}.ndcg_at_5"] - v) < 1e-9 for m, v in ndcg.items())
    assert not client.list_artifacts(evaluate.info.run_id, "models")   # evaluate saves no model


def test_mlflow_is_imported_only_by_the_tracking_module_and_only_inside_functions():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:   # module level: what importing the package would pull in
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "mlflow" or n == "recsys_spark.tracking" for n in names), path

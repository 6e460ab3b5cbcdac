"""MLflow tracking of stage runs and benchmark reports, when `tracking.mlflow` is on.

One MLflow run per recorded stage run (gold.runs): the config values the stage read as params, the
Delta tables it read (id@version) as tags, the rows it wrote to gold.metrics and gold.bandit_metrics
as metrics, and the models it saved under lakehouse.models_dir as artifacts. mlflow is imported
only here, and only when tracking is on.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from recsys_spark.config import Config

log = logging.getLogger("recsys_spark")
MAX_PARAM_CHARS = 6000   # MLflow's limit on a param value


def tracking_uri(cfg: Config) -> str:
    """The configured store; else the workspace's on Databricks, a sqlite file beside the tables."""
    if cfg.tracking.uri:
        return cfg.tracking.uri
    if cfg.runtime == "databricks":
        return "databricks"
    return f"sqlite:///{Path(cfg.lakehouse.root).resolve()}/_mlflow/mlflow.db"


def experiment(cfg: Config) -> str:
    """Set up and return the experiment id; locally its artifacts sit beside the sqlite store."""
    import mlflow

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(cfg.tracking.experiment)
    if found:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        store = Path(uri[len("sqlite:///"):]).parent
        location = (store / "artifacts").resolve().as_uri()
    return mlflow.create_experiment(cfg.tracking.experiment, artifact_location=location)


def metric_rows(ctx, run_id: str) -> dict[str, float]:
    """This run's rows of gold.metrics and gold.bandit_metrics, as MLflow metric names."""
    from pyspark.sql import functions as F

    out: dict[str, float] = {}
    for table, parts in (("metrics", ("split", "slice", "model", "metric")), ("bandit_metrics", ("model", "metric"))):
        if not ctx.lake.exists("gold", table):
            continue
        for r in ctx.lake.read("gold", table).where(F.col("run_id") == run_id).collect():
            if r["value"] is None:
                continue
            k = r["k"] if "k" in r and r["k"] is not None else None
            name = ".".join(str(r[p]) for p in parts if r[p] is not None) + (f"_at_{k}" if k else "")
            out[name] = float(r["value"])
    return out


def changed_models(models_dir: str, since: float) -> list[Path]:
    """Entries of the models directory holding a file written since `since` (what the run saved)."""
    from recsys_spark.deep.data import local_path

    root = Path(local_path(models_dir))
    remote = "://" in models_dir and not models_dir.startswith("dbfs:/")   # hdfs://, s3://: not a local path
    if remote or not root.is_dir():
        return []
    return sorted(entry for entry in root.iterdir()
                  if any(f.is_file() and f.stat().st_mtime >= since for f in [entry, *entry.rglob("*")]))


def params(config_reads: dict[str, Any]) -> dict[str, str]:
    flat = {}
    for key, value in config_reads.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        flat[key if key != "*" else "config"] = text[:MAX_PARAM_CHARS]
    return flat


def log_stage_run(ctx, stage: str, run_id: str, config_reads: dict[str, Any], tables: dict[str, str | None],
                  started: float) -> None:
    import mlflow

    exp = experiment(ctx.cfg)
    with mlflow.start_run(experiment_id=exp, run_name=f"{stage}-{run_id}") as run:
        mlflow.set_tags({"recsys.stage": stage, "recsys.run_id": run_id,
                         **{f"input.{name}": ident or "missing" for name, ident in tables.items()}})
        mlflow.log_params(params(config_reads))
        metrics = metric_rows(ctx, run_id)
        if metrics:
            mlflow.log_metrics(metrics)
        models = changed_models(ctx.lake.models_dir, started)
        for entry in models:
            if entry.is_dir():
                mlflow.log_artifacts(str(entry), f"models/{entry.name}")
            else:
                mlflow.log_artifact(str(entry), "models")
    log.info("[%s] MLflow run %s: %d params, %d metrics, %d inputs, models %s", stage, run.info.run_id,
             len(config_reads), len(metrics), len(tables), [m.name for m in models] or "none")


def log_report(cfg: Config, name: str, files: list[Path], seconds: float) -> None:
    """A benchmark's report files (JSON, Markdown, plots) as one MLflow run's artifacts."""
    import mlflow

    exp = experiment(cfg)
    with mlflow.start_run(experiment_id=exp, run_name=f"bench-{name}-{int(time.time())}"):
        mlflow.set_tags({"recsys.benchmark": name})
        mlflow.log_metric("seconds", seconds)
        for f in files:
            mlflow.log_artifact(str(f), "reports")

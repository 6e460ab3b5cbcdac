"""ingest: sources -> bronze.events / items / users, append-only, one batch id per source."""
from __future__ import annotations

import hashlib
import json

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from recsys_spark.config import Config
from recsys_spark.data.privacy import pseudonymise
from recsys_spark.data.raw import RAW_COLUMNS, read_file_source, to_raw
from recsys_spark.data.synthetic import generate
from recsys_spark.lakehouse import with_ingest_metadata
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once

STAGE = "ingest"


def batch_id(cfg: Config) -> str:
    """Configured, or derived from the source settings: the same source is the same batch."""
    if cfg.source.batch_id:
        return cfg.source.batch_id
    src = cfg.source.model_dump(mode="json")
    spec = {"kind": src["kind"], src["kind"]: src[src["kind"]]}
    return f"{src['kind']}-{hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]}"


def read_sources(ctx: Context) -> dict[str, tuple[DataFrame, str]]:
    """table -> (raw DataFrame, source name)."""
    cfg = ctx.cfg
    if cfg.source.kind == "synthetic":
        syn = cfg.source.synthetic
        name = f"synthetic(seed={syn.seed}, events={syn.n_events})"
        return {t: (to_raw(df, t), name) for t, df in generate(ctx.spark, syn).items()}
    out = {}
    for table in RAW_COLUMNS:
        spec = getattr(cfg.source.files, table)
        if spec is not None:
            out[table] = (read_file_source(ctx.spark, spec, table), spec.path)
    return out


def run(ctx: Context) -> None:
    run_once(ctx, STAGE, lambda run_id: _ingest(ctx))


def _ingest(ctx: Context) -> None:
    bid = batch_id(ctx.cfg)
    for table, (raw, source) in read_sources(ctx).items():
        with ctx.progress.step(STAGE, f"bronze.{table}") as step:
            if ctx.lake.exists("bronze", table):
                done = ctx.lake.read("bronze", table).where(F.col("_batch_id") == bid).limit(1).count()
                if done:
                    step.rows = 0
                    continue  # this batch is already in bronze: re-ingesting changes nothing
            df = pseudonymise(raw, ctx.cfg.privacy) if "user_id" in raw.columns else raw
            ctx.lake.append(with_ingest_metadata(df, bid, source), "bronze", table)
            step.rows = ctx.lake.last_commit_metrics("bronze", table)["numOutputRows"]

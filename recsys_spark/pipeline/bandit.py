"""The bandit stage: policies keep learning from click feedback across runs, and every run says how
well they do.

On the built-in shop each configured policy plays `bandit.simulator.rounds[0]` more rounds against
the simulated shop, starting from the state its last run saved under models/bandit/ (a policy whose
settings changed starts afresh); where `bandit.logs.root` names logged feedback, the off-policy
estimates join them. Records land in gold.bandit_metrics, one row per policy, metric and run.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F

from recsys_spark.bandit.judge import Record, offline, online
from recsys_spark.bandit.policies import Policy, load_policy, make_policy
from recsys_spark.bandit.simulator import FEATURES, Shop
from recsys_spark.deep.data import local_path
from recsys_spark.pipeline.context import Context
from recsys_spark.pipeline.runs import run_once, utc_now

log = logging.getLogger("recsys_spark")
COLUMNS = {"model": "string", "metric": "string", "value": "double", "rounds": "bigint", "low": "double",
           "high": "double", "logs": "string", "dataset": "string"}


def bandit(ctx: Context) -> None:
    run_once(ctx, "bandit", lambda run_id: _bandit(ctx, run_id))


def policy_path(ctx: Context, name: str) -> Path:
    return Path(local_path(ctx.lake.model_path("bandit"))) / f"{name}.npz"


def _resume(ctx: Context, name: str) -> Policy:
    b = ctx.cfg.bandit
    fresh = make_policy(name, len(FEATURES), b.slate, b.seed, **b.params())
    path = policy_path(ctx, name)
    if path.exists():
        saved = load_policy(path)
        if (saved.params, saved.slate, saved.dim) == (fresh.params, fresh.slate, fresh.dim):
            log.info("[bandit] %s continues from %s after %d rounds", name, path, saved.rounds)
            return saved
        log.info("[bandit] %s: settings changed since %s, starting afresh", name, path)
    return fresh


def _bandit(ctx: Context, run_id: str) -> None:
    b, records = ctx.cfg.bandit, []
    if ctx.cfg.source.kind == "synthetic":
        n = ctx.cfg.source.synthetic
        with ctx.progress.step("bandit", f"simulated shop, {b.simulator.rounds[0]:,} rounds per policy") as step:
            shop = Shop.from_synthetic(ctx.spark, n, b.seed)
            policies = {name: _resume(ctx, name) for name in b.policies}
            records, _ = online(b, shop, policies, f"synthetic-shop simulator ({n.n_users:,} users, "
                                f"{n.n_items:,} items)", b.simulator.rounds[:1])
            for name, policy in policies.items():
                policy.save(policy_path(ctx, name))
            step.rows = len(policies)
        for r in records:
            if r["metric"] == "cumulative_reward":
                log.info("[bandit] %s: %d clicks in %d rounds", r["model"], r["value"], r["rounds"])
    if b.logs.root:
        with ctx.progress.step("bandit", f"off-policy estimates on {b.logs.root}") as step:
            logged, _, _ = offline(b)
            records += logged
            step.rows = len(logged)
    if not records:
        log.info("[bandit] no simulated shop (source.kind is not synthetic) and no bandit.logs.root: nothing to do")
        return
    _write(ctx, run_id, records)


def _write(ctx: Context, run_id: str, records: list[Record]) -> None:
    frame = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in records])
    schema = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
    df = (ctx.spark.createDataFrame(frame.astype(object).where(frame.notna(), None), schema)
          .select(F.lit(run_id).alias("run_id"), "*", F.lit(utc_now()).alias("evaluated_at")))
    with ctx.progress.step("bandit", "gold.bandit_metrics") as step:
        ctx.lake.append(df, "gold", "bandit_metrics")
        step.rows = len(records)

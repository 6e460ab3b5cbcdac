"""Bandits, online and offline (recsys_spark.bandit.judge says what each part measures): every
configured policy, new, against the simulated shop for each checkpoint of rounds, with a PNG of the
curves; and the off-policy estimates on logged feedback (default conf/datasets/obd.yaml; DATASET=
another config in the Open Bandit Dataset's layout)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recsys_spark.bandit.judge import offline, online
from recsys_spark.bandit.policies import make_policy
from recsys_spark.bandit.simulator import FEATURES, Shop
from recsys_spark.bench.report import REPORTS, keep_per_dataset, write_report
from recsys_spark.config import load_config
from recsys_spark.spark import get_spark

DEFAULT_LOGS = "obd"


def run(dataset: str = "") -> None:
    cfg = load_config(None, dataset or DEFAULT_LOGS, [])
    b, n = cfg.bandit, cfg.source.synthetic
    timings: dict[str, float] = {}
    t = time.time()
    shop = Shop.from_synthetic(get_spark(cfg), n, b.seed)
    policies = {name: make_policy(name, len(FEATURES), b.slate, b.seed, **b.params()) for name in b.policies}
    rows, curves = online(b, shop, policies, f"synthetic-shop simulator ({n.n_users:,} users, {n.n_items:,} items)")
    timings["simulator"] = round(time.time() - t, 1)
    plot = plot_curves(curves, REPORTS / "bandit_rewards.png")
    notes = [f"simulator: {cfg.bandit.simulator.candidates} candidates per arrival, slate of {cfg.bandit.slate}, "
             f"position bias {cfg.bandit.simulator.position_bias}, updates every "
             f"{cfg.bandit.simulator.batch_size} arrivals; epsilon-greedy keeps a click rate per item and "
             "ignores the context (as the Open Bandit Pipeline's); LinUCB and Thompson share one ridge "
             f"regression over {FEATURES}. Curves: {plot}"]
    name = "synthetic-shop"
    if cfg.bandit.logs.root:
        t = time.time()
        logged, logged_notes, name = offline(cfg.bandit)
        rows += logged
        notes += logged_notes
        timings["offline"] = round(time.time() - t, 1)
    path = write_report(
        "bandit", "Online: cumulative clicks and regret of each policy on the simulated shop, same arrivals "
        "for all; offline: replay / IPW / SNIPW / DR estimates of a policy's click rate per impression from "
        "logged feedback, bootstrap 95% intervals (low, high)", f"synthetic-shop simulator; {name}", rows,
        timings, notes)
    if dataset:
        keep_per_dataset(path, name)


def plot_curves(curves: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, c in curves.items():
        axes[0].plot(c["rounds"], c["cumulative_reward"], label=name)
        axes[1].plot(c["rounds"], c["cumulative_regret"], label=name)
    for ax, title in zip(axes, ("cumulative clicks", "cumulative regret"), strict=True):
        ax.set_xlabel("rounds")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path



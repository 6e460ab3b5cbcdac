"""Bandits, online and offline.

Online: every configured policy against the simulated shop (the synthetic shop's planted tastes
with a position bias), the same arrivals for all, cumulative clicks and regret at each checkpoint,
and a PNG of the curves.

Offline, on logged feedback in the Open Bandit Dataset's layout (default conf/datasets/obd.yaml;
DATASET= another such config): replay, IPW, SNIPW and DR with bootstrap 95% intervals for
- each logging policy judged on its own logs (the estimate must equal the observed CTR),
- a fixed policy (the three items of highest user-item affinity, in that order),
- LinUCB and Thompson learned from the random logs, two-fold by time (learn on one half, judge on
  the other, both ways), and
- the bts policy judged from the random logs, against its observed CTR (relative error).
Where the Open Bandit Pipeline (`obp`) imports, its IPW, SNIPW and DR run on the same arrays.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recsys_spark.bandit.logs import Logs, read_logs, shown_rates
from recsys_spark.bandit.offline import action_dist, learn_from_logs
from recsys_spark.bandit.ope import ESTIMATORS, deterministic_dist, estimate, rate_by_slot
from recsys_spark.bandit.policies import make_policy
from recsys_spark.bandit.simulator import FEATURES, Shop, simulate
from recsys_spark.bench.report import REPORTS, keep_per_dataset, row, write_report
from recsys_spark.config import BanditConf, Config, load_config
from recsys_spark.spark import get_spark

DEFAULT_LOGS = "obd"


def run(dataset: str = "") -> None:
    cfg = load_config(None, dataset or DEFAULT_LOGS, [])
    timings: dict[str, float] = {}
    t = time.time()
    rows, curves = online(cfg)
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


def online(cfg: Config) -> tuple[list[dict], dict[str, dict[str, np.ndarray]]]:
    b, sim = cfg.bandit, cfg.bandit.simulator
    spark = get_spark(cfg)
    shop = Shop.from_synthetic(spark, cfg.source.synthetic, b.seed)
    n = cfg.source.synthetic
    dataset = f"synthetic-shop simulator ({n.n_users:,} users, {n.n_items:,} items)"
    rows, curves = [], {}
    for name in b.policies:
        policy = make_policy(name, len(FEATURES), b.slate, b.seed, **b.params())
        t = time.time()
        out = simulate(policy, shop, max(sim.rounds), sim.batch_size, sim.candidates,
                       tuple(sim.position_bias), b.seed)
        curves[name] = out
        for r in sim.rounds:
            at = int(np.searchsorted(out["rounds"], r))
            for metric in ("cumulative_reward", "cumulative_regret"):
                rows.append(row(name, metric, float(out[metric][at]), None, rounds=r, dataset=dataset))
        rows.append(row(name, "seconds", round(time.time() - t, 1), None, rounds=max(sim.rounds), dataset=dataset))
    last = {p: float(c["cumulative_reward"][-1]) for p, c in curves.items()}
    for learner in ("linucb", "thompson"):
        for base in ("epsilon_greedy", "random"):
            if learner in last and base in last and last[base] > 0:
                rows.append(row(f"{learner}_vs_{base}", "cumulative_reward_ratio", round(last[learner] / last[base], 3),
                                None, rounds=max(sim.rounds), dataset=dataset))
    return rows, curves


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


def _estimates(model: str, data: Logs, dist: np.ndarray, q: np.ndarray, conf: BanditConf, dataset: str,
               names: list[str], **extra: object) -> tuple[list[dict], dict[str, float]]:
    rows, values = [], {}
    for e in names:
        est = estimate(e, data.reward, data.action, data.position, data.pscore, dist, q, conf.bootstrap, conf.seed)
        values[e] = est.value
        rows.append(row(model, e, round(est.value, 6), None, low=round(est.low, 6), high=round(est.high, 6),
                        dataset=dataset, **extra))
    return rows, values


def offline(conf: BanditConf) -> tuple[list[dict], list[str], str]:
    lc = conf.logs
    random_logs = read_logs(lc.root, lc.random_policy, lc.campaign)
    name = f"obd-{lc.campaign}"
    dataset = f"{name} ({len(random_logs.reward):,} {lc.random_policy} impressions, {random_logs.n_actions} items)"
    everything = list(ESTIMATORS)
    weighted = [e for e in everything if e != "replay"]
    slots = random_logs.n_positions
    q_all = np.broadcast_to(rate_by_slot(random_logs.reward, random_logs.action, random_logs.position,
                                         random_logs.n_actions, slots), (len(random_logs.reward),
                                                                         random_logs.n_actions, slots))
    uniform = np.full((len(random_logs.reward), random_logs.n_actions, slots), 1.0 / random_logs.n_actions)
    rows = [row(lc.random_policy, "observed_ctr", round(random_logs.ctr, 6), None, logs=lc.random_policy,
                dataset=dataset)]
    out, _ = _estimates(lc.random_policy, random_logs, uniform, q_all, conf, dataset, everything,
                        logs=lc.random_policy)
    rows += out
    peer_inputs: list[tuple[Logs, np.ndarray, np.ndarray]] = []

    # A fixed policy: the items of highest user-item affinity, ties by item id.
    affinity = random_logs.contexts[:, :, -2]
    fixed = np.argsort(-affinity, axis=1, kind="stable")[:, :slots]
    dist = deterministic_dist(fixed, random_logs.n_actions)
    out, _ = _estimates("affinity_top3", random_logs, dist, q_all, conf, dataset, everything, logs=lc.random_policy)
    rows += out
    peer_inputs.append((random_logs, dist, q_all))

    # LinUCB and Thompson learned on one half by time, judged on the other, both ways.
    half = len(random_logs.reward) // 2
    folds = [(np.arange(half), np.arange(half, len(random_logs.reward))),
             (np.arange(half, len(random_logs.reward)), np.arange(half))]
    learned_snipw = {}
    for learner in ("linucb", "thompson"):
        dists, qs, order = [], [], []
        for train, judge in folds:
            tr, ju = random_logs.take(train), random_logs.take(judge)
            policy = learn_from_logs(make_policy(learner, tr.contexts.shape[-1], slots, conf.seed, **conf.params()), tr)
            dists.append(action_dist(policy, ju, conf.thompson_draws if learner == "thompson" else 1))
            qs.append(np.broadcast_to(rate_by_slot(tr.reward, tr.action, tr.position, tr.n_actions, slots),
                                      (len(judge), tr.n_actions, slots)))
            order.append(judge)
        judged = random_logs.take(np.concatenate(order))
        dist, q = np.concatenate(dists), np.concatenate(qs)
        out, _ = _estimates(learner, judged, dist, q, conf, dataset, everything, logs=lc.random_policy,
                                 learned="two-fold by time")
        rows += out
        learned_snipw[learner] = next(r for r in out if r["metric"] == "snipw")
        peer_inputs.append((judged, dist, q))

    random_snipw = next(r for r in rows if r["model"] == lc.random_policy and r["metric"] == "snipw")
    for learner, r in learned_snipw.items():
        rows.append(row(f"{learner}_vs_{lc.random_policy}", "snipw_intervals_separate",
                        int(r["low"] > random_snipw["high"]), None, dataset=dataset))

    # Every other logging policy: on its own logs (sanity), and estimated from the random logs.
    for other in lc.other_policies:
        logs = read_logs(lc.root, other, lc.campaign)
        rows.append(row(other, "observed_ctr", round(logs.ctr, 6), None, logs=other, dataset=dataset))
        own = np.zeros((len(logs.reward), logs.n_actions, slots))
        own[np.arange(len(logs.reward)), logs.action, logs.position] = logs.pscore
        q_own = np.broadcast_to(rate_by_slot(logs.reward, logs.action, logs.position, logs.n_actions, slots),
                                own.shape)
        out, _ = _estimates(other, logs, own, q_own, conf, dataset, ["ipw", "snipw"], logs=other)
        rows += out
        dist = np.broadcast_to(shown_rates(logs), (len(random_logs.reward), logs.n_actions, slots))
        out, values = _estimates(other, random_logs, dist, q_all, conf, dataset, weighted, logs=lc.random_policy)
        rows += out
        for e, v in values.items():
            rows.append(row(other, f"{e}_relative_error", round(abs(v - logs.ctr) / logs.ctr, 4), None,
                            logs=lc.random_policy, dataset=dataset))
    rows += _peer(peer_inputs, dataset)
    notes = [
        f"offline: {random_logs.source}; DR's reward model is each (item, slot)'s click rate shrunk to the mean "
        "(from the training half for learned policies); bts's action distribution is how often its logs show "
        "each item in each slot (OBD's bts is context-free); Thompson's distribution is sampled with "
        f"{conf.thompson_draws} posterior draws; {conf.bootstrap} bootstrap resamples.",
    ]
    return rows, notes, name


def _peer(inputs: list[tuple[Logs, np.ndarray, np.ndarray]], dataset: str) -> list[dict]:
    """The Open Bandit Pipeline's estimators on the same arrays: the largest gap to ours per estimator."""
    try:
        from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting
    except ImportError:
        return []
    peers = {"ipw": InverseProbabilityWeighting(), "snipw": SelfNormalizedInverseProbabilityWeighting(),
             "dr": DoublyRobust()}
    gaps = {e: 0.0 for e in peers}
    for lg, dist, q in inputs:
        for e, peer in peers.items():
            kw = {"estimated_rewards_by_reg_model": np.ascontiguousarray(q)} if e == "dr" else {}
            theirs = peer.estimate_policy_value(reward=lg.reward, action=lg.action, position=lg.position,
                                                pscore=lg.pscore, action_dist=dist, **kw)
            ours = estimate(e, lg.reward, lg.action, lg.position, lg.pscore, dist, q, n_boot=1).value
            gaps[e] = max(gaps[e], abs(theirs - ours))
    return [row(f"obp_vs_ours_{e}", "max_abs_difference", g, None, dataset=dataset) for e, g in gaps.items()]

"""Bandits: policy updates against hand-computed matrices, off-policy estimators against hand-computed
values (and the Open Bandit Pipeline's), a restart that continues exactly, planted tastes found in
the simulated shop, and logged feedback read with clear errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from obp.ope import DoublyRobust, InverseProbabilityWeighting, SelfNormalizedInverseProbabilityWeighting

from recsys_spark.bandit.judge import offline
from recsys_spark.bandit.logs import read_logs, shown_rates
from recsys_spark.bandit.offline import action_dist, learn_from_logs
from recsys_spark.bandit.ope import deterministic_dist, estimate, intervals, ipw_terms, replay_terms
from recsys_spark.bandit.policies import load_policy, make_policy, top
from recsys_spark.bandit.simulator import FEATURES, Shop, play, simulate
from recsys_spark.config import ConfigError, load_config
from recsys_spark.pipeline import run_stage
from recsys_spark.pipeline.bandit import policy_path

# Two items shown in two slots; the logging probabilities are per (item, slot).
REWARD = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
ACTION = np.array([0, 1, 0, 1, 1, 0])
POSITION = np.array([0, 0, 1, 1, 0, 1])
PSCORE = np.array([0.5, 0.5, 0.25, 0.25, 0.5, 0.25])


def _target() -> np.ndarray:
    """Item 0 for sure in slot 0; either item, half and half, in slot 1."""
    dist = np.zeros((6, 2, 2))
    dist[:, 0, 0] = 1.0
    dist[:, :, 1] = 0.5
    return dist


def _value(name: str, dist: np.ndarray, q: np.ndarray | None = None) -> float:
    return estimate(name, REWARD, ACTION, POSITION, PSCORE, dist, q, n_boot=50).value


def test_estimators_equal_hand_computed_values():
    # target probability of what was logged: 1, 0, .5, .5, 0, .5 -> weights 2, 0, 2, 2, 0, 2
    assert _value("ipw", _target()) == pytest.approx(4 / 6)          # (2 + 2) / 6
    assert _value("snipw", _target()) == pytest.approx(4 / 8)        # (2 + 2) / (2 + 2 + 2 + 2)
    q = np.full((6, 2, 2), 0.3)
    # 0.3 + mean(2 * .7, 0, 2 * .7, 2 * -.3, 0, 2 * -.3)
    assert _value("dr", _target(), q) == pytest.approx(0.3 + 1.6 / 6)
    # replay of "item 0 in slot 0, item 1 in slot 1": rows 0 (clicked) and 3 (not) match
    assert _value("replay", deterministic_dist(np.tile([0, 1], (6, 1)), 2)) == pytest.approx(0.5)


def test_estimators_agree_with_the_open_bandit_pipeline():
    q = np.random.default_rng(0).random((6, 2, 2))
    args = {"reward": REWARD, "action": ACTION, "position": POSITION, "pscore": PSCORE, "action_dist": _target()}
    assert _value("ipw", _target()) == pytest.approx(InverseProbabilityWeighting().estimate_policy_value(**args))
    assert _value("snipw", _target()) == pytest.approx(
        SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**args))
    assert _value("dr", _target(), q) == pytest.approx(
        DoublyRobust().estimate_policy_value(**args, estimated_rewards_by_reg_model=q))


def test_the_logging_policy_judged_on_its_own_logs_is_the_observed_rate():
    own = np.zeros((6, 2, 2))
    own[np.arange(6), ACTION, POSITION] = PSCORE
    est = estimate("snipw", REWARD, ACTION, POSITION, PSCORE, own, n_boot=200, seed=1)
    assert est.value == pytest.approx(0.5) and _value("ipw", own) == pytest.approx(0.5)
    assert est.low <= 0.5 <= est.high and est.low < est.high


def test_an_interval_is_the_percentiles_of_the_estimates_over_rows_drawn_again_with_replacement():
    """Every estimator meets the same resamples: here drawn by hand, row indices with replacement."""
    per_row = {"ipw": ipw_terms(REWARD, ACTION, POSITION, PSCORE, _target()),
               "replay": replay_terms(REWARD, ACTION, POSITION, PSCORE, deterministic_dist(np.tile([0, 1], (6, 1)), 2))}
    got = intervals(per_row, n_boot=40, seed=3)
    rng = np.random.default_rng(3)
    draws = [rng.integers(0, 6, 6) for _ in range(40)]
    combine = {"ipw": lambda t: t[0].mean(),
               "replay": lambda t: t[0].sum() / t[1].sum() if t[1].sum() > 0 else np.nan}
    for name, terms in per_row.items():
        low, high = np.nanpercentile([combine[name](terms[:, d]) for d in draws], [2.5, 97.5])
        assert (got[name].low, got[name].high) == (pytest.approx(low), pytest.approx(high))
        assert got[name].value == pytest.approx(combine[name](terms)) and got[name].low < got[name].high


def test_a_slate_is_the_best_scores_first_with_ties_to_the_earlier_candidate():
    scores = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -np.inf, 5.0, -np.inf]])
    assert top(scores[:2], 2).tolist() == [[1, 2], [0, 1]]               # passes of argmax
    assert top(scores, 2).tolist() == [[1, 2], [0, 1], [2, 0]]           # -inf: a stable sort
    assert top(scores[:2], 4).tolist() == [[1, 2, 0, 3], [0, 1, 2, 3]]
    ties = np.random.default_rng(0).integers(0, 3, (500, 20)).astype(float)
    np.testing.assert_array_equal(top(ties, 3), np.argsort(-ties, axis=1, kind="stable")[:, :3])


def test_linucb_update_and_scores_equal_hand_computed_matrices():
    policy = make_policy("linucb", 2, slate=1, alpha=2.0, ridge=1.0)
    contexts = np.array([[[1.0, 0.0], [1.0, 1.0]]])           # one round, two candidates
    policy.update(contexts, np.array([[7, 8]]), np.array([[0]]), np.array([[1.0]]))
    policy.update(contexts, np.array([[7, 8]]), np.array([[1]]), np.array([[0.0]]))
    np.testing.assert_allclose(policy.state["A"], [[3.0, 1.0], [1.0, 2.0]])   # I + x1x1' + x2x2'
    np.testing.assert_allclose(policy.state["b"], [1.0, 0.0])
    # theta = A^-1 b = [.4, -.2]; x'A^-1x = [.4, .6]
    expected = np.array([0.4 + 2 * np.sqrt(0.4), 0.2 + 2 * np.sqrt(0.6)])
    np.testing.assert_allclose(policy.scores(contexts, np.array([[7, 8]]), np.zeros((1, 2)))[0], expected)
    assert policy.rounds == 2


def test_thompson_draws_from_the_hand_computed_posterior():
    policy = make_policy("thompson", 2, slate=1, seed=5, scale=0.5)
    x = np.array([[[1.0, 0.0], [1.0, 1.0]]])
    policy.update(x, np.array([[0, 1]]), np.array([[0]]), np.array([[1.0]]))
    a_inv = np.linalg.inv(np.array([[2.0, 0.0], [0.0, 1.0]]))      # I + [1, 0][1, 0]'
    theta = a_inv @ np.array([1.0, 0.0])
    z = np.random.default_rng(5).standard_normal((1, 2))
    draw = theta + 0.5 * z @ np.linalg.cholesky(a_inv).T
    np.testing.assert_allclose(policy.scores(x, np.array([[0, 1]]), np.zeros((1, 2)))[0], x[0] @ draw[0])


def test_epsilon_greedy_shows_the_best_click_rate_and_explores():
    policy = make_policy("epsilon_greedy", 1, slate=1, epsilon=0.0)
    x = np.zeros((2, 3, 1))
    items = np.array([[0, 1, 2], [0, 1, 2]])
    policy.update(x, items, np.array([[1], [2]]), np.array([[1.0], [0.0]]))
    assert policy.choose(x, items, np.zeros((2, 3))).ravel().tolist() == [1, 1]
    explorer = make_policy("epsilon_greedy", 1, slate=1, epsilon=1.0, seed=3)
    explorer.update(x, items, np.array([[1], [2]]), np.array([[1.0], [0.0]]))
    picks = {int(explorer.choose(x, items, np.zeros((2, 3)))[0, 0]) for _ in range(50)}
    assert picks == {0, 1, 2}


def _small_shop(seed: int = 0) -> Shop:
    rng = np.random.default_rng(seed)
    n_users, n_items, n_cat = 2000, 400, 8
    fav = rng.integers(0, n_cat, n_users)
    second = (fav + 1 + rng.integers(0, n_cat - 1, n_users)) % n_cat
    idx = np.arange(n_items)
    return Shop.planted(fav, second, idx % n_cat, 1.0 - (idx // n_cat) / (n_items // n_cat), n_cat, seed)


@pytest.mark.parametrize("name", ["linucb", "thompson", "epsilon_greedy"])
def test_a_policy_stopped_and_restarted_continues_from_its_saved_state(tmp_path, name):
    shop, bias = _small_shop(), np.array([1.0, 0.75, 0.5])
    first, second = list(shop.batches(200, 100, 20, seed=9))
    straight = make_policy(name, len(FEATURES), seed=4)
    clicks_straight = [play(straight, shop, b, bias)[0] for b in (first, second)]
    stopped = make_policy(name, len(FEATURES), seed=4)
    play(stopped, shop, first, bias)
    stopped.save(tmp_path / "policy.npz")
    restarted = load_policy(tmp_path / "policy.npz")
    assert restarted.rounds == 100
    np.testing.assert_array_equal(play(restarted, shop, second, bias)[0], clicks_straight[1])
    for key, value in straight.state.items():
        np.testing.assert_allclose(restarted.state[key], value)


def test_contextual_policies_find_planted_tastes_in_the_simulated_shop():
    """Clicks follow the planted favourite categories: the linear policies learn that from the
    users' category shares and beat both random slates and per-item click rates by far."""
    shop = _small_shop()
    reward = {name: simulate(make_policy(name, len(FEATURES), seed=1), shop, 5000, candidates=50, seed=2)
              ["cumulative_reward"][-1] for name in ("random", "epsilon_greedy", "linucb", "thompson")}
    assert reward["linucb"] > 2 * reward["random"] and reward["thompson"] > 2 * reward["random"]
    assert min(reward["linucb"], reward["thompson"]) > 1.5 * reward["epsilon_greedy"]
    regret = simulate(make_policy("linucb", len(FEATURES), seed=1), shop, 5000, candidates=50, seed=2)
    per_round = np.diff(regret["cumulative_regret"]) / 100
    assert per_round[-10:].mean() < per_round[:3].mean() / 3     # it learns: regret per round falls


def _write_logs(root, rows: list[tuple], policy: str = "random", campaign: str = "men") -> None:
    d = root / policy / campaign
    d.mkdir(parents=True)
    pd.DataFrame(rows, columns=["timestamp", "item_id", "position", "click", "propensity_score",
                                "user-item_affinity_0", "user-item_affinity_1"]).to_csv(d / f"{campaign}.csv")
    pd.DataFrame({"item_id": [0, 1], "item_feature_0": [0.5, -0.5]}).to_csv(d / "item_context.csv")


def test_logs_read_in_time_order_and_a_learned_policy_prefers_the_clicked_item(tmp_path):
    rows = [(f"2020-01-01 00:00:{s:02d}", s % 2, 1 + s % 2, int(s % 2 == 0), 0.5, 0.0, 0.0) for s in range(40)]
    _write_logs(tmp_path, rows[::-1])
    logs = read_logs(tmp_path, "random", "men")
    assert logs.action[:2].tolist() == [0, 1] and logs.position[:2].tolist() == [0, 1]
    assert logs.contexts(slice(0, 40)).shape == (40, 2, logs.dim) and logs.dim == 1 + 2 + 2 and logs.ctr == 0.5
    np.testing.assert_allclose(shown_rates(logs), [[1.0, 0.0], [0.0, 1.0]])
    # bias, item one-hot, log1p(affinity), item_feature_0 of the shown items
    np.testing.assert_allclose(logs.shown(slice(0, 2)), [[1, 1, 0, 0, 0.5], [1, 0, 1, 0, -0.5]])
    policy = learn_from_logs(make_policy("linucb", logs.dim, slate=1, alpha=0.0), logs, batch=8)
    assert policy.rounds == 40
    assert (action_dist(policy, logs, slice(0, 40))[:, 0, 0] == 1.0).all()   # item 0 was the one clicked


def test_off_policy_estimates_a_block_of_rows_at_a_time_equal_those_of_the_whole_log(tmp_path):
    """A full campaign's (rows, items, features) contexts do not fit in memory, so the judge builds
    them, and the policies' distributions, a block of rows at a time: the estimates must not change."""
    rng = np.random.default_rng(3)
    for policy in ("random", "bts"):
        _write_logs(tmp_path, [(f"2020-01-01 00:{s // 60:02d}:{s % 60:02d}", int(rng.integers(2)),
                                1 + int(rng.integers(2)), int(rng.random() < 0.3),
                                0.5 if policy == "random" else rng.uniform(0.2, 0.8), rng.random(), rng.random())
                               for s in range(90)], policy)
    settings = [f"bandit.logs.root={tmp_path}", "bandit.bootstrap=50"]
    whole, _, _ = offline(load_config(None, "obd", settings).bandit)
    seven_rows = 7 * 2 * (1 + 2 + 2) * 8 / 2**20   # MB: 2 items x 5 features x 8 bytes a row
    blocked, _, _ = offline(load_config(None, "obd", [*settings, f"bandit.logs.block_mb={seven_rows}"]).bandit)
    assert len(whole) == len(blocked) > 25
    for a, b in zip(whole, blocked, strict=True):
        assert (a["model"], a["metric"], a.get("logs")) == (b["model"], b["metric"], b.get("logs"))
        if a["model"] == "thompson":   # a posterior sample per block instead of per log: another draw
            continue
        tolerance = 1e-9 if a["model"].startswith("obp_vs_ours") else 1e-12
        assert [a["value"], a.get("low"), a.get("high")] == pytest.approx([b["value"], b.get("low"), b.get("high")],
                                                                          abs=tolerance)
    random = read_logs(tmp_path, "random", "men")
    everything = slice(0, 90)
    np.testing.assert_array_equal(random.shown(everything), random.contexts(everything)[np.arange(90), random.action])
    bts = read_logs(tmp_path, "bts", "men", features=False)
    assert bts.affinity is None and len(bts.reward) == 90
    with pytest.raises(ValueError, match="bts/men/men.csv were read without their user-item features"):
        bts.contexts(slice(0, 7))


def test_bad_logs_name_the_file_and_row(tmp_path):
    with pytest.raises(FileNotFoundError, match="random/men/men.csv"):
        read_logs(tmp_path, "random", "men")
    _write_logs(tmp_path, [("2020-01-01", 0, 1, 0, 0.5, 0, 0), ("2020-01-02", 5, 1, 0, 0.5, 0, 0)])
    with pytest.raises(ValueError, match="men.csv: row 1 has an item outside"):
        read_logs(tmp_path, "random", "men")


def test_bandit_config_checks_slots_at_start_up():
    with pytest.raises(ConfigError, match="position_bias has 3 slots but slate is 5"):
        load_config(None, None, ["bandit.slate=5"])
    assert load_config(None, "obd", []).bandit.logs.root.endswith("obd")


def test_the_bandit_stage_learns_across_runs_and_records_each(make_ctx):
    """The stage needs only the generator: each run plays more rounds from the saved state."""
    first = make_ctx("bandit.simulator.rounds=[1000]", "bandit.policies=[random,linucb]")
    run_stage(first, "bandit")
    assert load_policy(policy_path(first, "linucb")).rounds == 1000
    again = make_ctx("bandit.simulator.rounds=[500]", "bandit.policies=[random,linucb]")
    run_stage(again, "bandit")
    assert load_policy(policy_path(again, "linucb")).rounds == 1500
    rows = again.lake.read("gold", "bandit_metrics").where("metric = 'cumulative_reward'").collect()
    assert sorted((r["model"], r["rounds"]) for r in rows) == [("linucb", 500), ("linucb", 1000),
                                                                ("random", 500), ("random", 1000)]
    clicks = {(r["model"], r["rounds"]): r["value"] for r in rows}
    assert clicks[("linucb", 500)] > 1.5 * clicks[("random", 500)]   # it learnt in the first run

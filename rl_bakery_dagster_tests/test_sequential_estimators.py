"""Sequential off-policy estimators against values known in closed form on small hand-built MDPs.

Per-decision (weighted) importance sampling is checked against sums worked out by hand; weighted
doubly robust with the exact Q-function of a known policy must return that policy's true value,
whatever the logged actions (deterministic transitions); the Spark path (window functions, Poisson
bootstrap as grouped sums) must give the same numbers and an interval that covers the truth.
"""

import math

import numpy as np
import pytest

from rl_bakery_dagster.evaluation.sequential import (
    discounted_effective_episodes,
    effective_episodes,
    episode_sums,
    estimates,
    pdis,
    pdwis,
    percentile_interval,
    spark_episode_sums,
    wdr,
)

TARGET_ONE = 0.9  # the evaluated policy takes action 1 with probability 0.9
LOGGED = 0.5  # the logging policy is uniform over {0, 1}
GAMMA = 0.9
HORIZON = 3


def ratio(action: int) -> float:
    return (TARGET_ONE if action == 1 else 1 - TARGET_ONE) / LOGGED


def test_per_decision_estimators_match_hand_sums() -> None:
    # episode A plays (1, 1), rewards (1, 1); episode B plays (1, 0), rewards (1, 0); gamma = 1.
    # ratios: 1.8 for action 1, 0.2 for action 0. A's weights 1.8, 3.24; B's 1.8, 0.36.
    # PDWIS = (1.8 + 1.8) / 3.6 + 3.24 / (3.24 + 0.36) = 1 + 0.9 = 1.9
    # PDIS  = (1.8 + 1.8) / 2 + 3.24 / 2 = 3.42
    sums = episode_sums(
        [{"ratio": [1.8, 1.8], "reward": [1.0, 1.0]}, {"ratio": [1.8, 0.2], "reward": [1.0, 0.0]}]
    )
    assert pdwis(sums, 1.0)[0] == pytest.approx(1.9, abs=1e-12)
    assert pdis(sums, 1.0)[0] == pytest.approx(3.42, abs=1e-12)
    # Kish ESS at the last step: (3.24 + 0.36)^2 / (3.24^2 + 0.36^2)
    assert effective_episodes(sums)[0] == pytest.approx(3.6**2 / (3.24**2 + 0.36**2), abs=1e-12)


def test_per_step_effective_episodes_are_averaged_with_the_discount() -> None:
    # A: ratios (2, 2), weights 2, 4; B: ratios (1, 0.5), weights 1, 0.5.
    # t = 0: (2 + 1)^2 / (4 + 1) = 1.8;  t = 1: (4 + 0.5)^2 / (16 + 0.25) = 20.25 / 16.25
    # gamma = 0.5: (1.8 + 0.5 * 20.25 / 16.25) / 1.5
    sums = episode_sums(
        [{"ratio": [2.0, 2.0], "reward": [0.0, 0.0]}, {"ratio": [1.0, 0.5], "reward": [0.0, 0.0]}]
    )
    expected = (1.8 + 0.5 * 20.25 / 16.25) / 1.5
    assert discounted_effective_episodes(sums, 0.5)[0] == pytest.approx(expected, abs=1e-12)
    # gamma = 1 weighs both steps alike; the last step alone is effective_episodes
    assert discounted_effective_episodes(sums, 1.0)[0] == pytest.approx((1.8 + 20.25 / 16.25) / 2, abs=1e-12)
    assert effective_episodes(sums)[0] == pytest.approx(20.25 / 16.25, abs=1e-12)
    # an episode that ended keeps its final weight: C ends at t = 0 with weight 3, A as above
    ended = episode_sums([{"ratio": [3.0], "reward": [0.0]}, {"ratio": [2.0, 2.0], "reward": [0.0, 0.0]}])
    t0, t1 = 25.0 / 13.0, 49.0 / 25.0
    assert discounted_effective_episodes(ended, 1.0)[0] == pytest.approx((t0 + t1) / 2, abs=1e-12)


def test_an_ended_episode_keeps_its_weight_in_later_normalisers() -> None:
    # C ends after one decision (weight 1.8, reward 1); A as above. At t = 1 only A earns,
    # but C's final weight stays in the normaliser: 3.24 / (3.24 + 1.8).
    sums = episode_sums([{"ratio": [1.8], "reward": [1.0]}, {"ratio": [1.8, 1.8], "reward": [1.0, 1.0]}])
    assert pdwis(sums, 1.0)[0] == pytest.approx(1.0 + 3.24 / 5.04, abs=1e-12)


def chain_values() -> tuple[list[float], float]:
    """Action 1 earns 1 and moves on, action 0 earns 0 and ends the episode; at most HORIZON steps."""
    values = [0.0] * (HORIZON + 1)
    for k in reversed(range(HORIZON)):
        values[k] = TARGET_ONE * (1.0 + GAMMA * values[k + 1])
    return values, values[0]  # V(s0) = 0.9 (1 + 0.9 * 0.9 (1 + 0.9 * 0.9)) = 2.21949


def chain_episodes(count: int, seed: int) -> list[dict[str, list[float]]]:
    """Episodes logged by the uniform policy, with the exact Q and V of the evaluated policy."""
    values, _ = chain_values()
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(count):
        episode: dict[str, list[float]] = {"ratio": [], "reward": [], "q": [], "v": []}
        for k in range(HORIZON):
            action = int(rng.integers(0, 2))
            episode["ratio"].append(ratio(action))
            episode["reward"].append(float(action))
            episode["q"].append(1.0 + GAMMA * values[k + 1] if action == 1 else 0.0)
            episode["v"].append(values[k])
            if action == 0:
                break
        episodes.append(episode)
    return episodes


def test_true_value_in_closed_form() -> None:
    assert chain_values()[1] == pytest.approx(0.9 * (1 + 0.9 * 0.9 * (1 + 0.9 * 0.9)), abs=1e-12)


@pytest.mark.parametrize("count", [1, 3, 25])  # exact whatever the sample, even one episode
def test_weighted_doubly_robust_with_the_exact_model_is_the_true_value(count: int) -> None:
    sums = episode_sums(chain_episodes(count, seed=count))
    assert wdr(sums, GAMMA)[0] == pytest.approx(chain_values()[1], abs=1e-12)


def test_the_logging_policy_judged_on_its_own_logs_is_its_observed_return() -> None:
    episodes = chain_episodes(40, seed=3)
    for episode in episodes:
        episode["ratio"] = [1.0] * len(episode["ratio"])
    sums = episode_sums(episodes)
    observed = np.mean([sum(GAMMA**t * r for t, r in enumerate(e["reward"])) for e in episodes])
    values = estimates(sums, GAMMA)
    assert values["pdwis"][0] == pytest.approx(observed, abs=1e-12)
    assert values["pdis"][0] == pytest.approx(observed, abs=1e-12)
    assert values["logging"][0] == pytest.approx(observed, abs=1e-12)
    assert effective_episodes(sums)[0] == pytest.approx(40.0)


def episodes_frame(spark, episodes: list[dict[str, list[float]]]):
    rows = [
        (index, t, e["ratio"][t], e["reward"][t], e.get("q", [0.0] * 9)[t], e.get("v", [0.0] * 9)[t])
        for index, e in enumerate(episodes)
        for t in range(len(e["ratio"]))
    ]
    return spark.createDataFrame(
        rows, "episode long, t int, ratio double, reward double, q_logged double, v_target double"
    )


def test_spark_sums_agree_and_the_bootstrap_interval_covers_the_truth(spark) -> None:
    episodes = chain_episodes(200, seed=11)
    sums = spark_episode_sums(episodes_frame(spark, episodes), ["episode"], replicates=100, seed=5)
    local = episode_sums(episodes)
    assert sums.episodes[0] == 200
    for name in ("pdis", "pdwis", "wdr", "logging"):
        assert estimates(sums, GAMMA)[name][0] == pytest.approx(estimates(local, GAMMA)[name][0], rel=1e-9)
    truth = chain_values()[1]
    assert estimates(sums, GAMMA)["wdr"][0] == pytest.approx(truth, abs=1e-9)
    low, high = percentile_interval(pdwis(sums, GAMMA)[1:], 0.95)
    assert low <= truth <= high and high - low < 1.0
    # bootstrap replicates weigh episodes Poisson(1): about 200 episodes each, never all the same
    assert abs(sums.episodes[1:].mean() - 200) < 8 and sums.episodes[1:].std() > 5
    # the logging policy (uniform) is worse than the evaluated one: V_logging(s0) by hand
    logging_truth = 0.5 * (1 + GAMMA * 0.5 * (1 + GAMMA * 0.5))
    low, high = percentile_interval(estimates(sums, GAMMA)["logging"][1:], 0.95)
    assert low <= logging_truth <= high


def test_a_policy_the_logs_never_followed_has_no_effective_episodes() -> None:
    # the candidate never takes the logged action 0 at the first step (ratio 0): no weight is left
    sums = episode_sums([{"ratio": [0.0, 1.0], "reward": [1.0, 1.0]}, {"ratio": [0.0], "reward": [0.0]}])
    assert effective_episodes(sums)[0] == 0.0
    assert pdwis(sums, 1.0)[0] == 0.0 and not math.isnan(wdr(sums, 1.0)[0])


def test_decisions_start_at_first_and_take_the_next_reward(spark) -> None:
    """Logged timesteps → decisions: the tail of an episode begun on an earlier day is left out, each
    decision gets the reward of the next timestep, and a decision whose reward is not yet logged
    (the episode runs past the day's end) is cut."""
    from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS, cartpole_application
    from rl_bakery_dagster.transforms.decisions import logged_decisions

    schema = cartpole_application(warehouse="unused").schema
    step_types = [1, 2, 0, 1, 1, 2, 0, 1]  # MID, LAST (yesterday's episode), FIRST ... LAST, FIRST, MID
    rewards = [1.0, 2.0, 0.0, 3.0, 4.0, 5.0, 0.0, 6.0]
    rows = [
        (7, ts, step_types[ts], *[float(ts)] * 4, ts % 2, 0.5, rewards[ts], 1.0)
        for ts in range(len(step_types))
    ]
    frame = spark.createDataFrame(
        rows,
        ["user_id", "ts", "step_type", *OBSERVATION_COLUMNS, "action", "action_prob", "reward", "discount"],
    )
    got = sorted(
        (r["episode"], r["t"], r["cart_position"], r["reward"])
        for r in logged_decisions(frame, schema).collect()
    )
    # episode 1 = ts 2..5: decisions at ts 2, 3, 4 earn the rewards logged at ts 3, 4, 5;
    # episode 2 = ts 6..7: the decision at ts 6 earns ts 7's reward, ts 7's is not logged yet
    assert got == [(1, 0, 2.0, 3.0), (1, 1, 3.0, 4.0), (1, 2, 4.0, 5.0), (2, 0, 6.0, 6.0)]

"""Fitted Q Evaluation against closed-form values on a tabular chain.

The chain: states 0..3 (one-hot), action 1 moves one state right, action 0 stays; moving right out
of state 3 ends the episode with reward 1 (discount 0 after it), every other step pays 0. For a
policy that moves right with probability p, the value k steps from the end solves
``V_k = p * gamma * V_{k-1} + (1 - p) * gamma * V_k`` (V_0 = 1/gamma for the paying last move), so
``V_k = f * (gamma * f) ** (k - 1)`` with ``f = p / (1 - (1 - p) * gamma)``: a hand derivation
independent of the code. The logs come from a uniform random policy (p = 1/2, the logging head's
truth); the candidate always prefers moving right and is deployed epsilon-greedy, so p = 1 - eps/2.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

STATES = 4
GAMMA = 0.9
EPSILON = 0.5

Batch = collections.namedtuple("Batch", "observation action reward discount")


def chain_value(steps_to_end: int, move_right: float) -> float:
    f = move_right / (1.0 - (1.0 - move_right) * GAMMA)
    return f * (GAMMA * f) ** (steps_to_end - 1)


def uniform_transitions(episodes: int, seed: int) -> dict[str, np.ndarray]:
    """Transitions of a uniform random policy on the chain, with the next logged action (for SARSA)."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, int, int, int, float, float]] = []
    for _ in range(episodes):
        state, action = 0, int(rng.integers(2))
        while True:
            if action == 1 and state == STATES - 1:
                rows.append((state, action, state, 0, 1.0, 0.0))
                break
            next_state = state + action
            next_action = int(rng.integers(2))
            rows.append((state, action, next_state, next_action, 0.0, 1.0))
            state, action = next_state, next_action
    table = np.array(rows)
    eye = np.eye(STATES, dtype=np.float32)
    return {
        "observation": np.stack([eye[table[:, 0].astype(int)], eye[table[:, 2].astype(int)]], axis=1),
        "action": table[:, [1, 3]].astype(np.int64),
        "reward": table[:, [4]].astype(np.float32),
        "discount": table[:, [5]].astype(np.float32),
    }


def batches(data: dict[str, np.ndarray], size: int, seed: int):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    rows = len(data["action"])
    while True:
        index = rng.integers(rows, size=size)
        yield Batch(**{k: tf.constant(v[index]) for k, v in data.items()})


@pytest.fixture(scope="module")
def fitted():
    import tensorflow as tf

    from rl_bakery_dagster.evaluation.fqe import FQESettings, fit_q_evaluation

    def prefers_right(observations: tf.Tensor) -> tf.Tensor:
        size = tf.shape(observations)[0]
        return tf.tile(tf.constant([[0.0, 1.0]]), [size, 1])

    data = uniform_transitions(episodes=400, seed=0)
    settings = FQESettings(
        train_steps=2500, batch_size=128, learning_rate=3e-3, target_update_period=50, fc_layer_params=(32,)
    )
    return fit_q_evaluation(batches(data, 128, 1), prefers_right, EPSILON, GAMMA, STATES, 2, settings)


def test_candidate_head_converges_to_the_closed_form_values(fitted) -> None:
    """The candidate head's epsilon-greedy value in every state matches V_k with p = 1 - eps/2."""
    from rl_bakery_dagster.evaluation.fqe import start_values

    states = np.eye(STATES)
    value, _ = start_values(
        fitted.candidate,
        fitted.logging,
        states,
        np.ones(STATES, np.int64),
        np.zeros(STATES, np.int64),
        EPSILON,
    )
    expected = [chain_value(STATES - s, 1.0 - EPSILON / 2) for s in range(STATES)]
    np.testing.assert_allclose(value, expected, atol=0.03)


def test_logging_head_learns_the_logging_policy_by_sarsa(fitted) -> None:
    """Without any propensity, the logging head's Q at each action averages to the uniform policy's V_k."""
    q = fitted.logging.values(np.eye(STATES))
    expected = [chain_value(STATES - s, 0.5) for s in range(STATES)]
    np.testing.assert_allclose(q.mean(axis=1), expected, atol=0.03)
    # and Q itself: moving right from the last state pays 1 now; staying is worth gamma * V_1
    np.testing.assert_allclose(q[STATES - 1], [GAMMA * expected[-1], 1.0], atol=0.03)


def test_numpy_forward_matches_the_tf_agents_network() -> None:
    """Executors score with `FittedQ.values` (numpy): it must compute what the TF-Agents QNetwork does."""
    import tensorflow as tf
    from tf_agents.networks import q_network
    from tf_agents.specs import tensor_spec

    from rl_bakery_dagster.evaluation.fqe import FittedQ

    network = q_network.QNetwork(
        tensor_spec.TensorSpec((5,), tf.float32),
        tensor_spec.BoundedTensorSpec((), tf.int64, minimum=0, maximum=2),
        fc_layer_params=(7, 6),
    )
    network.create_variables()
    for variable in network.trainable_variables:
        variable.assign(tf.random.normal(variable.shape, seed=3))
    observations = np.random.default_rng(0).normal(size=(11, 5)).astype(np.float32)
    expected, _ = network(observations)
    fitted = FittedQ(tuple(v.numpy() for v in network.trainable_variables))
    np.testing.assert_allclose(fitted.values(observations), expected.numpy(), rtol=1e-4, atol=1e-4)


def test_a_day_without_stored_transitions_fits_nothing(tmp_path) -> None:
    """An empty trajectories partition gives no FQE (the gate then says 'not enough evidence'), and a
    gate that judges FQE with no FQE steps is refused before any work."""
    from rl_bakery_dagster.assets.rl_evaluation import SequentialEvaluationConfig, fit_day_fqe
    from rl_bakery_dagster.transforms.decisions import Candidate
    from rl_bakery_dagster_tests.apps import tiny_cartpole

    (tmp_path / "empty").mkdir()
    app = tiny_cartpole(tmp_path)
    config = SequentialEvaluationConfig()
    candidate = Candidate("unused", (), 4, 2, 1, 0.1)
    assert fit_day_fqe(app, str(tmp_path / "empty"), candidate, 0.99, config, None) is None
    assert fit_day_fqe(app, None, candidate, 0.99, config, None) is None
    with pytest.raises(ValueError, match="fqe_train_steps must be positive"):
        SequentialEvaluationConfig(fqe_train_steps=0).validate_choices()
    SequentialEvaluationConfig(fqe_train_steps=0, estimator="wdr").validate_choices()


def test_poorly_covered_share_estimates_where_the_log_rarely_takes_the_candidates_action(spark) -> None:
    """The share is estimated from logged propensities alone. Oracle: the log is epsilon-greedy (0.1)
    around a logging greedy action, and the candidate disagrees with it on a known 30 % of the states,
    where the log takes the candidate's action with probability 0.05 < 0.1; uniform logs cover every
    candidate, so their share is exactly 0."""
    from rl_bakery_dagster.assets.rl_evaluation import fqe_support

    rng = np.random.default_rng(0)
    n, disagree = 40_000, 0.3
    logging_greedy = rng.integers(0, 2, n)
    candidate_greedy = np.where(rng.random(n) < disagree, 1 - logging_greedy, logging_greedy)
    explore = rng.random(n) < 0.1
    action = np.where(explore, rng.integers(0, 2, n), logging_greedy)
    propensity = np.where(action == logging_greedy, 0.95, 0.05)
    rows = list(zip(action.tolist(), candidate_greedy.tolist(), propensity.tolist(), [1.0] * n, strict=True))
    frame = spark.createDataFrame(rows, "action long, greedy_action long, action_prob double, reward double")
    support = fqe_support(frame, rare=0.1)
    assert support["poorly_covered"] == pytest.approx(disagree, abs=0.06)
    assert support["reward_min"] == support["reward_max"] == 1.0
    uniform = spark.createDataFrame(
        [(int(a), int(g), 0.5, 0.0) for a, g in zip(action[:1000], candidate_greedy[:1000], strict=True)],
        "action long, greedy_action long, action_prob double, reward double",
    )
    assert fqe_support(uniform, rare=0.1)["poorly_covered"] == 0.0


def test_fqe_is_distrusted_when_it_diverges_or_extrapolates() -> None:
    """A value outside what any policy can earn (rewards in [0, 1], discount 0.99: [0, 100]) means the
    regression diverged (seen: 15,395 for a reward-flipped candidate); too many poorly covered states
    mean extrapolation. Either way the gate must not trust FQE; inside both limits it does."""
    from rl_bakery_dagster.assets.rl_evaluation import (
        SequentialEvaluationConfig,
        fqe_distrust,
        possible_values,
    )

    config = SequentialEvaluationConfig()
    support = {"poorly_covered": 0.05, "reward_min": 0.0, "reward_max": 1.0}
    low, high = possible_values(support, 0.99, 10_000)
    assert (low, high) == pytest.approx((0.0, 100.0))
    support |= {"possible_low": low, "possible_high": high}

    def values(candidate: float, logging: float) -> dict[str, np.ndarray]:
        return {"fqe": np.array([candidate]), "fqe_logging": np.array([logging])}

    assert fqe_distrust(values(55.0, 54.0), support, config) is None
    assert "diverged" in fqe_distrust(values(15_394.7, 55.2), support, config)
    assert "diverged" in fqe_distrust(values(55.0, float("nan")), support, config)
    assert "diverged" in fqe_distrust(values(-0.5, 55.0), support, config)
    poorly = {**support, "poorly_covered": 0.4}
    assert "40%" in fqe_distrust(values(55.0, 54.0), poorly, config)


def test_the_gate_sentence_names_the_evidence_each_estimator_counts() -> None:
    """FQE's floor counts the day's episodes; the importance-sampling estimators', Kish's effective ones."""
    from rl_bakery_dagster.assets.rl_evaluation import gate_sentence
    from rl_bakery_dagster.evaluation.estimators import NOT_ENOUGH_EVIDENCE

    fqe = gate_sentence(NOT_ENOUGH_EVIDENCE, "fqe", -0.06, -0.1, -0.03, 2.5, 5, 10, 0.95)
    wdr = gate_sentence(NOT_ENOUGH_EVIDENCE, "wdr", -0.06, -0.1, -0.03, 2.5, 2.94, 10, 0.95)
    assert "the day has 5 episodes, below the floor of 10" in fqe, fqe
    assert "effective" not in fqe
    assert "the effective number of episodes is 2.9, below the floor of 10" in wdr, wdr

"""Our Spark trajectories must equal what TF-Agents itself would train on.

TF-Agents' own driver plays CartPole into its own replay buffer while the same steps are logged
as warehouse rows over two days. The union of our two `trajectories` partitions must hold
exactly the buffer's `as_dataset(num_steps=n+1)` windows that stay inside one episode: same
observations, actions, rewards, discounts and step types, each window once, none across an
episode boundary, including the episodes that span midnight.
"""

import dataclasses
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tf_agents.drivers import dynamic_step_driver
from tf_agents.environments import batched_py_environment, suite_gym, tf_py_environment
from tf_agents.policies import random_tf_policy
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.trajectories import trajectory as trajectory_lib

from rl_bakery_dagster.application import FIRST, LAST, TrajectorySettings
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster_tests.apps import START, definitions, tiny_cartpole

ENVS, STEPS = 3, 120
MAX_LENGTH = 4 * STEPS
NUM_ACTIONS = 2  # CartPole: push left or right


def play_with_tf_agents(seed: int) -> tuple[tf_uniform_replay_buffer.TFUniformReplayBuffer, pd.DataFrame]:
    """TF-Agents driver → its replay buffer, and the same steps as warehouse rows.

    The driver counts only non-boundary steps, so each env logs somewhat more than STEPS rows.
    """
    tf.random.set_seed(seed)
    environments = [suite_gym.load("CartPole-v0") for _ in range(ENVS)]
    for index, environment in enumerate(environments):
        environment.seed(seed + index)
    env = tf_py_environment.TFPyEnvironment(batched_py_environment.BatchedPyEnvironment(environments))
    assert int(env.action_spec().maximum) + 1 == NUM_ACTIONS
    policy = random_tf_policy.RandomTFPolicy(env.time_step_spec(), env.action_spec())
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        policy.trajectory_spec, batch_size=ENVS, max_length=MAX_LENGTH, dataset_window_shift=1
    )
    items: list[trajectory_lib.Trajectory] = []
    driver = dynamic_step_driver.DynamicStepDriver(
        env, policy, observers=[buffer.add_batch, items.append], num_steps=ENVS * STEPS
    )
    driver.run()
    rows = []
    for env_id in range(ENVS):
        reward, discount = 0.0, 1.0  # what arrives with a FIRST step
        for t, item in enumerate(items):
            observation = item.observation.numpy()[env_id]
            rows.append(
                {
                    "user_id": env_id,
                    "ts": t,
                    "step_type": int(item.step_type.numpy()[env_id]),
                    **dict(zip(OBSERVATION_COLUMNS, observation.astype(float), strict=True)),
                    "action": int(item.action.numpy()[env_id]),
                    "action_prob": 1.0 / NUM_ACTIONS,  # RandomTFPolicy: uniform over the actions
                    "reward": reward,
                    "discount": discount,
                }
            )
            reward = float(item.reward.numpy()[env_id])
            discount = float(item.discount.numpy()[env_id])
    return buffer, pd.DataFrame(rows)


def buffer_windows(buffer: tf_uniform_replay_buffer.TFUniformReplayBuffer, n_step: int) -> dict:
    """The buffer's (n+1)-step windows that stay within one episode, keyed by (env, last ts).

    The deterministic pass also yields each env's short tail windows; those are not transitions.
    Item ids are `env * max_length + t`.
    """
    windows = {}
    for window, info in buffer.as_dataset(num_steps=n_step + 1, single_deterministic_pass=True):
        ids, steps = info.ids.numpy(), window.step_type.numpy()
        if len(ids) < n_step + 1 or np.any(steps[:-1] == LAST) or np.any(steps[1:] == FIRST):
            continue
        env_id, last_ts = divmod(int(ids[-1]), MAX_LENGTH)
        windows[(env_id, last_ts)] = window
    return windows


@pytest.mark.parametrize("n_step", [1, 3])  # one-step DQN and an n-step update
def test_trajectories_equal_tf_agents_replay_windows(spark: object, home: Path, n_step: int) -> None:
    buffer, rows = play_with_tf_agents(seed=7)
    midnight = rows.ts.max() // 2
    write_day(rows[rows.ts < midnight], str(home / "warehouse"), START)
    write_day(rows[rows.ts >= midnight], str(home / "warehouse"), "2024-01-02")

    app = dataclasses.replace(tiny_cartpole(home), trajectory=TrajectorySettings(n_step=n_step))
    defs = definitions(home, app)
    selection = dg.AssetSelection.assets(["cartpole", "timesteps"], ["cartpole", "trajectories"])
    for day in (START, "2024-01-02"):
        result = defs.resolve_job_def("daily_training").execute_in_process(
            partition_key=day, asset_selection=list(selection.resolve(defs.resolve_asset_graph()))
        )
        assert result.success

    ours = pd.read_parquet(home / "storage" / "cartpole" / "trajectories")
    expected = buffer_windows(buffer, n_step)
    assert set(zip(ours.user_id, ours.ts, strict=True)) == set(expected), set(
        zip(ours.user_id, ours.ts, strict=True)
    ) ^ set(expected)
    assert not ours.duplicated(["user_id", "ts"]).any()
    spans_midnight = 0
    for row in ours.itertuples():
        window = expected[(row.user_id, row.ts)]
        assert list(row.step_type) == list(window.step_type.numpy())
        np.testing.assert_allclose(
            np.asarray(row.observation).reshape(n_step + 1, 4), window.observation.numpy(), rtol=1e-6
        )
        assert list(row.action) == list(window.action.numpy())
        np.testing.assert_allclose(row.reward, window.reward.numpy()[:-1])
        np.testing.assert_allclose(row.discount, window.discount.numpy()[:-1])
        assert list(row.next_step_type) == list(window.next_step_type.numpy()[:-1])
        spans_midnight += row.ts - n_step < midnight <= row.ts
    assert spans_midnight > 0, "no window crossed midnight: the test lost its point"

"""`action_batch` scores every user on Spark executors with the day's exported policy.

The greedy actions must equal in-process inference of the same SavedModel, and the logged
propensities must be the exact epsilon-greedy probabilities of the actions chosen.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from rl_bakery_dagster.application import ParquetWarehouse
from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import tf_policy, write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, stored, tiny_cartpole

USERS = 3000


@pytest.fixture
def population(home: Path) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    users = pd.DataFrame(rng.uniform(-0.2, 0.2, (USERS, 4)), columns=list(OBSERVATION_COLUMNS))
    users.insert(0, "user_id", np.arange(USERS, dtype=np.int64))
    write_day(users, str(home / "population"), START)
    return users


def test_every_user_gets_an_action_with_its_exact_propensity(
    spark, home: Path, population: pd.DataFrame
) -> None:
    log_random_days(home, 1)
    epsilon = 0.2
    app = dataclasses.replace(
        tiny_cartpole(home, epsilon_greedy=epsilon), population=ParquetWarehouse(str(home / "population"))
    )
    result = definitions(home, app).resolve_job_def(DAILY_JOB).execute_in_process(partition_key=START)
    assert result.success

    batch = pd.read_parquet(stored(home, "cartpole", "action_batch", START))
    assert sorted(batch.user_id) == list(range(USERS))
    batch = batch.sort_values("user_id").reset_index(drop=True)

    saved = tf.saved_model.load(str(stored(home, "cartpole", "agent_checkpoint", START) / GREEDY_POLICY))
    observations = population[list(OBSERVATION_COLUMNS)].to_numpy(np.float32)
    in_process = tf_policy(saved)(
        np.zeros(USERS, np.int32), np.zeros(USERS, np.float32), np.ones(USERS, np.float32), observations
    )
    np.testing.assert_array_equal(batch.greedy_action.to_numpy(), in_process)

    greedy = batch.action == batch.greedy_action
    np.testing.assert_allclose(batch.action_prob[greedy], 1 - epsilon + epsilon / 2, rtol=1e-6)
    np.testing.assert_allclose(batch.action_prob[~greedy], epsilon / 2, rtol=1e-6)
    assert abs((~greedy).mean() - epsilon / 2) < 0.03  # random branch picks the other action half the time
    assert batch.policy_version.unique().tolist() == [f"cartpole@{START}#step20"]

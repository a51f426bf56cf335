"""A continuous-action application end to end: array actions, DDPG training, continuous action batches."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from rl_bakery_dagster.application import ParquetWarehouse
from rl_bakery_dagster.examples.gym_simulator import BatchedGym, random_policy, write_day
from rl_bakery_dagster.examples.mountain_car.application import (
    ENV_NAME,
    OBSERVATION_COLUMNS,
    mountain_car_application,
)
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster_tests.apps import START, definitions

TINY_DDPG = TFAgentsResource(
    algorithm="ddpg",
    actor_fc_layer_params=[8],
    critic_observation_fc_layer_params=[8],
    critic_joint_fc_layer_params=[8],
    batch_size=16,
    train_steps_per_day=10,
)


def test_ddpg_trains_on_logged_continuous_actions(spark, home: Path) -> None:
    product = BatchedGym(ENV_NAME, 4, seed=2)
    logs = product.log(random_policy(product.action_space, 2), 30, OBSERVATION_COLUMNS)
    write_day(logs, str(home / "warehouse"), START)
    users = logs[logs.ts == 0][["user_id", *OBSERVATION_COLUMNS]]
    write_day(users, str(home / "population"), START)
    app = dataclasses.replace(
        mountain_car_application(agent=TINY_DDPG, warehouse=str(home / "warehouse")),
        evaluator=None,
        population=ParquetWarehouse(str(home / "population")),
    )

    result = definitions(home, app).resolve_job_def(DAILY_JOB).execute_in_process(partition_key=START)
    assert result.success
    trajectories = pd.read_parquet(home / "storage" / "mountain_car" / "trajectories")
    logged = np.stack(trajectories.action.to_numpy())
    assert logged.shape == (len(trajectories), 2)  # two timesteps of a one-dimensional action
    assert np.all(np.abs(logged) <= 1.0) and logged.std() > 0
    checkpoint = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "agent_checkpoint"
    )
    assert checkpoint["train_steps"].value == 10
    assert np.isfinite(checkpoint["loss_mean"].value)
    batch = pd.read_parquet(home / "storage" / "mountain_car" / "action_batch")
    actions = np.stack(batch.action.to_numpy())
    assert actions.shape == (4, 1)
    assert np.all(np.abs(actions) <= 1.0)

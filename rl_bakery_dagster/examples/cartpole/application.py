"""CartPole as a daily RL application: a simulated product logs play, DQN learns from the logs."""

from __future__ import annotations

import os

from rl_bakery_dagster.application import (
    ActionSpace,
    Application,
    EvaluationResult,
    ParquetWarehouse,
    TimestepSchema,
    TrajectorySettings,
)
from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.examples.cartpole.simulator import OBSERVATION_COLUMNS, evaluate, tf_policy
from rl_bakery_dagster.resources.agents import TFAgentsResource

ENV_NAME = "CartPole-v0"
EVAL_EPISODES = int(os.environ.get("CARTPOLE_EVAL_EPISODES", "100"))


def warehouse_uri() -> str:
    """Where the simulated product writes its logs.

    `CARTPOLE_WAREHOUSE_URI`, default `<home>/warehouse/cartpole`.
    """
    return os.environ.get("CARTPOLE_WAREHOUSE_URI", str(bakery_home() / "warehouse" / "cartpole"))


def evaluate_greedy_policy(policy: object, seed: int) -> EvaluationResult:
    return evaluate(tf_policy(policy), ENV_NAME, EVAL_EPISODES, seed=10_000 + seed)


def cartpole_application(agent: TFAgentsResource | None = None, warehouse: str | None = None) -> Application:
    return Application(
        name="cartpole",
        start_date="2024-01-01",
        schema=TimestepSchema(
            env_id_columns=("user_id",),
            timestep_column="ts",
            observation_columns=OBSERVATION_COLUMNS,
        ),
        action_space=ActionSpace("discrete", num_actions=2),
        agent=agent
        or TFAgentsResource(
            algorithm="dqn",
            fc_layer_params=[100],
            learning_rate=1e-3,
            gamma=0.99,
            target_update_period=100,
            batch_size=64,
            train_steps_per_day=2000,
        ),
        warehouse=ParquetWarehouse(warehouse or warehouse_uri()),
        trajectory=TrajectorySettings(n_step=1, lookback_days=1, lag_days=0, window_days=30),
        evaluator=evaluate_greedy_policy,
    )

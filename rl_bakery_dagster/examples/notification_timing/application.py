"""Notification timing as a daily contextual bandit: which 3-hour UTC slot to send each user's push in.

The original RL Bakery use case, simulated (`simulator.py` documents the world). Every evening the
product writes the context of each user who gets a notification tomorrow (`population`); the
pipeline scores them (`action_batch[d]`); tomorrow's logs (`warehouse`) hold the slot sent, its
propensity, the policy version and whether the user clicked.

Hyper-parameters (tuned through config only; `benchmarks/NOTIFICATION_TIMING.md`): TF-Agents'
`NeuralEpsilonGreedyAgent` with a [64, 64] reward network, Adam 1e-3, 2,000 steps of 512 rows a
day over a 7-day window; 5 % exploration keeps every slot's propensity >= 0.05 / 8 for off-policy
evaluation while costing at most 5 % of the gap to the oracle.
"""

from __future__ import annotations

import os

from rl_bakery_dagster.application import (
    ActionSpace,
    Application,
    ParquetWarehouse,
    TimestepSchema,
    TrajectorySettings,
)
from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.examples.gym_application import warehouse_uri
from rl_bakery_dagster.examples.notification_timing.simulator import FEATURES, SLOTS
from rl_bakery_dagster.resources.agents import TFAgentsResource

NAME = "notification_timing"
START_DATE = "2024-01-01"

DEFAULT_AGENT = TFAgentsResource(
    algorithm="neural_epsilon_greedy",
    fc_layer_params=[64, 64],
    learning_rate=1e-3,
    batch_size=512,
    train_steps_per_day=2000,
    epsilon_greedy=0.05,
    shuffle_buffer_rows=200_000,
)


def population_uri() -> str:
    """`NOTIFICATION_TIMING_POPULATION_URI`, default `<home>/population/notification_timing`."""
    return os.environ.get(f"{NAME.upper()}_POPULATION_URI", str(bakery_home() / "population" / NAME))


def notification_timing_application(
    agent: TFAgentsResource | None = None,
    warehouse: str | None = None,
    population: str | None = None,
    window_days: int = 7,
) -> Application:
    """`warehouse` and `population` default to `<home>/warehouse/...` and `<home>/population/...`.

    `lag_days=1`: `agent_checkpoint[d]` trains through day d-1, so `policy_evaluation[d]` judges it
    on day d's logs before `action_batch[d]` deploys it for day d+1.
    """
    return Application(
        name=NAME,
        start_date=START_DATE,
        schema=TimestepSchema(
            env_id_columns=("user_id",),
            timestep_column="ts",
            observation_columns=FEATURES,
            action_prob_column="action_prob",
            policy_version_column="policy_version",
            single_step=True,
        ),
        action_space=ActionSpace("discrete", num_actions=SLOTS),
        agent=agent or DEFAULT_AGENT,
        warehouse=ParquetWarehouse(warehouse or warehouse_uri(NAME)),
        trajectory=TrajectorySettings(n_step=1, lookback_days=0, lag_days=1, window_days=window_days),
        population=ParquetWarehouse(population or population_uri()),
    )

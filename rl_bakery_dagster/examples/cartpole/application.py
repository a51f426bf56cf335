"""CartPole as a daily RL application: a simulated product logs play, DQN learns from the logs."""

import os

from rl_bakery_dagster.application import ActionSpace, Application, ParquetWarehouse
from rl_bakery_dagster.examples.gym_application import START_DATE, gym_application, warehouse_uri
from rl_bakery_dagster.examples.presets import PRESETS
from rl_bakery_dagster.resources.agents import TFAgentsResource

ENV_NAME = "CartPole-v0"
OBSERVATION_COLUMNS = ("cart_position", "cart_velocity", "pole_angle", "pole_velocity")

PRESET = PRESETS["cartpole"]
"""The configuration behind the published DQN CartPole-v0 numbers (benchmarks/LEARNING.md)."""
DEFAULT_AGENT = TFAgentsResource(
    **{
        **PRESET.agent,
        "train_steps_per_day": int(
            os.environ.get("CARTPOLE_TRAIN_STEPS_PER_DAY", PRESET.agent["train_steps_per_day"])
        ),
    }
)


def cartpole_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None, start_date: str = START_DATE
) -> Application:
    """`agent` and `warehouse` default to DQN and `CARTPOLE_WAREHOUSE_URI` (`<home>/warehouse/cartpole`)."""
    return gym_application(
        "cartpole",
        ENV_NAME,
        OBSERVATION_COLUMNS,
        ActionSpace("discrete", num_actions=2),
        agent or DEFAULT_AGENT,
        warehouse,
        eval_episodes=PRESET.day_eval_episodes,
        trajectory=PRESET.trajectory_settings(),
        start_date=start_date,
    )


def first_logged_day(warehouse: str | None = None) -> str:
    """The example's first day: its warehouse's first complete day (`START_DATE` while it has none).

    The demo writes the days just before today, so the chain (and the UI's partitions) start
    there rather than years of empty partitions earlier.
    """
    days = ParquetWarehouse(warehouse or warehouse_uri("cartpole")).complete_days()
    return min(days) if days else START_DATE

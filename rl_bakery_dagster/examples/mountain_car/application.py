"""MountainCarContinuous as a daily RL application with a continuous action: DDPG learns from logs."""

from rl_bakery_dagster.application import ActionSpace, Application
from rl_bakery_dagster.examples.gym_application import gym_application
from rl_bakery_dagster.examples.presets import PRESETS
from rl_bakery_dagster.resources.agents import TFAgentsResource

ENV_NAME = "MountainCarContinuous-v0"
OBSERVATION_COLUMNS = ("position", "velocity")

PRESET = PRESETS["mountain_car"]
"""The configuration behind the published DDPG numbers (benchmarks/LEARNING.md)."""
DEFAULT_AGENT = TFAgentsResource(**PRESET.agent)


def mountain_car_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None
) -> Application:
    """`agent` and `warehouse` default to DDPG and `MOUNTAIN_CAR_WAREHOUSE_URI`."""
    return gym_application(
        "mountain_car",
        ENV_NAME,
        OBSERVATION_COLUMNS,
        ActionSpace("continuous", low=(-1.0,), high=(1.0,)),
        agent or DEFAULT_AGENT,
        warehouse,
        eval_episodes=PRESET.day_eval_episodes,
        trajectory=PRESET.trajectory_settings(),
    )

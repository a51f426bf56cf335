"""CartPole-v1 (episodes of up to 500 steps) as a daily application."""

from rl_bakery_dagster.application import ActionSpace, Application
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_application import START_DATE, preset_application
from rl_bakery_dagster.resources.agents import TFAgentsResource

ENV_NAME = "CartPole-v1"
__all__ = ["ENV_NAME", "OBSERVATION_COLUMNS", "cartpole_v1_application"]


def cartpole_v1_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None, start_date: str = START_DATE
) -> Application:
    """`agent` and `warehouse` default to the `cartpole_v1` preset and `CARTPOLE_V1_WAREHOUSE_URI`."""
    return preset_application(
        "cartpole_v1",
        OBSERVATION_COLUMNS,
        ActionSpace("discrete", num_actions=2),
        agent,
        warehouse,
        start_date,
    )

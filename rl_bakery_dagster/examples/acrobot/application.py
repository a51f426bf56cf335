"""Acrobot-v1 as a daily application: swing the lower link's tip above the bar, learnt from logs."""

from rl_bakery_dagster.application import ActionSpace, Application
from rl_bakery_dagster.examples.gym_application import START_DATE, preset_application
from rl_bakery_dagster.resources.agents import TFAgentsResource

ENV_NAME = "Acrobot-v1"
OBSERVATION_COLUMNS = ("cos_theta1", "sin_theta1", "cos_theta2", "sin_theta2", "theta1_dot", "theta2_dot")


def acrobot_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None, start_date: str = START_DATE
) -> Application:
    """`agent` and `warehouse` default to the `acrobot` preset and `ACROBOT_WAREHOUSE_URI`."""
    return preset_application(
        "acrobot", OBSERVATION_COLUMNS, ActionSpace("discrete", num_actions=3), agent, warehouse, start_date
    )

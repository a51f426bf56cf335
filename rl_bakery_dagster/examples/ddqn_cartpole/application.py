"""DDQN CartPole-v0 as a daily application, sized to RL Bakery's 6,600 logged timesteps."""

from rl_bakery_dagster.application import ActionSpace, Application
from rl_bakery_dagster.examples.cartpole.application import ENV_NAME, OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_application import START_DATE, preset_application
from rl_bakery_dagster.resources.agents import TFAgentsResource

__all__ = ["ENV_NAME", "OBSERVATION_COLUMNS", "ddqn_cartpole_application"]


def ddqn_cartpole_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None, start_date: str = START_DATE
) -> Application:
    """`agent` and `warehouse` default to the `ddqn_cartpole` preset and `DDQN_CARTPOLE_WAREHOUSE_URI`."""
    return preset_application(
        "ddqn_cartpole",
        OBSERVATION_COLUMNS,
        ActionSpace("discrete", num_actions=2),
        agent,
        warehouse,
        start_date,
    )

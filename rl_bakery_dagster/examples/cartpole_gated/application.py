"""CartPole-v0 with `lag_days = 1`: the application gets `policy_evaluation` and its deployment gate.

Its logs name the policy that chose each action (`policy_version`), so a candidate the gate cannot judge
off-policy is played to a canary of users and judged on-policy the next day.
"""

from rl_bakery_dagster.application import ActionSpace, Application
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_application import START_DATE, preset_application
from rl_bakery_dagster.resources.agents import TFAgentsResource

__all__ = ["OBSERVATION_COLUMNS", "cartpole_gated_application"]


def cartpole_gated_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None, start_date: str = START_DATE
) -> Application:
    """`agent` and `warehouse` default to the `cartpole_gated` preset and `CARTPOLE_GATED_WAREHOUSE_URI`."""
    return preset_application(
        "cartpole_gated",
        OBSERVATION_COLUMNS,
        ActionSpace("discrete", num_actions=2),
        agent,
        warehouse,
        start_date,
        policy_version_column="policy_version",
    )

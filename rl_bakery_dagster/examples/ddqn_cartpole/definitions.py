"""The `ddqn_cartpole` example's Dagster definitions (`dagster dev`, `dagster job execute -m ...`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.ddqn_cartpole.application import ddqn_cartpole_application

defs = build_definitions(ddqn_cartpole_application())

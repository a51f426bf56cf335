"""The `cartpole_v1` example's Dagster definitions (`dagster dev`, `dagster job execute -m ...`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.cartpole_v1.application import cartpole_v1_application

defs = build_definitions(cartpole_v1_application())

"""The `cartpole_gated` example's Dagster definitions (`dagster dev`, `dagster job execute -m ...`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.cartpole_gated.application import cartpole_gated_application

defs = build_definitions(cartpole_gated_application())

"""The CartPole application's Dagster definitions (`dagster dev`, `dagster job execute -m ...`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.cartpole.application import cartpole_application, first_logged_day

defs = build_definitions(cartpole_application(start_date=first_logged_day()))

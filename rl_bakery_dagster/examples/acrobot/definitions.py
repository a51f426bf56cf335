"""The `acrobot` example's Dagster definitions (`dagster dev`, `dagster job execute -m ...`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.acrobot.application import acrobot_application

defs = build_definitions(acrobot_application())

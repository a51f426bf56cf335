"""A tiny CartPole app with a population, loaded by `test_launch_paths.py` through every entry point.

Its warehouse and population live under `RL_BAKERY_HOME`, so each launch gets its own home.
"""

import dataclasses

from rl_bakery_dagster.application import ParquetWarehouse
from rl_bakery_dagster.definitions import bakery_home, build_definitions
from rl_bakery_dagster_tests.apps import tiny_cartpole

app = dataclasses.replace(
    tiny_cartpole(bakery_home()), population=ParquetWarehouse(str(bakery_home() / "population"))
)
defs = build_definitions(app)

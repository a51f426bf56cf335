"""A tiny CartPole app for `test_ui_graphql.py`: the webserver loads it, its home is `RL_BAKERY_HOME`."""

from rl_bakery_dagster.definitions import bakery_home, build_definitions
from rl_bakery_dagster_tests.apps import tiny_cartpole

defs = build_definitions(tiny_cartpole(bakery_home()), home=bakery_home())

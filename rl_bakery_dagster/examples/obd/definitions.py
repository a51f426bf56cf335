"""The Open Bandit Dataset application's Dagster definitions (`dagster dev`, `dagster job execute`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.obd.application import obd_application

defs = build_definitions(obd_application())

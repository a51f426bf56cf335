"""The notification timing application's Dagster definitions (`dagster dev`, `dagster job execute -m ...`)."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.notification_timing.application import notification_timing_application

defs = build_definitions(notification_timing_application())

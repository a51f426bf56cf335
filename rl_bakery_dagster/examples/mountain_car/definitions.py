"""The MountainCarContinuous (DDPG) application's Dagster definitions."""

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.mountain_car.application import mountain_car_application

defs = build_definitions(mountain_car_application())

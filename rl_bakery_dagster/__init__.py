"""Batch offline reinforcement learning and contextual bandits as a Dagster asset graph.

TF-Agents needs Keras 2: ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first
imported, and every entry point (the Dagster CLI, ``dagster dev``, tests) imports this package
first.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rl_bakery_dagster.application import (
    ActionSpace,
    Application,
    ParquetWarehouse,
    TimestepSchema,
    TrajectorySettings,
)
from rl_bakery_dagster.definitions import build_definitions

__all__ = [
    "ActionSpace",
    "Application",
    "ParquetWarehouse",
    "TimestepSchema",
    "TrajectorySettings",
    "build_definitions",
]

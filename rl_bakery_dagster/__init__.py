"""Batch offline reinforcement learning and contextual bandits as a Dagster asset graph.

TF-Agents needs Keras 2: ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first
imported, and every entry point (the Dagster CLI, ``dagster dev``, tests) imports this package
first; so importing it applies the process defaults of `environment.py` (also loopback binding
for the embedded Spark), whatever the launch path.
"""

from rl_bakery_dagster.environment import apply_process_defaults
from rl_bakery_dagster.quiet import silence_known_noise

apply_process_defaults()
silence_known_noise()  # TensorFlow's, TF-Agents' and gym's known start-up noise, by exact text

_EXPORTS = {
    "ActionSpace": "rl_bakery_dagster.application",
    "Application": "rl_bakery_dagster.application",
    "ParquetWarehouse": "rl_bakery_dagster.application",
    "TimestepSchema": "rl_bakery_dagster.application",
    "TrajectorySettings": "rl_bakery_dagster.application",
    "build_definitions": "rl_bakery_dagster.definitions",
    "TFAgentsResource": "rl_bakery_dagster.resources.agents",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> object:
    """Imports on first use, so that Spark's Python workers, which load `transforms.scoring`,
    do not pay for Dagster's import."""
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

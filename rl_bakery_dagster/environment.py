"""Process-wide defaults every launch path needs, applied by the package itself.

The scripts (`scripts/env.sh`) used to be the only place that set them, so `uv run dagster ...`,
the venv's interpreter started directly (an IDE, a service manager) and the Python API ran
without them. Importing `rl_bakery_dagster` now applies them, each only where the user has not
set the variable: TensorFlow's legacy-Keras switch and log level (before TensorFlow is
imported), and for the embedded (local) Spark, loopback binding of the driver and its UI.
This module imports nothing heavy: Spark's Python workers import the package too.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

LOOPBACK = "127.0.0.1"


def is_local_spark(environ: Mapping[str, str] = os.environ) -> bool:
    """True when the run's Spark is the embedded one (`local[...]`), not a cluster or Spark Connect."""
    master = environ.get("RL_BAKERY_SPARK_MASTER", "local[*]")
    return not environ.get("RL_BAKERY_SPARK_REMOTE") and master.startswith("local")


def apply_process_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """Sets the variables that safety and quiet depend on, unless already set."""
    environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # TF-Agents needs Keras 2
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if is_local_spark(environ):
        # read by the JVM when it starts: its web UI binds here instead of 0.0.0.0
        environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        # PySpark reads this variable (not `spark.pyspark.python`) when the SparkContext starts in
        # this process: its Python workers then run this interpreter, not the first python3 on PATH
        environ.setdefault("PYSPARK_PYTHON", sys.executable)


def json_object_setting(name: str, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The JSON object in the variable `name` ({} when unset); a sentence naming it when invalid."""
    text = environ.get(name, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{name} is not valid JSON ({error.msg} at character {error.pos}): {text[:200]!r}. "
            f'Give a JSON object, for example {name}=\'{{"spark.executor.memory": "8g"}}\', or unset it.'
        ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{name} must be a JSON object of settings, not {type(value).__name__}: {text[:200]!r}"
        )
    return value

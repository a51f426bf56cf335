"""Shared helpers of the benchmark scripts: the machine, a local[2] SparkSession, timing, the JSON line.

Every script prints exactly one JSON object as its last stdout line, so a driver can collect the
figures with `tail -n 1`.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import rl_bakery_dagster  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the embedded Spark listens on loopback only

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pyspark", "polars", "pyarrow", "tensorflow", "tf-agents", "dagster", "gym", "numpy")


def machine() -> dict[str, Any]:
    """Cores, memory and library versions, so a figure is never read without its machine."""
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "")
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory_kib / 2**20, 1),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    """Adds the wall seconds of the block to `into[name]`."""
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + time.perf_counter() - started


def spark_session(home: Path, master: str = "local[2]", extra: dict[str, str] | None = None) -> Any:
    """A real SparkSession with the package's own settings (`spark_config`), on `master`."""
    from pyspark.sql import SparkSession

    from rl_bakery_dagster.resources.spark import spark_config

    config = spark_config(home, {"RL_BAKERY_SPARK_MASTER": master})
    config["spark.ui.enabled"] = "false"
    config.update(extra or {})
    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def quiet_tensorflow() -> None:
    """TF, absl and gym warnings would bury the JSON line in noise."""
    import warnings

    import tensorflow as tf
    from absl import logging as absl_logging

    tf.get_logger().setLevel("ERROR")
    absl_logging.set_verbosity(absl_logging.ERROR)
    warnings.filterwarnings("ignore")


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, digits)


def emit(result: dict[str, Any]) -> None:
    """Prints the result as the last line of stdout (and nothing may follow it)."""
    result.setdefault("machine", machine())
    result.setdefault("command", " ".join([Path(sys.executable).name, *sys.argv]))
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=False, default=str), flush=True)

"""The Spark resource: embedded `local[*]` by default, any cluster by configuration only.

`RL_BAKERY_SPARK_MASTER` picks the master (`local[*]`, `spark://host:7077`, `yarn`,
`k8s://...`); `RL_BAKERY_SPARK_REMOTE` picks a Spark Connect server (`sc://host:15002`)
instead; `RL_BAKERY_SPARK_CONF` adds any Spark settings as a JSON object.

Settings are layered, each over the one before: the embedded defaults, the environment
(`RL_BAKERY_SPARK_*`), then the run's `spark_config` (the launchpad). A run that sets one key
keeps every other (master, UTC time zone, local folders): Dagster hands a resource only the run
config's dict, so the layers below it are bound to the resource's class (`spark_resource`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import SparkSession

from rl_bakery_dagster.environment import LOOPBACK, is_local_spark, json_object_setting

LOCAL_DEFAULTS: Mapping[str, Any] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    # partitionBy("dt") writes keep up to 4 files open per task instead of first sorting every row
    # by dt (benchmarks/trajectories.py: 7-8 % on the trajectories job at 10^6-10^7 rows)
    "spark.sql.maxConcurrentOutputFileWriters": "4",
}


def spark_config(home: Path, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Spark settings for an application whose local state lives under `home`."""
    config: dict[str, Any] = {"spark.app.name": "rl_bakery_dagster", **LOCAL_DEFAULTS}
    if environ.get("RL_BAKERY_SPARK_REMOTE"):
        config = {"spark.remote": environ["RL_BAKERY_SPARK_REMOTE"]}
    else:
        config["spark.master"] = environ.get("RL_BAKERY_SPARK_MASTER", "local[*]")
        config["spark.sql.warehouse.dir"] = str(home / "spark-warehouse")
        config["spark.local.dir"] = str(home / "spark-tmp")
        config["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={home / 'derby'}"
    if is_local_spark(environ):
        # the embedded Spark serves this process only: its driver listens on loopback, and its
        # Python workers run this interpreter (not the first `python3` on PATH)
        config["spark.driver.bindAddress"] = LOOPBACK
        config["spark.driver.host"] = LOOPBACK
        if not environ.get("PYSPARK_PYTHON"):
            config["spark.pyspark.python"] = sys.executable
    config.update(json_object_setting("RL_BAKERY_SPARK_CONF", environ))
    return config


class LayeredPySparkResource(PySparkResource):
    """`PySparkResource` whose run config is merged over `base_spark_config` instead of replacing it."""

    base_spark_config: ClassVar[Mapping[str, Any]] = {}

    def effective_spark_config(self) -> dict[str, Any]:
        return {**self.base_spark_config, **self.spark_config}

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        builder = SparkSession.builder
        for key, value in self.effective_spark_config().items():
            builder = builder.config(key, value)
        self._spark_session = builder.getOrCreate()


def spark_resource(home: Path, environ: Mapping[str, str] = os.environ) -> PySparkResource:
    """The `pyspark` resource: the launchpad shows the full settings, a run may set any subset."""
    base = spark_config(home, environ)
    bound = type(
        "PySparkResource", (LayeredPySparkResource,), {"base_spark_config": base, "__module__": __name__}
    )
    return bound(spark_config=base)

"""The Spark resource: embedded `local[*]` by default, any cluster by configuration only.

`RL_BAKERY_SPARK_MASTER` picks the master (`local[*]`, `spark://host:7077`, `yarn`,
`k8s://...`); `RL_BAKERY_SPARK_REMOTE` picks a Spark Connect server (`sc://host:15002`)
instead; `RL_BAKERY_SPARK_CONF` adds any Spark settings as a JSON object.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster_pyspark import PySparkResource

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
    config.update(json.loads(environ.get("RL_BAKERY_SPARK_CONF", "{}")))
    return config


def spark_resource(home: Path, environ: Mapping[str, str] = os.environ) -> PySparkResource:
    return PySparkResource(spark_config=spark_config(home, environ))

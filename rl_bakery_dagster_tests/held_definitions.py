"""Definitions for the run-queue test: the tiny CartPole app whose warehouse waits for a gate file.

A run of it stays in progress (holding its application's pool) until the test creates the file
named by `RL_BAKERY_TEST_GATE`, so the test can look at the queue while the run holds the slot.
"""

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.sql import SparkSession

from rl_bakery_dagster.application import ParquetWarehouse
from rl_bakery_dagster.warehouse import DayRead
from rl_bakery_dagster_tests.apps import definitions, tiny_cartpole


@dataclass(frozen=True)
class GatedWarehouse(ParquetWarehouse):
    gate: str = ""

    def read_recorded(self, spark: SparkSession, day: str) -> DayRead:
        deadline = time.monotonic() + 300
        while not os.path.exists(self.gate):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the test never opened {self.gate}")
            time.sleep(0.2)
        return super().read_recorded(spark, day)


home = Path(os.environ["RL_BAKERY_HOME"])
warehouse = GatedWarehouse(str(home / "warehouse"), gate=os.environ["RL_BAKERY_TEST_GATE"])
defs = definitions(home, replace(tiny_cartpole(home), warehouse=warehouse))

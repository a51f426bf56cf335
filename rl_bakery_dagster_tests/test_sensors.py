"""The warehouse sensor never wedges and never repeats a day, judged against a real instance.

Each tick reads `agent_checkpoint`'s state from a real (temporary, on-disk) Dagster instance in
which real runs have materialised or failed days, so the tests cover what an operator meets:
a failed day and its repair, days trained by hand or by a backfill before the sensor was
turned on, and a run still in progress.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest
from pyspark.sql import SparkSession

from rl_bakery_dagster.application import ParquetWarehouse
from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.sensors import REQUEST_TAG, next_day
from rl_bakery_dagster.warehouse import DayRead
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole

SENSOR = "cartpole_warehouse_sensor"
DAY_2, DAY_3 = shift_day(START, 1), shift_day(START, 2)
MATERIALIZED = dg.AssetPartitionStatus.MATERIALIZED
FAILED = dg.AssetPartitionStatus.FAILED
IN_PROGRESS = dg.AssetPartitionStatus.IN_PROGRESS


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    (tmp_path / "instance").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        yield instance


def tick(defs: dg.Definitions, instance: dg.DagsterInstance) -> Any:
    """One evaluation, with no cursor: the sensor must not need one (Dagster's tick data)."""
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    return defs.resolve_sensor_def(SENSOR).evaluate_tick(context)


def requested(result: Any) -> list[str | None]:
    return [request.partition_key for request in result.run_requests]


def run_request(defs: dg.Definitions, instance: dg.DagsterInstance, request: dg.RunRequest) -> bool:
    """What the daemon does with a request: one run of the daily job for the requested day."""
    job = defs.resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(
        partition_key=request.partition_key, instance=instance, tags=request.tags, raise_on_error=False
    )
    return result.success


def materialize_by_hand(defs: dg.Definitions, instance: dg.DagsterInstance, first: str, last: str) -> None:
    """The UI's Materialize or the CLI's range backfill: the asset job, not the daily job."""
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    result = dg.materialize(list(defs.assets or []), instance=instance, resources=defs.resources, tags=tags)
    assert result.success


@pytest.mark.parametrize(
    ("statuses", "complete", "expected"),
    [
        ({}, {START, DAY_2}, START),  # nothing trained: the first day
        ({START: MATERIALIZED}, {START, DAY_2}, DAY_2),  # continues after a trained day
        ({START: MATERIALIZED, DAY_2: MATERIALIZED}, {START, DAY_2}, None),  # everything trained
        ({START: MATERIALIZED}, {START, DAY_3}, None),  # day 2 incomplete: day 3 waits behind it
        ({START: FAILED}, {START, DAY_2}, None),  # a failed day stops the chain
        ({START: MATERIALIZED, DAY_2: FAILED, DAY_3: MATERIALIZED}, {START, DAY_2, DAY_3}, None),
        ({START: IN_PROGRESS}, {START, DAY_2}, None),  # its run is queued or running
        ({START: None}, {DAY_2}, None),  # the first day's logs never completed
    ],
)
def test_next_day_rule(statuses: dict, complete: set[str], expected: str | None) -> None:
    """The rule alone, on every combination an operator meets (the integration tests below run it)."""
    assert next_day([START, DAY_2, DAY_3], statuses, complete).day == expected


def test_requests_one_day_at_a_time_and_never_repeats(
    spark: object, home: Path, instance: dg.DagsterInstance
) -> None:
    """Day 2 is requested only once day 1's checkpoint exists; a trained day is never asked again."""
    log_random_days(home, 2)
    write_day(log_random_days(home, 1)[0], str(home / "warehouse"), DAY_3)
    (home / "warehouse" / f"dt={DAY_3}" / "_SUCCESS").unlink()  # day 3 is still being written
    defs = definitions(home, tiny_cartpole(home))

    first = tick(defs, instance)
    assert requested(first) == [START]
    assert first.run_requests[0].run_key == f"cartpole:{START}:1"
    # the sensor's preview lists requests by job name: the tag says which day and why
    assert first.run_requests[0].tags[REQUEST_TAG].startswith(f"cartpole {START}, attempt 1: the logs of")
    assert run_request(defs, instance, first.run_requests[0])

    second = tick(defs, instance)
    assert requested(second) == [DAY_2]
    assert run_request(defs, instance, second.run_requests[0])

    assert requested(tick(defs, instance)) == []  # day 3 incomplete, days 1-2 trained
    (home / "warehouse" / f"dt={DAY_3}" / "_SUCCESS").touch()
    assert requested(tick(defs, instance)) == [DAY_3]


def test_a_failed_day_stops_the_chain_until_it_is_repaired(
    spark: object, home: Path, instance: dg.DagsterInstance
) -> None:
    """A failed day is not retried as is and blocks later days; its repair restarts the chain."""
    frames = log_random_days(home, 2)
    broken = frames[0].copy()
    broken.loc[3, "reward"] = np.nan
    write_day(broken, str(home / "warehouse"), START)
    defs = definitions(home, tiny_cartpole(home))

    first = tick(defs, instance)
    assert requested(first) == [START]
    assert not run_request(defs, instance, first.run_requests[0])  # refused by the contract

    for _ in range(2):  # neither the failed day nor the day after it, however often it ticks
        stopped = tick(defs, instance)
        assert requested(stopped) == []
        assert "failed" in (stopped.skip_message or "")

    write_day(frames[0], str(home / "warehouse"), START)  # the product restates day 1
    repaired = defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=START, instance=instance)
    assert repaired.success  # the operator re-runs it (here the daily job, as the CLI would)

    after = tick(defs, instance)
    assert requested(after) == [DAY_2]
    assert after.run_requests[0].run_key == f"cartpole:{DAY_2}:1"


def test_days_trained_by_hand_are_never_requested(
    spark: object, home: Path, instance: dg.DagsterInstance
) -> None:
    """The demo trains days by hand, then the sensor is turned on: it asks only for what is left."""
    log_random_days(home, 3)
    defs = definitions(home, tiny_cartpole(home))
    materialize_by_hand(defs, instance, START, DAY_2)  # one range run of the asset job

    result = tick(defs, instance)
    assert requested(result) == [DAY_3]


@dataclass(frozen=True)
class HeldWarehouse(ParquetWarehouse):
    """A warehouse whose read waits for the test, so a run stays in progress while the sensor ticks."""

    reading: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def read_recorded(self, spark: SparkSession, day: str) -> DayRead:
        self.reading.set()
        assert self.release.wait(timeout=120)
        return super().read_recorded(spark, day)


def test_a_day_with_a_run_in_progress_is_not_requested_again(
    spark: object, home: Path, instance: dg.DagsterInstance
) -> None:
    """Between the request and the end of its run the day is in progress: no second request."""
    log_random_days(home, 2)
    warehouse = HeldWarehouse(str(home / "warehouse"))
    defs = definitions(home, replace(tiny_cartpole(home), warehouse=warehouse))
    first = tick(defs, instance)
    assert requested(first) == [START]

    outcome: list[bool] = []
    request = first.run_requests[0]
    runner = threading.Thread(target=lambda: outcome.append(run_request(defs, instance, request)))
    runner.start()
    try:
        assert warehouse.reading.wait(timeout=120)
        during = tick(defs, instance)
        assert requested(during) == []
        assert "in progress" in (during.skip_message or "")
    finally:
        warehouse.release.set()
        runner.join(timeout=300)
    assert outcome == [True]
    assert requested(tick(defs, instance)) == [DAY_2]

"""Starts the next day's run once its logs are complete and the day before it is trained.

The sensor keeps no memory of its own: each tick it reads what the Dagster instance knows about
`agent_checkpoint` (materialised, in progress, failed, or missing, per day) and what the
warehouse lists as complete, and requests the first day that is missing. So

- a day trained by hand, by a backfill or by the CLI is never requested again (it is
  materialised, whoever did it), and turning the sensor on late requests only what is left;
- a day whose last run failed stops the chain: retrying the same data would fail the same way,
  and every later day needs its checkpoint. Once someone repairs it (re-runs it with fixed data,
  from the UI, the CLI or a backfill) the next tick requests the following day; no cursor is
  ever edited;
- a day with a queued or running run is never requested twice.

Why not `AutomationCondition` (declarative automation, evaluated here against dagster 1.13):
`eager()` and `on_missing()` start with `in_latest_time_window()`, so a backlog of past days
(the sensor turned on late, a chain stopped for a week) is never filled; `eager()` also re-runs
on every upstream update; and the conditions see asset partitions, not the warehouse's
`_SUCCESS` markers, so completeness would need an observable source asset reporting one data
version per day. A hand-written condition tree could express the rule, but it would be longer
than `next_day` below, harder to test, and would launch the implicit asset job instead of the
daily job. This sensor reads public instance state only and is tested with real runs
(`test_sensors.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import dagster as dg

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.jobs import APP_TAG, AssetJob

PARTITION_TAG = "dagster/partition"
REQUEST_TAG = "rl_bakery/requested"
"""Says which day a sensor request is for and why, in the sensor's preview and on the run."""


class NextDay(NamedTuple):
    """The day to request (None: nothing to request now) and why, for the tick's log."""

    day: str | None
    reason: str


def next_day(
    days: Sequence[str],
    statuses: Mapping[str, dg.AssetPartitionStatus | None],
    complete: set[str],
) -> NextDay:
    """The first day whose checkpoint is missing, if its logs are complete and nothing blocks it.

    Args:
      days: every partition of the application, oldest first.
      statuses: `agent_checkpoint`'s status per day (absent or None: never materialised).
      complete: the days whose logs the warehouse lists as complete.
    """
    for day in days:
        status = statuses.get(day)
        if status == dg.AssetPartitionStatus.MATERIALIZED:
            continue
        if status == dg.AssetPartitionStatus.IN_PROGRESS:
            return NextDay(None, f"{day} has a run queued or in progress")
        if status == dg.AssetPartitionStatus.FAILED:
            return NextDay(None, f"the last run of {day} failed: re-run it once repaired")
        if day not in complete:
            return NextDay(None, f"the logs of {day} are not complete yet")
        return NextDay(day, f"the logs of {day} are complete and the day before is trained")
    return NextDay(None, "every day is trained")


def build_warehouse_sensor(
    app: Application, job: AssetJob, partitions: dg.DailyPartitionsDefinition
) -> dg.SensorDefinition:
    checkpoint = dg.AssetKey([app.name, "agent_checkpoint"])

    @dg.sensor(
        name=f"{app.name}_warehouse_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            f"Every minute: requests {job.name} for the first day of {app.name} whose agent "
            "checkpoint is missing, once the warehouse lists that day's logs as complete (_SUCCESS) "
            "and the day before is trained; one day at a time, in order. Keeps no cursor: days "
            "trained by hand are never requested again. A failed day stops the chain (the tick says "
            "why): repair its logs and re-run that day, and the next tick continues."
        ),
    )
    def warehouse_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Requests the first day whose checkpoint is missing, once its logs are complete.

        Only one day at a time: day d+1 trains from `agent_checkpoint[d]`. The run key counts
        the day's earlier runs of the daily job, so a day that becomes missing again (its
        partition wiped) can be requested again; repeats are prevented by the day's status.
        """
        days = partitions.get_partition_keys()
        statuses = context.instance.get_status_by_partition(checkpoint, days, partitions) or {}
        decision = next_day(days, statuses, set(app.warehouse.complete_days()))
        context.log.info(decision.reason)
        if decision.day is None:
            return dg.SensorResult(skip_reason=decision.reason)
        earlier_runs = context.instance.get_run_records(
            dg.RunsFilter(tags={APP_TAG: app.name, PARTITION_TAG: decision.day})
        )
        attempt = len(earlier_runs) + 1
        request = dg.RunRequest(
            run_key=f"{app.name}:{decision.day}:{attempt}",
            partition_key=decision.day,
            tags={REQUEST_TAG: f"{app.name} {decision.day}, attempt {attempt}: {decision.reason}"},
        )
        return dg.SensorResult(run_requests=[request])

    return warehouse_sensor

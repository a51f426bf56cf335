"""The daily job and its schedule."""

from __future__ import annotations

from typing import Any, TypeAlias

import dagster as dg

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.run_guard import APPLICATION_TAG

AssetJob: TypeAlias = Any
"""What `dg.define_asset_job` returns: its class is not part of Dagster's public API."""

DAILY_JOB = "daily_training"
APP_TAG = APPLICATION_TAG
"""Runs carry this tag so that the run queue can hold one run per application at a time."""


def build_daily_job(app: Application, partitions: dg.PartitionsDefinition) -> AssetJob:
    return dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.groups(app.name),
        partitions_def=partitions,
        tags={APP_TAG: app.name},
        description=(
            f"{app.name}: one day's warehouse logs → validated timesteps → n-step trajectories → "
            "the agent trained from the previous day's checkpoint"
            + (" → its off-policy evaluation" if app.is_bandit else "")
            + (" → the next day's action batch" if app.population is not None else "")
            + ". Launched per day by the warehouse sensor or the daily schedule; a range of days "
            "runs as one run that trains the days in order."
        ),
    )


def build_daily_schedule(
    app: Application, job: AssetJob, partitions: dg.DailyPartitionsDefinition
) -> dg.ScheduleDefinition:
    """The alternative to the sensor: run yesterday's partition every day at 02:00 UTC."""
    partition_set = f"{app.name}'s days (UTC), from {partitions.start.strftime('%Y-%m-%d')}"
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        hour_of_day=2,
        minute_of_hour=0,
        name="daily_schedule",
        description=(
            f"Every day at 02:00 UTC, runs {DAILY_JOB} for yesterday's partition of {partition_set}. "
            "The alternative to the warehouse sensor (use one of the two): it does not wait for the "
            "day's logs to be complete, so a day not yet complete fails with that sentence and "
            "writes nothing; re-run it once the logs are in."
        ),
    )
    # Dagster 1.13 serialises every schedule with no partition set (the UI's "Partition set: None")
    # and drops `metadata=` for a partitioned job: both the description and this metadata say it
    return schedule.with_attributes(
        metadata={"partition_set": partition_set, "partition": "the day before the tick (UTC)"}
    )


OBSERVE_JOB = "observe_warehouse"


def build_observation_job(warehouse: dg.AssetKey) -> AssetJob:
    return dg.define_asset_job(
        OBSERVE_JOB,
        selection=dg.AssetSelection.assets(warehouse),
        description=(
            "Lists the warehouse's complete days and records each one's fingerprint; a day that "
            "changed after training makes its timesteps (and what follows) stale in the UI."
        ),
    )


def build_observation_schedule(job: AssetJob) -> dg.ScheduleDefinition:
    """Observes the warehouse every hour (a listing per complete day; no data is read)."""
    return dg.ScheduleDefinition(
        name="warehouse_observation_schedule",
        job=job,
        cron_schedule="17 * * * *",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Hourly observation of the warehouse: which days are complete, and whether a trained "
            "day changed since."
        ),
    )

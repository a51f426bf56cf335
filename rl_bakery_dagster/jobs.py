"""The daily job and its schedule."""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.run_guard import APPLICATION_TAG

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

DAILY_JOB = "daily_training"
APP_TAG = APPLICATION_TAG
"""Runs carry this tag so that the run queue can hold one run per application at a time."""


def build_daily_job(app: Application, partitions: dg.PartitionsDefinition) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        DAILY_JOB,
        selection=dg.AssetSelection.groups(app.name),
        partitions_def=partitions,
        tags={APP_TAG: app.name},
        description=f"{app.name}: logs → timesteps → trajectories → agent checkpoint, for one day",
    )


def build_daily_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """The alternative to the sensor: run yesterday's partition every day at 02:00 UTC."""
    return dg.build_schedule_from_partitioned_job(job, hour_of_day=2, minute_of_hour=0, name="daily_schedule")


OBSERVE_JOB = "observe_warehouse"


def build_observation_job(warehouse: dg.AssetKey) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        OBSERVE_JOB,
        selection=dg.AssetSelection.assets(warehouse),
        description=(
            "Lists the warehouse's complete days and records each one's fingerprint; a day that "
            "changed after training makes its timesteps (and what follows) stale in the UI."
        ),
    )


def build_observation_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
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

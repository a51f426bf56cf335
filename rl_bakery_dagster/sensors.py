"""Starts the daily run when the warehouse finishes writing a day."""

from typing import TYPE_CHECKING

import dagster as dg

from rl_bakery_dagster.application import Application

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


def build_warehouse_sensor(
    app: Application, job: "UnresolvedAssetJobDefinition", partitions: dg.DailyPartitionsDefinition
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{app.name}_warehouse_sensor",
        job=job,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
    )
    def warehouse_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        """Requests each day's run once, in day order, as soon as that day's logs are complete.

        The cursor is the last day requested. Days are requested only without gaps: a day
        whose predecessor is not complete waits, because its checkpoint continues the previous
        day's. The run key makes a second request for the same day a no-op.
        """
        last_requested = context.cursor or ""
        complete = set(app.warehouse.complete_days())
        requests = []
        for day in partitions.get_partition_keys():
            if day <= last_requested:
                continue
            if day not in complete:
                break
            requests.append(dg.RunRequest(run_key=f"{app.name}:{day}", partition_key=day))
            last_requested = day
        if requests:
            context.log.info(f"requesting runs for {[r.partition_key for r in requests]}")
        return dg.SensorResult(run_requests=requests, cursor=last_requested or None)

    return warehouse_sensor

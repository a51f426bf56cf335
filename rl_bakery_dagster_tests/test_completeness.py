"""A day whose logs are not complete is refused on every launch path, before anything is read.

Only the sensor used to look at the warehouse's `_SUCCESS` marker: the schedule, the UI and the
CLI trained on a half-written day. The check now sits at the start of `timesteps`, so each path
meets it; `Application(require_complete_days=False)` is the documented way out for a warehouse
that writes no markers.
"""

import dataclasses
import datetime
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole

DAY_2 = shift_day(START, 1)
TIMESTEPS = dg.AssetKey(["cartpole", "timesteps"])
REFUSAL = "the warehouse's logs for 2024-01-02 are not complete"


def half_written_day_2(home: Path) -> None:
    """Day 1 complete; day 2's Parquet files are there but its `_SUCCESS` marker is not yet."""
    log_random_days(home, 2)  # day 2 continues day 1's episodes and ids
    (home / "warehouse" / f"dt={DAY_2}" / "_SUCCESS").unlink()


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message


def test_a_schedule_tick_for_a_day_without_its_marker_is_refused(spark: object, home: Path) -> None:
    """The 02:00 tick asks for yesterday; its run stops at `timesteps` and writes nothing."""
    half_written_day_2(home)
    defs = definitions(home, tiny_cartpole(home))
    instance = dg.DagsterInstance.ephemeral()
    tick_time = datetime.datetime(2024, 1, 3, 2, 0, tzinfo=datetime.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick_time)
    (request,) = defs.resolve_schedule_def("daily_schedule").evaluate_tick(context).run_requests
    assert request.partition_key == DAY_2

    result = defs.resolve_job_def(DAILY_JOB).execute_in_process(
        partition_key=DAY_2, tags=request.tags, instance=instance, raise_on_error=False
    )
    assert not result.success
    message = step_failure(result)
    assert REFUSAL in message and "require_complete_days=False" in message
    assert not (home / "storage" / "cartpole" / "timesteps" / f"dt={DAY_2}").exists()
    assert instance.get_latest_materialization_event(TIMESTEPS) is None


def test_the_asset_job_refuses_it_too_and_the_setting_lets_it_through(spark: object, home: Path) -> None:
    """The UI's Materialize runs the asset job: refused the same way, unless markers are not required."""
    half_written_day_2(home)
    defs = definitions(home, tiny_cartpole(home))
    assets = list(defs.assets or [])
    refused = dg.materialize(
        assets, selection=[TIMESTEPS], partition_key=DAY_2, resources=defs.resources, raise_on_error=False
    )
    assert not refused.success
    assert REFUSAL in step_failure(refused)

    no_markers = definitions(home, dataclasses.replace(tiny_cartpole(home), require_complete_days=False))
    for day in (START, DAY_2):  # day 2 is judged against the stored day 1
        accepted = dg.materialize(
            list(no_markers.assets or []),
            selection=[TIMESTEPS],
            partition_key=day,
            resources=no_markers.resources,
        )
        assert accepted.success
    assert (home / "storage" / "cartpole" / "timesteps" / f"dt={DAY_2}").is_dir()


def test_the_cli_refuses_it_with_the_sentence(home: Path) -> None:
    """`dagster asset materialize` (the README's command) exits non-zero and prints why."""
    half_written_day_2(home)
    env = {
        **os.environ,
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CARTPOLE_WAREHOUSE_URI": str(home / "warehouse"),
        "RL_BAKERY_SPARK_MASTER": "local[1]",
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    command = [dagster, "asset", "materialize", "-m", "rl_bakery_dagster.examples.cartpole.definitions"]
    command += ["--select", "cartpole/timesteps", "--partition", DAY_2]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert REFUSAL in result.stdout + result.stderr
    assert not (home / "storage" / "cartpole" / "timesteps" / f"dt={DAY_2}").exists()

"""The cross-day rules through real Dagster runs: one verdict however a range is run, and a day
whose training still goes non-finite fails by name and writes no checkpoint.

Validation keyed on env id over the union of a backfill's days could pass a range as one run
per day and fail it as one backfill run, or the reverse. Each day is now judged on its own rows
and its predecessors', whether those were stored by earlier runs or are validated in the same run.
"""

import dataclasses
import re
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole

DAYS = [START, shift_day(START, 1), shift_day(START, 2)]
TIMESTEPS = dg.AssetKey(["cartpole", "timesteps"])
Verdict = tuple[list[str], set[str]]
"""The refused days and the failed rules of a run; ([], set()) when every day passes."""


def verdict(result: dg.ExecuteInProcessResult) -> Verdict:
    failed = {
        e.event_specific_data.check_name
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    }
    if result.success:
        return [], failed
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    refused = re.search(r"timesteps of (.*) refused by the timestep contract", message)
    assert refused, message
    return refused.group(1).split(", "), failed


def restart_ids_on(day: int):
    def change(frames: list[pd.DataFrame], home: Path) -> None:
        frame = frames[day]
        write_day(frame.assign(ts=frame.ts - frame.ts.min()), str(home / "warehouse"), DAYS[day])

    return change


def repeat_yesterday_on(day: int):
    def change(frames: list[pd.DataFrame], home: Path) -> None:
        both = pd.concat([frames[day - 1], frames[day]], ignore_index=True)
        write_day(both, str(home / "warehouse"), DAYS[day])

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (None, ([], set())),  # three clean days pass both ways
        (restart_ids_on(1), ([DAYS[1]], {"unique_across_days"})),  # ids restart at 0 on day 2
        (repeat_yesterday_on(2), ([DAYS[2]], {"unique_across_days"})),  # day 3 repeats day 2
    ],
)
def test_a_range_gets_the_same_verdict_as_one_backfill_run_or_one_run_per_day(
    spark: object, home: Path, change, expected: Verdict
) -> None:
    frames = log_random_days(home, 3, envs=3, steps=20)
    if change:
        change(frames, home)
    defs = definitions(home, tiny_cartpole(home))
    job = defs.resolve_job_def(DAILY_JOB)

    backfill = job.execute_in_process(
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
        asset_selection=[TIMESTEPS],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    stored = home / "storage" / "cartpole" / "timesteps"
    written_by_backfill = sorted(p.name for p in stored.glob("dt=*"))
    for day in DAYS:  # the daily runs start from an empty store
        if (stored / f"dt={day}").exists():
            for file in sorted((stored / f"dt={day}").rglob("*"), reverse=True):
                file.unlink() if file.is_file() else file.rmdir()
            (stored / f"dt={day}").rmdir()

    instance = dg.DagsterInstance.ephemeral()
    daily: Verdict = ([], set())
    for day in DAYS:
        result = job.execute_in_process(
            partition_key=day, asset_selection=[TIMESTEPS], instance=instance, raise_on_error=False
        )
        if not result.success:
            daily = verdict(result)
            break

    assert verdict(backfill) == daily == expected
    refused = expected[0]
    assert written_by_backfill == ([] if refused else [f"dt={d}" for d in DAYS])
    assert not any((stored / f"dt={day}").exists() for day in refused)


def test_a_non_finite_loss_names_the_day_and_writes_no_checkpoint(spark: object, home: Path) -> None:
    """With the magnitude bound raised out of the way, 1e30 observations make the loss overflow:
    the run fails with a sentence naming the application and the day, and no checkpoint exists.
    With the default bound the same day is refused before anything is written."""
    frame = log_random_days(home, 1)[0]
    write_day(frame.assign(cart_position=np.float64(1e30)), str(home / "warehouse"), START)
    app = tiny_cartpole(home)
    unbounded = dataclasses.replace(app, schema=dataclasses.replace(app.schema, max_abs_value=1e38))
    result = (
        definitions(home, unbounded)
        .resolve_job_def(DAILY_JOB)
        .execute_in_process(partition_key=START, raise_on_error=False)
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key.endswith("agent_checkpoint")
    message = failure.event_specific_data.error.message
    assert f"cartpole: training agent_checkpoint[{START}] produced a non-finite loss" in message
    assert f"no checkpoint is written for {START}" in message
    assert not (home / "storage" / "cartpole" / "agent_checkpoint").exists() or not any(
        (home / "storage" / "cartpole" / "agent_checkpoint").glob("dt=*")
    )

    bounded = definitions(home / "bounded", app).resolve_job_def(DAILY_JOB)
    refused = bounded.execute_in_process(partition_key=START, raise_on_error=False)
    assert verdict(refused) == ([START], {"bounded_value"})

"""A timestamp application's day folder holds that day's rows only, in the folders' time zone.

The cases are the exports seen in practice: rows of the next day in today's folder, and an
export cut at local midnight of another zone (23:00 yesterday to 23:00 today in UTC). The
expected offenders are counted with pandas from the written timestamps, not by the platform.
"""

import dataclasses
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole

MINUTES_PER_STEP = 9  # 40 steps span 6 hours of the day


def timestamped(frame: pd.DataFrame, first: pd.Timestamp) -> pd.DataFrame:
    """The simulator's integer steps become timestamps from `first` (pandas writes them in ns)."""
    return frame.assign(ts=first + pd.to_timedelta(frame.ts * MINUTES_PER_STEP, unit="min"))


def outside(frame: pd.DataFrame, zone: str) -> int:
    start = pd.Timestamp(START, tz=zone)
    stamps = frame.ts if frame.ts.dt.tz is not None else frame.ts.dt.tz_localize(zone)
    return int(((stamps < start) | (stamps >= start + timedelta(days=1))).sum())


def materialise_timesteps(home: Path, zone: str) -> tuple[dg.ExecuteInProcessResult, dict]:
    app = tiny_cartpole(home)
    app = dataclasses.replace(app, schema=dataclasses.replace(app.schema, day_time_zone=zone))
    job = definitions(home, app).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        partition_key=START,
        asset_selection=[dg.AssetKey(["cartpole", "timesteps"])],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    return result, checks


def next_day_rows(frame: pd.DataFrame) -> pd.DataFrame:
    stamped = timestamped(frame, pd.Timestamp(START, tz="UTC"))
    late = frame.ts >= 30
    return stamped.assign(ts=stamped.ts.where(~late, stamped.ts + timedelta(days=1)))


CASES = [
    # on the day in UTC, zone-aware nanosecond timestamps
    ("UTC", lambda f: timestamped(f, pd.Timestamp(START, tz="UTC")), True),
    # rows of the next day in today's folder
    ("UTC", next_day_rows, False),
    # an export cut at Paris midnight (23:00 UTC the day before) read as a UTC day
    ("UTC", lambda f: timestamped(f, pd.Timestamp(START, tz="Europe/Paris")), False),
    # the same export, its folders declared as Paris days
    ("Europe/Paris", lambda f: timestamped(f, pd.Timestamp(START, tz="Europe/Paris")), True),
    # wall-clock timestamps without a zone are read in the folders' zone
    ("Europe/Paris", lambda f: timestamped(f, pd.Timestamp(START)), True),
]


@pytest.mark.parametrize(
    ("zone", "stamp", "accepted"),
    CASES,
    ids=["on-the-day", "next-day-rows", "paris-export-as-utc", "paris-export-as-paris", "naive-wall-clock"],
)
def test_rows_outside_the_day_are_refused_with_the_column_and_rows(
    spark, home: Path, zone: str, stamp, accepted: bool
) -> None:
    """The rule names the column, the window and sample rows; a refused day writes nothing."""
    frame = stamp(log_random_days(home, 1)[0])
    write_day(frame, str(home / "warehouse"), START)
    expected = outside(frame, zone)
    assert (expected == 0) == accepted  # the oracle agrees with the case's intent

    result, checks = materialise_timesteps(home, zone)
    assert result.success == accepted
    window = checks["timestep_in_day"]
    assert window.passed == accepted
    if not accepted:
        assert window.metadata["offending_rows"].value == expected
        assert window.metadata["columns"].value == "ts"
        failure = next(e for e in result.all_events if e.is_step_failure)
        message = failure.step_failure_data.user_failure_data.description
        assert "rule 'timestep_in_day' on column(s) ts" in message and f"{START}" in message
        assert not (home / "storage" / "cartpole" / "timesteps" / f"dt={START}").exists()

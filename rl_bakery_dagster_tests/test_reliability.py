"""Unattended nights: empty days, late rows and unsafe names have defined, tested outcomes."""

import dataclasses
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from rl_bakery_dagster.application import TrajectorySettings
from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.resources.storage import StorageRoot
from rl_bakery_dagster_tests.apps import (
    START,
    TINY_AGENT,
    definitions,
    log_random_days,
    stored,
    tiny_cartpole,
)
from rl_bakery_dagster_tests.test_checkpoint_chain import materialised, variables

NEXT_DAY = "2024-01-02"


def metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.path[-1] == asset:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"{asset} was not materialised")


def typed_metadata_of(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.MetadataValue]:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.path[-1] == asset:
            return dict(event.materialization.metadata)
    raise AssertionError(f"{asset} was not materialised")


def assert_readable_metadata(result: dg.ExecuteInProcessResult, logged: pd.DataFrame, home: Path) -> None:
    """What the UI shows a person (issue 15): counts as integers, floats as configured, paths as
    path values, the stored Parquet's columns as `dagster/column_schema`. The expected numbers come
    from the logged frame (pandas) and the stored files (pyarrow), not from the code under test."""
    timesteps = typed_metadata_of(result, "timesteps")
    assert isinstance(timesteps["dagster/row_count"], dg.IntMetadataValue)
    assert isinstance(timesteps["episodes_started"], dg.IntMetadataValue)
    assert timesteps["episodes_started"].value == int((logged.step_type == 0).sum())
    assert isinstance(timesteps["mean_reward"], dg.FloatMetadataValue)
    assert timesteps["mean_reward"].value == pytest.approx(logged[logged.step_type != 0].reward.mean())
    for asset in ("timesteps", "trajectories"):
        metadata = typed_metadata_of(result, asset)
        folder = stored(home, "cartpole", asset, START)
        assert isinstance(metadata["path"], dg.PathMetadataValue)
        assert Path(str(metadata["path"].value)) == folder
        schema = metadata["dagster/column_schema"]
        assert isinstance(schema, dg.TableSchemaMetadataValue)
        stored_columns = pq.read_schema(next(folder.rglob("*.parquet"))).names
        assert [c.name for c in schema.value.columns] == stored_columns
    trajectories = typed_metadata_of(result, "trajectories")
    assert isinstance(trajectories["episodes_ended"], dg.IntMetadataValue)
    assert isinstance(trajectories["dagster/row_count"], dg.IntMetadataValue)
    checkpoint = typed_metadata_of(result, "agent_checkpoint")
    assert isinstance(checkpoint["learning_rate"], dg.FloatMetadataValue)
    assert checkpoint["learning_rate"].value == 1e-3  # as configured, not float32's 0.0010000000474974513
    assert isinstance(checkpoint["train_steps"], dg.IntMetadataValue)
    assert checkpoint["train_steps"].value == TINY_AGENT["train_steps_per_day"]


def test_an_empty_day_carries_the_agent_forward(spark, home: Path) -> None:
    frames = log_random_days(home, 1)
    write_day(frames[0].iloc[0:0], str(home / "warehouse"), NEXT_DAY)  # the product logged nothing
    app = dataclasses.replace(tiny_cartpole(home), trajectory=TrajectorySettings(window_days=2))
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(partition_key=START, instance=instance).success

    result = job.execute_in_process(partition_key=NEXT_DAY, instance=instance)
    assert metadata_of(result, "timesteps")["dagster/row_count"] == 0
    assert metadata_of(result, "trajectories")["dagster/row_count"] == 0
    checkpoint = materialised(result, NEXT_DAY)
    assert checkpoint["skipped"] == f"no transitions on {NEXT_DAY}, the newest day of the training window"
    assert checkpoint["train_steps"] == 0 and checkpoint["total_train_steps"] == 20
    before, after = variables(home, START), variables(home, NEXT_DAY)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_late_rows_are_picked_up_by_rematerialising_the_day(spark, home: Path) -> None:
    frames = log_random_days(home, 1, steps=40)
    on_time = frames[0][frames[0].ts < 30]
    write_day(on_time, str(home / "warehouse"), START)
    job = definitions(home, tiny_cartpole(home)).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    first = job.execute_in_process(partition_key=START, instance=instance)
    assert metadata_of(first, "timesteps")["dagster/row_count"] == len(on_time)
    assert_readable_metadata(first, on_time, home)

    write_day(frames[0], str(home / "warehouse"), START)  # the late rows have landed
    again = job.execute_in_process(partition_key=START, instance=instance)
    assert metadata_of(again, "timesteps")["dagster/row_count"] == len(frames[0])
    assert (
        metadata_of(again, "trajectories")["dagster/row_count"]
        > metadata_of(first, "trajectories")["dagster/row_count"]
    )


@pytest.mark.parametrize(
    "unsafe",
    ["../elsewhere", "/absolute", "a/b", "..", "2024-01-01/../../x", ""],  # each would escape its folder
)
def test_names_that_become_paths_are_refused(home: Path, unsafe: str) -> None:
    storage = StorageRoot(str(home / "storage"))
    with pytest.raises(ValueError):
        storage.partition_uri(["cartpole", "timesteps"], unsafe)
    with pytest.raises(ValueError):
        storage.partition_uri(["cartpole", unsafe], START)
    with pytest.raises(ValueError):
        dataclasses.replace(tiny_cartpole(home), name=unsafe)


def test_staging_left_by_a_killed_run_is_swept_later(home: Path) -> None:
    import os
    import time

    storage = StorageRoot(str(home / "storage"))
    asset = ["cartpole", "timesteps"]
    stale = Path(storage.staging_uri(asset))
    stale.mkdir(parents=True)
    (stale / "part-0.parquet").write_text("half written")
    day_old = time.time() - 24 * 3600
    os.utime(stale, (day_old, day_old))
    live = Path(storage.staging_uri(asset))
    live.mkdir()

    storage.staging_uri(asset)
    assert not stale.exists()
    assert live.exists()


def test_concurrent_commits_to_one_partition_never_mix(tmp_path: Path) -> None:
    """Two writers of the same day race: the folder ends up as exactly one writer's version."""
    from concurrent.futures import ThreadPoolExecutor

    storage = StorageRoot(str(tmp_path / "storage"))
    asset = ["cartpole", "trajectories"]
    final = storage.partition_uri(asset, START)
    staged = []
    for writer in range(8):
        folder = Path(storage.staging_uri(asset))
        folder.mkdir(parents=True)
        for part in range(3):
            (folder / f"part-{part}.parquet").write_text(f"writer {writer}")
        staged.append(str(folder))

    def commit(folder: str) -> str:
        try:
            storage.commit(folder, final)
            return "committed"
        except OSError as error:  # the loser of a race fails loudly, it never merges
            return f"refused: {error}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(commit, staged))
    assert "committed" in outcomes
    current = Path(storage.read_uri(asset, START))
    contents = {p.read_text() for p in current.iterdir()}
    assert len(contents) == 1 and len(list(current.iterdir())) == 3


def test_a_backfill_from_a_rematerialised_day_repairs_the_chain(spark, home: Path, tmp_path: Path) -> None:
    """The documented repair: after changing day 1, backfill days 1..3 and the chain is as if new."""
    frames = log_random_days(home, 3)
    app = tiny_cartpole(home, seed=4)
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    days = {"dagster/asset_partition_range_start": START, "dagster/asset_partition_range_end": "2024-01-03"}
    assert job.execute_in_process(tags=days, instance=dg.DagsterInstance.ephemeral()).success
    stale = variables(home, "2024-01-03")

    write_day(frames[0][frames[0].ts >= 10], str(home / "warehouse"), START)  # day 1 restated
    assert job.execute_in_process(tags=days, instance=dg.DagsterInstance.ephemeral()).success

    fresh_home = tmp_path / "fresh"
    fresh = definitions(fresh_home, app).resolve_job_def(DAILY_JOB)
    assert fresh.execute_in_process(tags=days, instance=dg.DagsterInstance.ephemeral()).success
    repaired, expected = variables(home, "2024-01-03"), variables(fresh_home, "2024-01-03")
    assert any(not np.array_equal(stale[n], repaired[n]) for n in stale)
    for name in expected:
        np.testing.assert_array_equal(repaired[name], expected[name], err_msg=name)

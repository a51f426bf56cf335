"""The checkpoint chain through real Dagster runs: first day, backfills, determinism, gaps.

`agent_checkpoint[d]` restores `agent_checkpoint[d-1]`. A single-run backfill over a range must
train day by day in order and give exactly the checkpoints that one run per day gives; a day
whose predecessor is missing must fail clearly and write nothing.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import tensorflow as tf

from rl_bakery_dagster.checkpoint_format import CHECKPOINT, CHECKPOINT_PREFIX, GREEDY_POLICY
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.run_guard import APPLICATION_TAG, TICKET_TAG
from rl_bakery_dagster.training.checkpoints import read_metrics
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, stored, tiny_cartpole

DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


def checkpoint_dir(home: Path, day: str) -> Path:
    """The committed version of `cartpole/agent_checkpoint[day]`."""
    return stored(home, "cartpole", "agent_checkpoint", day)


def partition_folder(home: Path, day: str) -> Path:
    """Where `cartpole/agent_checkpoint[day]` keeps its versions: absent when nothing was ever placed."""
    return home / "storage" / "cartpole" / "agent_checkpoint" / f"dt={day}"


def variables(home: Path, day: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(checkpoint_dir(home, day) / CHECKPOINT / CHECKPOINT_PREFIX))
    names = [n for n in reader.get_variable_to_shape_map() if n != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    return {name: reader.get_tensor(name) for name in names}


def materialised(result: dg.ExecuteInProcessResult, day: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.materialization.asset_key.path[-1] == "agent_checkpoint" and event.partition == day:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"no agent_checkpoint materialisation for {day}")


@pytest.mark.parametrize("algorithm", ["dqn", "ddqn"])  # both discrete-action agents of the resource
def test_first_day_starts_fresh_and_exports_policies(spark: object, home: Path, algorithm: str) -> None:
    log_random_days(home, 1)
    defs = definitions(home, tiny_cartpole(home, evaluate=True, seed=3, algorithm=algorithm))
    result = defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=START)

    metadata = materialised(result, START)
    assert metadata["restored_from"] == "fresh agent"
    assert metadata["train_steps"] == 20
    assert metadata["total_train_steps"] == 20
    assert np.isfinite(metadata["loss_mean"])
    assert 8 <= metadata["eval_return_mean"] <= 200  # CartPole-v0 returns, whatever was learnt
    policy = tf.saved_model.load(str(checkpoint_dir(home, START) / GREEDY_POLICY))
    assert int(policy.get_train_step()) == 20


def test_single_run_backfill_trains_in_order_and_equals_daily_runs(
    spark: object, home: Path, tmp_path: Path
) -> None:
    log_random_days(home, 3)
    defs = definitions(home, tiny_cartpole(home, seed=5))
    backfill = defs.resolve_job_def(DAILY_JOB).execute_in_process(
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert [materialised(backfill, d)["restored_from"] for d in DAYS] == ["fresh agent", *DAYS[:-1]]
    assert [read_metrics(str(checkpoint_dir(home, d)))["total_train_steps"] for d in DAYS] == [20, 40, 60]

    # the same logs, one run per day, in another storage root
    other = tmp_path / "other"
    daily_defs = definitions(other, tiny_cartpole(home, seed=5))
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS:
        daily = daily_defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=day, instance=instance)
        assert daily.success
        # every run took the application's turn (run_guard.py) through the IO managers; alone, ticket 1
        run = instance.get_run_by_id(daily.run_id)
        assert run is not None and run.tags[TICKET_TAG] == "1" and run.tags[APPLICATION_TAG] == "cartpole"
    for day in DAYS:
        ours, theirs = variables(home, day), variables(other, day)
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name], err_msg=f"{day}: {name}")


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message


def test_a_day_without_its_previous_day_fails_clearly_and_writes_nothing(spark: object, home: Path) -> None:
    log_random_days(home, 2)
    defs = definitions(home, tiny_cartpole(home))
    job = defs.resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()

    result = job.execute_in_process(partition_key="2024-01-02", raise_on_error=False, instance=instance)
    assert not result.success
    assert "cartpole/timesteps is not materialised for ['2024-01-01']" in failure_message(result)

    data_only = [dg.AssetKey(["cartpole", "timesteps"]), dg.AssetKey(["cartpole", "trajectories"])]
    assert job.execute_in_process(partition_key=START, asset_selection=data_only, instance=instance).success
    result = job.execute_in_process(partition_key="2024-01-02", raise_on_error=False, instance=instance)
    assert not result.success
    assert "agent_checkpoint[2024-01-01] is not materialised" in failure_message(result)
    assert not partition_folder(home, "2024-01-02").exists()


@pytest.mark.parametrize("seed", [11])  # any seed: two identical runs must agree bit for bit
def test_same_inputs_give_the_same_checkpoint(spark: object, home: Path, tmp_path: Path, seed: int) -> None:
    log_random_days(home, 1)
    for root in (home, tmp_path / "again"):
        defs = definitions(root, tiny_cartpole(home, seed=seed))
        assert defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=START).success
    first, second = variables(home, START), variables(tmp_path / "again", START)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)

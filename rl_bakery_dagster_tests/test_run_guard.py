"""One run per application at a time on the paths that never pass through the run queue.

`dagster job execute`, `dagster asset materialize` and `execute_in_process` run in the caller's
process, so the queue's pool and tag limits never see them. Every asset of an application takes
a turn through the instance first (`run_guard.py`, Lamport's bakery algorithm on run tags).
Checked here with real Dagster processes sharing one instance: runs launched at the same moment
hold their turns one after another; a holder killed with SIGKILL does not wedge the next run; a
holder on another host makes the next run wait and then fail with a sentence naming it; and the
ordering rules of the algorithm hold on a real run storage.
"""

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from rl_bakery_dagster.run_guard import (
    APPLICATION_TAG,
    CHOOSING_TAG,
    HOLDER_TAG,
    TICKET_TAG,
    TurnTimeout,
    wait_for_turn,
)
from rl_bakery_dagster_tests import guarded_job

DAGSTER = str(Path(sys.executable).parent / "dagster")
APP = "guarded"


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dg.DagsterInstance:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("GUARD_RECORD", str(tmp_path / "turns.jsonl"))
    return dg.DagsterInstance.get()  # creates the run storage before any process races to


@pytest.fixture
def memory() -> dg.DagsterInstance:
    """An in-memory instance: the same run storage code, for the ordering rules."""
    return dg.DagsterInstance.ephemeral()


def launch(hold_seconds: float, meet: int = 0) -> subprocess.Popen[str]:
    env = {**os.environ, "GUARD_HOLD_SECONDS": str(hold_seconds), "GUARD_MEET": str(meet)}
    return subprocess.Popen(
        [DAGSTER, "job", "execute", "-m", "rl_bakery_dagster_tests.guarded_job", "-j", "take_turn"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def turns(record: Path) -> list[dict[str, float]]:
    return sorted((json.loads(line) for line in record.read_text().splitlines()), key=lambda t: t["start"])


def fabricated_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, **tags: str) -> str:
    run_id = str(uuid.uuid4())
    tags = {APPLICATION_TAG: APP, **tags}
    instance.add_run(dg.DagsterRun(job_name="daily_training", run_id=run_id, status=status, tags=tags))
    return run_id


def test_shell_runs_launched_together_take_turns(instance: dg.DagsterInstance) -> None:
    """Three `dagster job execute` of one application started at once never hold a turn together."""
    processes = [launch(hold_seconds=1, meet=3) for _ in range(3)]
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(o[-3000:] for o in outputs)
    held = turns(Path(os.environ["GUARD_RECORD"]))
    assert len(held) == 3
    for before, after in itertools.pairwise(held):
        assert after["start"] >= before["end"], held
    waited = sum("waiting for run(s)" in output for output in outputs)
    assert waited >= 2, "the first holder keeps its turn until all three exist, so two must wait"


def test_a_killed_holder_does_not_wedge_the_next_run(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shell run killed mid-turn stays STARTED in the instance; the next run goes on anyway."""
    holder = launch(hold_seconds=300)
    deadline = time.monotonic() + 120
    while not instance.get_run_records(filters=dg.RunsFilter(tags={TICKET_TAG: "1"})):
        assert time.monotonic() < deadline and holder.poll() is None, "the holder never took its turn"
        time.sleep(0.5)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait()
    (dead,) = instance.get_run_records(filters=dg.RunsFilter(tags={APPLICATION_TAG: APP}))
    assert dead.dagster_run.status == dg.DagsterRunStatus.STARTED

    monkeypatch.setenv("GUARD_HOLD_SECONDS", "0")
    result = guarded_job.defs.get_job_def("take_turn").execute_in_process(instance=instance)
    assert result.success
    warnings = [
        e.message or ""
        for e in instance.all_logs(result.run_id)
        if e.level >= 30 and "is gone" in (e.message or "")
    ]
    assert warnings and dead.dagster_run.run_id in warnings[0]


def test_a_holder_on_another_host_makes_the_next_run_wait_then_say_why(memory: dg.DagsterInstance) -> None:
    holder = {TICKET_TAG: "1", CHOOSING_TAG: "0", HOLDER_TAG: "elsewhere:1"}
    other = fabricated_run(memory, dg.DagsterRunStatus.STARTED, **holder)
    mine = memory.get_run_by_id(fabricated_run(memory, dg.DagsterRunStatus.STARTED))
    assert mine is not None
    with pytest.raises(TurnTimeout) as refused:
        wait_for_turn(memory, mine, APP, None, poll_seconds=0.05, timeout_seconds=0.3)
    assert other in str(refused.value) and "Terminate" in str(refused.value)
    stored = memory.get_run_by_id(mine.run_id)
    assert stored is not None and stored.tags[TICKET_TAG] == "2"  # one more than every ticket in sight


@pytest.mark.parametrize(
    ("status", "tags", "waits"),
    [
        (dg.DagsterRunStatus.STARTED, {CHOOSING_TAG: "1"}, True),  # still in the doorway
        (dg.DagsterRunStatus.STARTING, {TICKET_TAG: "1", CHOOSING_TAG: "0"}, True),
        (dg.DagsterRunStatus.CANCELING, {TICKET_TAG: "1", CHOOSING_TAG: "0"}, True),
        (dg.DagsterRunStatus.STARTED, {}, False),  # in progress but not yet at a step: comes after
        (dg.DagsterRunStatus.SUCCESS, {TICKET_TAG: "1", CHOOSING_TAG: "0"}, False),
        (dg.DagsterRunStatus.FAILURE, {TICKET_TAG: "1", CHOOSING_TAG: "1"}, False),
        (dg.DagsterRunStatus.NOT_STARTED, {}, False),
    ],
)
def test_who_goes_first(
    memory: dg.DagsterInstance, status: dg.DagsterRunStatus, tags: dict[str, str], waits: bool
) -> None:
    fabricated_run(memory, status, **{HOLDER_TAG: "elsewhere:1", **tags})
    mine = memory.get_run_by_id(fabricated_run(memory, dg.DagsterRunStatus.STARTED))
    assert mine is not None
    if waits:
        with pytest.raises(TurnTimeout):
            wait_for_turn(memory, mine, APP, None, poll_seconds=0.05, timeout_seconds=0.2)
    else:
        wait_for_turn(memory, mine, APP, None, poll_seconds=0.05, timeout_seconds=0.2)


def test_a_run_keeps_its_ticket_across_steps(memory: dg.DagsterInstance) -> None:
    """A later step of a run that has its turn must not queue behind runs that came after it."""
    mine = memory.get_run_by_id(fabricated_run(memory, dg.DagsterRunStatus.STARTED))
    assert mine is not None
    wait_for_turn(memory, mine, APP, None, poll_seconds=0.05, timeout_seconds=0.2)
    fabricated_run(memory, dg.DagsterRunStatus.STARTED, **{TICKET_TAG: "2", CHOOSING_TAG: "0"})
    wait_for_turn(memory, mine, APP, None, poll_seconds=0.05, timeout_seconds=0.2)  # the stale object

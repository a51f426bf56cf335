"""Two runs of one application never run at once, even when one comes from the UI.

The UI's *Materialize* launches the implicit asset job, which carries no `rl_bakery/app` tag, so
the old tag limit let it run beside the daily job. Here both go through the real instance's
queue (`dagster.yaml` as `local_instance.py` writes it, the queued run coordinator, the daemon):
while the asset-job run holds the application's pool, the daily-job run stays queued; it starts
only after the first ends, and then trains from the first run's checkpoint.
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.local_instance import ensure_dagster_home
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster_tests.apps import START, log_random_days

BIN = Path(sys.executable).parent
MODULE = "rl_bakery_dagster_tests.held_definitions"
DAY_2 = shift_day(START, 1)
PARTITION = "dagster/partition"
ACTIVE = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED}
TESTED_JOBS = ("__ASSET_JOB", DAILY_JOB)
DONE = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: str) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", int(port))) == 0


def failures(instance: dg.DagsterInstance) -> list[str]:
    """The failure messages of every run, for the assertion's message."""
    messages = []
    for record in instance.get_run_records():
        for entry in instance.all_logs(record.dagster_run.run_id):
            event = entry.dagster_event
            if event is not None and event.is_failure:
                error = getattr(event.event_specific_data, "error", None)
                text = error.to_string() if error is not None else event.message
                messages.append(f"{record.dagster_run.job_name}: {text}")
    return messages


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f}s waiting until {what}"
        time.sleep(1)


def test_an_asset_job_run_and_a_daily_run_of_one_application_queue_one_behind_the_other(
    home: Path,
) -> None:
    log_random_days(home, 2)
    ensure_dagster_home(home)  # the instance's dagster.yaml, as scripts/env.sh writes it
    gate = home / "gate"
    port = str(free_port())
    env = {
        **os.environ,
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "RL_BAKERY_TEST_GATE": str(gate),
        "RL_BAKERY_SPARK_MASTER": "local[1]",
    }
    grpc = ["--grpc-host", "127.0.0.1", "--grpc-port", port]
    server = subprocess.Popen(
        [BIN / "dagster", "api", "grpc", "-m", MODULE, "-h", "127.0.0.1", "-p", port],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    daemon = None
    daemon_log = (home / "daemon.log").open("w")
    try:
        wait_until(lambda: listening(port), 300, "the code server listens")

        def launch(job: str, day: str) -> None:
            command = [BIN / "dagster", "job", "launch", *grpc, "-j", job]
            done = subprocess.run(
                [*command, "--tags", json.dumps({PARTITION: day})],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr[-2000:]

        instance = dg.DagsterInstance.get()

        def runs() -> dict[str, dg.DagsterRun]:
            """The two runs under test (the daemon may also start the hourly warehouse observation)."""
            return {
                r.dagster_run.job_name: r.dagster_run
                for r in instance.get_run_records()
                if r.dagster_run.job_name in TESTED_JOBS
            }

        launch("__ASSET_JOB", START)  # what the UI's Materialize launches: the implicit asset job
        assert runs()["__ASSET_JOB"].status == dg.DagsterRunStatus.QUEUED
        daemon = subprocess.Popen(
            [BIN / "dagster-daemon", "run", *grpc, "--log-level", "debug"],
            env=env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: runs()["__ASSET_JOB"].status in ACTIVE, 300, "the asset-job run starts")
        launch(DAILY_JOB, DAY_2)  # what the sensor, the schedule and `dagster job launch` start
        for _ in range(6):  # several passes of the queue daemon while the first run holds the pool
            time.sleep(5)
            assert runs()["__ASSET_JOB"].status in ACTIVE
            daemon_log.flush()
            queued = runs()[DAILY_JOB].status == dg.DagsterRunStatus.QUEUED
            assert queued, (home / "daemon.log").read_text()[-6000:]

        gate.touch()
        wait_until(lambda: all(run.status in DONE for run in runs().values()), 600, "both runs end")
        records = {
            r.dagster_run.job_name: r
            for r in instance.get_run_records()
            if r.dagster_run.job_name in TESTED_JOBS
        }
        assert {name: r.dagster_run.status for name, r in records.items()} == {
            "__ASSET_JOB": dg.DagsterRunStatus.SUCCESS,
            DAILY_JOB: dg.DagsterRunStatus.SUCCESS,
        }, failures(instance)
        first, second = records["__ASSET_JOB"], records[DAILY_JOB]
        assert first.end_time is not None and second.start_time is not None
        assert second.start_time >= first.end_time
    finally:
        gate.touch()  # never leave a run waiting on the gate
        for process in (daemon, server):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)
        daemon_log.close()

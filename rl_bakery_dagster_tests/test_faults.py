"""A run killed with SIGKILL in the middle of training loses nothing.

The partition is not recorded as materialised, yesterday's checkpoint is untouched, nothing
half-written is left where a reader looks, and a rerun gives exactly the checkpoint of a run
that was never interrupted (same seed, same logs).
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np

from rl_bakery_dagster.examples.cartpole.application import cartpole_application
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days
from rl_bakery_dagster_tests.test_checkpoint_chain import checkpoint_dir, partition_folder, variables

MODULE = "rl_bakery_dagster.examples.cartpole.definitions"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
NEXT_DAY = "2024-01-02"
LONG_TRAINING = "resources:\n  agent:\n    config:\n      train_steps_per_day: 200000\n"


def environment(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CARTPOLE_WAREHOUSE_URI": str(home / "warehouse"),
        "CARTPOLE_EVAL_EPISODES": "3",
        "RL_BAKERY_SPARK_MASTER": "local[2]",
    }


def execute(home: Path, day: str, *extra: str, **popen: object) -> subprocess.Popen:
    command = [
        DAGSTER,
        "job",
        "execute",
        "-m",
        MODULE,
        "-j",
        DAILY_JOB,
        "--tags",
        f'{{"dagster/partition": "{day}"}}',
    ]
    return subprocess.Popen(
        [*command, *extra],
        env=environment(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )


def digest(folder: Path) -> str:
    hashes = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        hashes.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return hashes.hexdigest()


def kill_once_training(process: subprocess.Popen, timeout: float = 300) -> str:
    """Reads the run's output until training has started, then kills its whole process group."""
    deadline, seen = time.monotonic() + timeout, []
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if "training 200000 steps" in line:
            time.sleep(3)
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    os.killpg(process.pid, signal.SIGKILL)
    raise AssertionError("training never started:\n" + "".join(seen[-40:]))


def test_sigkill_during_training_loses_nothing(spark, home: Path, tmp_path: Path) -> None:
    (home / "dagster").mkdir(exist_ok=True)
    log_random_days(home, 2)
    first_day = execute(home, START)
    output, _ = first_day.communicate(timeout=600)
    assert first_day.returncode == 0, output[-3000:]
    yesterday = digest(checkpoint_dir(home, START))

    config = tmp_path / "long_training.yaml"
    config.write_text(LONG_TRAINING)
    kill_once_training(execute(home, NEXT_DAY, "--config", str(config)))

    assert not partition_folder(home, NEXT_DAY).exists()
    assert digest(checkpoint_dir(home, START)) == yesterday
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    checkpoint_key = dg.AssetKey(["cartpole", "agent_checkpoint"])
    assert instance.get_materialized_partitions(checkpoint_key) == {START}

    rerun = execute(home, NEXT_DAY)
    output, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, output[-3000:]

    uninterrupted = tmp_path / "uninterrupted"
    app = cartpole_application(warehouse=str(home / "warehouse"))
    job = definitions(uninterrupted, app).resolve_job_def(DAILY_JOB)
    for day in (START, NEXT_DAY):
        assert job.execute_in_process(partition_key=day, instance=dg.DagsterInstance.ephemeral()).success
    rerun_variables, expected = variables(home, NEXT_DAY), variables(uninterrupted, NEXT_DAY)
    for name in expected:
        np.testing.assert_array_equal(rerun_variables[name], expected[name], err_msg=name)

"""The shell commands the README documents work as written, against the CartPole example module.

`dagster job execute` runs one day; `dagster asset materialize --partition-range` backfills a
range in one run, restoring each day's checkpoint from the day before.
"""

import os
import subprocess
import sys
from pathlib import Path

from rl_bakery_dagster.training.checkpoints import read_metrics
from rl_bakery_dagster_tests.apps import log_random_days, stored

MODULE = "rl_bakery_dagster.examples.cartpole.definitions"
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CARTPOLE_WAREHOUSE_URI": str(home / "warehouse"),
        "CARTPOLE_EVAL_EPISODES": "3",
        "RL_BAKERY_SPARK_MASTER": "local[2]",
    }
    return subprocess.run([DAGSTER, *args], env=env, capture_output=True, text=True, timeout=600)


def test_job_execute_then_range_backfill(home: Path) -> None:
    log_random_days(home, 3)
    one_day = run(
        [
            "job",
            "execute",
            "-m",
            MODULE,
            "-j",
            "daily_training",
            "--tags",
            '{"dagster/partition": "2024-01-01"}',
        ],
        home,
    )
    assert one_day.returncode == 0, one_day.stderr[-3000:]

    backfill = run(
        [
            "asset",
            "materialize",
            "-m",
            MODULE,
            "--select",
            "*",
            "--partition-range",
            "2024-01-02...2024-01-03",
        ],
        home,
    )
    assert backfill.returncode == 0, backfill.stderr[-3000:]

    restored = [
        read_metrics(str(stored(home, "cartpole", "agent_checkpoint", d)))["restored_from"]
        for d in ("2024-01-02", "2024-01-03")
    ]
    assert restored == ["2024-01-01", "2024-01-02"]
    assert "eval_return_mean" in read_metrics(str(stored(home, "cartpole", "agent_checkpoint", "2024-01-03")))


def test_workspace_loads_for_dagster_dev(home: Path) -> None:
    """`dagster dev` loads `workspace.yaml`; `definitions validate` loads it the same way."""
    repository_root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "RL_BAKERY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    validate = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=repository_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert validate.returncode == 0, validate.stderr[-3000:]
    assert "cartpole" in validate.stdout + validate.stderr

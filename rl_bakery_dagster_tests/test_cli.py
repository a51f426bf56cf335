"""The shell commands the README documents work as written, against the CartPole example module.

`dagster job execute` runs one day; `dagster asset materialize --partition-range` backfills a
range in one run, restoring each day's checkpoint from the day before. The one-day run also
proves the CLI quiet: it imports TensorFlow, TF-Agents, gym and Spark, and its stderr must hold
none of their known start-up noise.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg

from rl_bakery_dagster.training.checkpoints import read_metrics
from rl_bakery_dagster_tests.apps import log_random_days, stored

MODULE = "rl_bakery_dagster.examples.cartpole.definitions"
KNOWN_NOISE = [
    # written here from what a run printed before the package silenced it (issue 15), not from
    # rl_bakery_dagster.quiet: TF/absl C++ start-up lines on a CPU machine
    r"absl::InitializeLog\(\) is called",
    r"cudart_stub\.cc:\d+\] Could not find cuda drivers",
    r"failed call to cuInit",
    r"oneDNN custom operations are on",
    # gym's banner and the CartPole-v0 notice (the example plays v0 on purpose: 200 steps at most)
    r"Gym has been unmaintained",
    r"The environment CartPole-v0 is out of date",
    # TF-Agents' and autograph's compile-time SyntaxWarnings, a TF deprecation, absl's warnings
    r"SyntaxWarning: \"is( not)?\" with a literal",
    r"calling foldr_v2 .* is deprecated",
    r"is not a valid tf\.function parameter name",
    r"Could not serialize policy\.distribution\(\)",
    r"Encoding a StructuredValue with type tfp\.distributions",
]
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
    frames = log_random_days(home, 3)
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
    # quiet by default: the run trained (TF-Agents), evaluated in gym and used Spark, yet printed
    # none of the known noise; Dagster's own log lines are still there
    noise = {p: re.findall(f".*{p}.*", one_day.stderr) for p in KNOWN_NOISE}
    assert not {p: lines for p, lines in noise.items() if lines}
    assert "RUN_SUCCESS" in one_day.stderr

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

    # a range run gives each day its own numbers as an observation of its partition (public API)
    timesteps = dg.AssetKey(["cartpole", "timesteps"])
    with dg.DagsterInstance.get() as instance:
        for day, logged in zip(("2024-01-02", "2024-01-03"), frames[1:], strict=True):
            observed = instance.fetch_observations(
                dg.AssetRecordsFilter(asset_key=timesteps, asset_partitions=[day]),
                limit=1,
            ).records
            assert observed[0].asset_observation.metadata["dagster/row_count"].value == len(logged)


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

"""One daily run of the CartPole application on the embedded default, split per asset, with its overhead.

Two partitions run in a fresh bakery home (local Spark `local[*]`, local Dagster instance), with
the demo's default day (16 simulated players x 125 steps = 2,000 timesteps) and the application's
own agent (DQN, 2,000 train steps per day, 100 evaluation episodes):

- day 1 in this process, `job.execute_in_process` as the demo does, after the imports;
- day 2 as an operator would, a cold `dagster job execute -m ... --tags '{"dagster/partition": ...}'`.

Each run is split from its Dagster event log: run start → first step (resource initialisation,
which is where the SparkSession starts), each asset's step, the gaps between steps, and the end
of the run. Inside `agent_checkpoint` the log lines split training from evaluation and the commit.
"Overhead" is everything that is not an asset step (Dagster, Spark session start, process start).

Usage: `uv run python benchmarks/daily_run.py [--envs 16] [--steps-per-env 125]`
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import emit, quiet_tensorflow

MODULE = "rl_bakery_dagster.examples.cartpole.definitions"
DAYS = ("2024-01-01", "2024-01-02")
CLI_TIMEOUT_SECONDS = 900


def simulate_days(warehouse: Path, envs: int, steps: int) -> int:
    from rl_bakery_dagster.examples.cartpole.application import ENV_NAME, OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym, random_policy, write_day

    product = BatchedGym(ENV_NAME, envs, seed=0)
    policy = random_policy(product.action_space, 0)
    rows = 0
    for day in DAYS:
        logs = product.log(policy, steps, OBSERVATION_COLUMNS)
        write_day(logs, str(warehouse), day)
        rows = len(logs)
    return rows


def split_run(instance: Any, run_id: str) -> dict[str, Any]:
    """Seconds of each phase of a run, from its event log (engine timestamps)."""
    from dagster import DagsterEventType

    records = instance.all_logs(run_id)
    first = {}
    steps: dict[str, dict[str, float]] = {}
    messages: list[tuple[float, str]] = []
    for record in records:
        event = record.dagster_event
        if event is None:
            messages.append((record.timestamp, record.user_message))
            continue
        kind = event.event_type
        first.setdefault(kind, record.timestamp)
        if kind == DagsterEventType.STEP_START:
            steps.setdefault(event.step_key, {})["start"] = record.timestamp
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            steps.setdefault(event.step_key, {})["end"] = record.timestamp
        if kind == DagsterEventType.RUN_SUCCESS:
            first["end"] = record.timestamp
    ordered = sorted(steps.items(), key=lambda item: item[1]["start"])
    per_step = {key.split("__")[-1]: round(s["end"] - s["start"], 3) for key, s in ordered}
    run_start, run_end = first[DagsterEventType.RUN_START], first["end"]
    gaps = sum(ordered[i + 1][1]["start"] - ordered[i][1]["end"] for i in range(len(ordered) - 1))
    checkpoint = next(s for key, s in ordered if key.endswith("agent_checkpoint"))

    def at(text: str) -> float | None:
        return next(
            (t for t, m in messages if text in m and checkpoint["start"] <= t <= checkpoint["end"]),
            None,
        )

    trained, evaluated = at("trained "), at("greedy policy returns")
    training_started = at("training ")
    split = {}
    if training_started and trained:
        split["before_training"] = round(training_started - checkpoint["start"], 3)
        split["training"] = round(trained - training_started, 3)
    if trained and evaluated:
        split["evaluation"] = round(evaluated - trained, 3)
        split["save_export_commit"] = round(checkpoint["end"] - evaluated, 3)
    return {
        "run_seconds": round(run_end - run_start, 3),
        "before_first_step_seconds": round(ordered[0][1]["start"] - run_start, 3),
        "steps_seconds": per_step,
        "between_steps_seconds": round(gaps, 3),
        "after_last_step_seconds": round(run_end - ordered[-1][1]["end"], 3),
        "agent_checkpoint_split_seconds": split,
    }


def summarise(split: dict[str, Any], wall: float) -> dict[str, Any]:
    assets = sum(split["steps_seconds"].values())
    return {
        **split,
        "wall_seconds": round(wall, 3),
        "asset_steps_seconds": round(assets, 3),
        "overhead_seconds": round(wall - assets, 3),
        "overhead_share": round((wall - assets) / wall, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=16, help="simulated players (the demo's default)")
    parser.add_argument("--steps-per-env", type=int, default=125, help="steps each player logs per day")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench_daily_run_", dir=args.workdir))
    environ = {
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CARTPOLE_WAREHOUSE_URI": str(home / "warehouse" / "cartpole"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "RL_BAKERY_SPARK_CONF": '{"spark.log.level": "ERROR"}',
    }
    os.environ.update(environ)
    os.environ.pop("RL_BAKERY_SPARK_MASTER", None)  # the embedded default: local[*]
    try:
        rows = simulate_days(home / "warehouse" / "cartpole", args.envs, args.steps_per_env)
        quiet_tensorflow()
        started = time.perf_counter()
        from rl_bakery_dagster.examples.cartpole.definitions import defs
        from rl_bakery_dagster.jobs import DAILY_JOB
        from rl_bakery_dagster.local_instance import local_instance

        instance = local_instance(home)
        job = defs.resolve_job_def(DAILY_JOB)
        load_seconds = time.perf_counter() - started

        started = time.perf_counter()
        result = job.execute_in_process(partition_key=DAYS[0], instance=instance, raise_on_error=True)
        in_process_wall = time.perf_counter() - started
        in_process = summarise(split_run(instance, result.run_id), in_process_wall)
        in_process["definitions_import_and_load_seconds"] = round(load_seconds, 3)

        dagster = str(Path(sys.executable).with_name("dagster"))
        command = [dagster, "job", "execute", "-m", MODULE, "-j", DAILY_JOB]
        command += ["--tags", f'{{"dagster/partition": "{DAYS[1]}"}}']
        started = time.perf_counter()
        done = subprocess.run(
            command, env={**os.environ}, capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS
        )
        cli_wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"dagster job execute failed:\n{done.stderr[-3000:]}")
        runs = instance.get_runs()
        cli_run = next(r for r in runs if r.tags.get("dagster/partition") == DAYS[1])
        cli = summarise(split_run(instance, cli_run.run_id), cli_wall)
        cli["process_start_imports_and_load_seconds"] = round(cli_wall - cli["run_seconds"], 3)
        emit(
            {
                "benchmark": "daily_run",
                "application": "cartpole (DQN, 2000 train steps/day, 100 evaluation episodes)",
                "spark_master": "local[*] (embedded default)",
                "timesteps_per_day": rows,
                "in_process_day_1": in_process,
                "cli_day_2": cli,
                "ratios": {
                    "in_process_asset_share": round(1 - in_process["overhead_share"], 3),
                    "cli_asset_share": round(1 - cli["overhead_share"], 3),
                },
            }
        )
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Training input: DQN train steps/s streaming transitions from Parquet vs TF-Agents' in-memory replay buffer.

Both sides train the CartPole application's own agent (DQN, 100 units, batch 64) with
`common.function(agent.train)`, on the same simulated CartPole logs:

- `stream`: what `agent_checkpoint` does (`training/trainer.py`): the window's Parquet files, built
  by our Spark job (`build_transitions`), streamed through `transition_dataset` (pyarrow record
  batches → bounded shuffle buffer → `tf.data`).
  Since the blocks change (32 batches per generator call, split by `unbatch`) was merged into
  `training/dataset.py`, `stream` measures it; `results/training_input.json` is from before, when
  it was a separate `stream_blocks` mode.
- `replay`: the TF-Agents tutorial loop: every timestep added to a `TFUniformReplayBuffer`, then
  `as_dataset(sample_batch_size=64, num_steps=2, num_parallel_calls=3).prefetch(3)`.

Each (mode, training days) pair runs in its own process, so its peak RSS is its own; the modes
alternate `--repeats` times and the median rate is reported (the machine is shared). A training
window of W days is W copies of the same simulated day (hard links on the stream side, W
side-by-side copies in the replay buffer), so only the amount of data changes with W.

Usage: `uv run python benchmarks/training_input.py [--days 1,8,32] [--steps 3000] [--repeats 2]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_common import emit, peak_rss_mib, quiet_tensorflow, ratio, spark_session

START = "2024-01-01"
ENVS = 100
TARGET_SHARE_OF_IN_MEMORY = 0.9
WORKER_TIMEOUT_SECONDS = 1200
MODES = ("replay", "stream")
FLAT_MEMORY_MIB = 64.0
"""Peak RSS may wobble by allocator noise; growth beyond this over the windows is not flat."""


def cartpole() -> Any:
    from rl_bakery_dagster.examples.cartpole.application import cartpole_application

    return cartpole_application(warehouse="/nonexistent")


def simulate(folder: Path, steps_per_env: int, seed: int) -> tuple[Path, int]:
    """One day of random CartPole play: timesteps (for the buffer) and transitions (Parquet, via Spark)."""
    from pyspark.sql import functions as F

    from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym, random_policy
    from rl_bakery_dagster.transforms.timesteps import to_contract
    from rl_bakery_dagster.transforms.transitions import build_transitions

    app = cartpole()
    product = BatchedGym("CartPole-v0", ENVS, seed)
    logs = product.log(random_policy(product.action_space, seed), steps_per_env, OBSERVATION_COLUMNS)
    logs.to_parquet(folder / "timesteps.parquet", index=False)
    spark = spark_session(folder / "spark_home")
    raw = spark.read.parquet(str(folder / "timesteps.parquet"))
    contract = to_contract(raw, app.schema, app.action_space, START)
    transitions = build_transitions(contract, app.schema, app.trajectory.n_step, [START])
    transitions.write.partitionBy("dt").parquet(str(folder / "trajectories"))
    rows = spark.read.parquet(str(folder / "trajectories")).select(F.count("*")).first()[0]
    spark.stop()
    return folder / "trajectories" / f"dt={START}", int(rows)


def window_of(day_folder: Path, days: int, into: Path) -> dict[str, str]:
    """`days` daily partitions (hard links of one simulated day), as the checkpoint asset receives them."""
    from rl_bakery_dagster.partitions import shift_day

    window = {}
    for offset in range(days):
        day = shift_day(START, offset)
        target = into / f"dt={day}"
        target.mkdir(parents=True, exist_ok=True)
        for file in day_folder.glob("*.parquet"):
            os.link(file, target / file.name)
        window[day] = str(target)
    return window


def replay_items(timesteps: pd.DataFrame, copies: int) -> dict[str, np.ndarray]:
    """Time-major arrays [T-1, ENVS * copies] of the items a TF-Agents driver would add to its buffer."""
    from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS

    steps = len(timesteps) // ENVS

    def grid(column: str | list[str], dtype: type) -> np.ndarray:
        values = timesteps[column].to_numpy().astype(dtype)
        return values.reshape(steps, ENVS, *values.shape[1:])

    step_type, action = grid("step_type", np.int32), grid("action", np.int64)
    observation = grid(list(OBSERVATION_COLUMNS), np.float32)
    reward, discount = grid("reward", np.float32), grid("discount", np.float32)
    items = {
        "step_type": step_type[:-1],
        "observation": observation[:-1],
        "action": action[:-1],
        "next_step_type": step_type[1:],
        "reward": reward[1:],
        "discount": discount[1:],
    }
    return {k: np.concatenate([v] * copies, axis=1) for k, v in items.items()}


def worker(mode: str, days: int, data: Path, steps: int, warmup: int) -> dict[str, Any]:
    """Builds the agent and its input for `days` days, trains warmup+steps steps, reports rate and memory."""
    quiet_tensorflow()
    import tensorflow as tf
    from pyarrow import fs
    from tf_agents.replay_buffers import tf_uniform_replay_buffer
    from tf_agents.trajectories import trajectory as trajectory_lib
    from tf_agents.utils import common

    from rl_bakery_dagster.resources.io_managers import ParquetPartitions
    from rl_bakery_dagster.training.daily import transition_layout
    from rl_bakery_dagster.training.dataset import transition_dataset
    from rl_bakery_dagster.training.trainer import count_rows

    app = cartpole()
    settings = app.agent
    tf.config.experimental.enable_op_determinism()  # as `train_on_transitions` does
    agent = settings.build(
        app.schema.observation_spec(), app.action_space.tensor_spec(), app.trajectory.n_step
    )
    started = time.perf_counter()
    if mode.startswith("stream"):
        scratch = Path(tempfile.mkdtemp(prefix=f"window_{days}_", dir=data))
        filesystem, files = ParquetPartitions(
            window_of(data / "trajectories" / f"dt={START}", days, scratch)
        ).files()
        transitions = count_rows(filesystem, files)
        dataset = transition_dataset(
            fs.LocalFileSystem(),
            files,
            transition_layout(app),
            settings.batch_size,
            settings.shuffle_buffer_rows,
            seed=0,
        )
    else:
        items = replay_items(pd.read_parquet(data / "timesteps.parquet"), days)
        length, batch = items["step_type"].shape[:2]
        buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            agent.collect_data_spec, batch_size=batch, max_length=length
        )
        for t in range(length):
            buffer.add_batch(
                trajectory_lib.Trajectory(
                    step_type=tf.constant(items["step_type"][t]),
                    observation=tf.constant(items["observation"][t]),
                    action=tf.constant(items["action"][t]),
                    policy_info=(),
                    next_step_type=tf.constant(items["next_step_type"][t]),
                    reward=tf.constant(items["reward"][t]),
                    discount=tf.constant(items["discount"][t]),
                )
            )
        transitions = length * batch
        del items
        dataset = buffer.as_dataset(
            num_parallel_calls=3, sample_batch_size=settings.batch_size, num_steps=app.trajectory.n_step + 1
        ).prefetch(3)
    setup_seconds = time.perf_counter() - started
    train = common.function(agent.train)
    iterator = iter(dataset)

    def run(count: int) -> float:
        for _ in range(count):
            experience = next(iterator)
            if mode == "replay":
                experience = experience[0]
            loss = train(experience).loss
        return float(loss)

    started = time.perf_counter()
    run(warmup)
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    loss = run(steps)
    seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "days": days,
        "transitions": int(transitions),
        "setup_seconds": round(setup_seconds, 3),
        "warmup_steps": warmup,
        "warmup_seconds": round(warmup_seconds, 3),
        "timed_steps": steps,
        "timed_seconds": round(seconds, 3),
        "steps_per_second": round(steps / seconds, 1),
        "end_to_end_seconds": round(setup_seconds + warmup_seconds + seconds, 3),
        "final_loss": loss,
        "peak_rss_mib": peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1,8,32", help="training window sizes, comma-separated")
    parser.add_argument(
        "--steps-per-env", type=int, default=1000, help="one day = 100 envs x this many steps"
    )
    parser.add_argument("--steps", type=int, default=3000, help="timed train steps per run")
    parser.add_argument("--warmup", type=int, default=300, help="untimed train steps first (tracing)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per mode and window")
    parser.add_argument("--worker", choices=MODES, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    windows = [int(d) for d in args.days.split(",")]
    if args.worker:
        print(json.dumps(worker(args.worker, windows[0], args.data, args.steps, args.warmup)), flush=True)
        return

    data = Path(tempfile.mkdtemp(prefix="bench_training_input_", dir=args.workdir))
    try:
        started = time.perf_counter()
        _, transitions_per_day = simulate(data, args.steps_per_env, seed=0)
        prepare_seconds = time.perf_counter() - started
        runs: list[dict[str, Any]] = []
        for days in windows:
            for _ in range(args.repeats):
                for mode in MODES:
                    command = [sys.executable, __file__, "--worker", mode, "--days", str(days)]
                    command += ["--data", str(data), "--steps", str(args.steps), "--warmup", str(args.warmup)]
                    done = subprocess.run(
                        command, capture_output=True, text=True, timeout=WORKER_TIMEOUT_SECONDS
                    )
                    if done.returncode != 0:
                        raise RuntimeError(f"{mode} worker ({days} days) failed:\n{done.stderr[-3000:]}")
                    runs.append(json.loads(done.stdout.strip().splitlines()[-1]))

        def rate(mode: str, days: int) -> float:
            return statistics.median(
                r["steps_per_second"] for r in runs if (r["mode"], r["days"]) == (mode, days)
            )

        def peak(mode: str, days: int) -> float:
            return max(r["peak_rss_mib"] for r in runs if (r["mode"], r["days"]) == (mode, days))

        rates = {mode: {str(d): round(rate(mode, d), 1) for d in windows} for mode in MODES}
        share = {
            mode: {str(d): ratio(rate(mode, d), rate("replay", d), 3) for d in windows}
            for mode in ("stream",)
        }
        memory = {mode: {str(d): peak(mode, d) for d in windows} for mode in MODES}
        growth = {mode: round(peak(mode, windows[-1]) - peak(mode, windows[0]), 1) for mode in MODES}
        emit(
            {
                "benchmark": "training_input",
                "agent": "cartpole DQN, fc [100], batch 64, n_step 1",
                "transitions_per_day": transitions_per_day,
                "days": windows,
                "repeats": args.repeats,
                "steps_per_second_median": rates,
                "peak_rss_mib": memory,
                "peak_rss_growth_mib_from_first_to_last_window": growth,
                "ratios": {"rate_over_in_memory_replay": share},
                "targets_met": {
                    mode: {
                        "at_least_90pct_of_in_memory": all(
                            v is not None and v >= TARGET_SHARE_OF_IN_MEMORY for v in share[mode].values()
                        ),
                        "peak_memory_flat_within_64_mib": growth[mode] <= FLAT_MEMORY_MIB,
                    }
                    for mode in ("stream",)
                },
                "prepare_seconds": round(prepare_seconds, 3),
                "runs": runs,
            }
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

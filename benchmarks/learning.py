"""Learning quality through the daily pipeline: N independent seeded runs, as RL Bakery published them.

Each run has its own temporary bakery home (warehouse, storage, Dagster instance). Day 1's logs
are played by a random policy; every later day is played by the *collect* policy that
`agent_checkpoint` exported the day before (PolicySaver SavedModel loaded back), as a deployed
product would. Every day is materialised through the application's `daily_training` job
(`job.execute_in_process`: timesteps → trajectories → agent_checkpoint), on one SparkSession
shared by all runs of the process. After the last day, the *greedy* policy exported by the last
checkpoint is loaded from storage and played for `--eval-episodes` episodes (100 by default) on
seeds no run trained on.

`mean_reward` / `std_reward` are the mean and (population) standard deviation, across runs, of
each run's final greedy mean return over those episodes — the statistic RL Bakery reported
("mean ± std of eval return over independent runs"). `n_timesteps` counts every timestep logged
to the warehouse in one run (all days); `per_run` holds each run's figures and its daily
`eval_return_mean` (the checkpoint's own metadata, plotted across days in the Dagster UI).

Hyper-parameters are configuration only (`TFAgentsResource` fields and `TrajectorySettings`):
the tuned ones are `rl_bakery_dagster.examples.presets.PRESETS`, one per example application,
which the examples ship as their defaults (so the examples run what this measures);
`--agent '{"field": value}'` and the flags below override them. The day loop is the examples'
own (`rl_bakery_dagster.examples.gym_days`): `python -m rl_bakery_dagster.examples.<preset>
--seed S` prints the days of this benchmark's run with seed S.

Usage (results and the exact commands behind them: benchmarks/LEARNING.md):
  uv run python benchmarks/learning.py --preset cartpole --runs 20
  uv run python benchmarks/learning.py --preset ddqn_cartpole --runs 12 --seed 100
  uv run python benchmarks/learning.py --algo ddqn --env CartPole-v0 --runs 12   # the cartpole preset, DDQN
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_common import emit, quiet_tensorflow, spark_session

from rl_bakery_dagster.examples.gym_days import FINAL_EVAL_SEED
from rl_bakery_dagster.examples.presets import PRESETS, GymPreset

DEFAULT_PRESET = {
    ("dqn", "CartPole-v0"): "cartpole",
    ("ddqn", "CartPole-v0"): "cartpole",  # the published 20,000-timestep DDQN row: the DQN preset
    ("ddpg", "MountainCarContinuous-v0"): "mountain_car",
}
"""The preset `--algo/--env` select without `--preset` (the commands LEARNING.md's first rows ran)."""
__all__ = ["FINAL_EVAL_SEED", "PRESETS", "main"]


def run_once(
    name: str,
    preset: GymPreset,
    eval_episodes: int,
    run_index: int,
    seed: int,
    workdir: Path | None,
    keep: bool,
) -> dict[str, Any]:
    """One independent run: simulate and materialise `preset.days` days, then evaluate the last checkpoint."""
    import dagster as dg

    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster.examples.gym_days import example_application, final_evaluation, play_days

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix=f"bench_learning_{name}_{run_index}_", dir=workdir))
    app = example_application(name, preset, seed, warehouse=str(home / "warehouse"))
    episodes_variable = f"{app.name.upper()}_EVAL_EPISODES"  # read by the example's evaluator
    saved_episodes = os.environ.get(episodes_variable)
    os.environ[episodes_variable] = str(preset.day_eval_episodes)
    try:
        defs = build_definitions(app, home=home)
        # not `home / "dagster"`: build_definitions made that the process's DAGSTER_HOME (run 1's)
        (home / "instance").mkdir()
        instance = dg.DagsterInstance.local_temp(str(home / "instance"))
        daily: list[dict[str, Any]] = []
        metadata_types: set[str] = set()
        for day in play_days(app, defs, instance, preset, seed, app.start_date):
            record = {
                key: value
                for key, value in dataclasses.asdict(day).items()
                if key not in ("eval_metadata_type", "eval_return_std") and value is not None
            }
            if day.eval_metadata_type is not None:
                metadata_types.add(day.eval_metadata_type)
            daily.append(record)
            print(f"run {run_index} seed {seed} {json.dumps(record)}", file=sys.stderr, flush=True)
        final = final_evaluation(app, defs, preset, seed, daily[-1]["day"], eval_episodes)
        outcome = {
            "run": run_index,
            "seed": seed,
            "final_mean_return": round(final.mean_return, 3),
            "final_std_return": round(final.std_return, 3),
            "eval_episodes": final.episodes,
            "n_timesteps": sum(day["timesteps"] for day in daily),
            "eval_return_metadata_types": sorted(metadata_types),
            "days": daily,
            "wall_seconds": round(time.perf_counter() - started, 1),
        }
        print(
            f"run {run_index} seed {seed}: final greedy return {final.mean_return:.2f} ± "
            f"{final.std_return:.2f} over {final.episodes} episodes ({outcome['wall_seconds']}s)",
            file=sys.stderr,
            flush=True,
        )
        return outcome
    finally:
        if saved_episodes is None:
            os.environ.pop(episodes_variable, None)
        else:
            os.environ[episodes_variable] = saved_episodes
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="an example's preset")
    parser.add_argument("--algo", choices=["dqn", "ddqn", "ddpg"], default=None, help="replaces the preset's")
    parser.add_argument(
        "--env", default=None, help="with --algo and no --preset: CartPole-v0 or MountainCarContinuous-v0"
    )
    parser.add_argument("--runs", type=int, default=1, help="independent seeded runs")
    parser.add_argument("--seed", type=int, default=0, help="run i uses seed SEED + i")
    parser.add_argument("--days", type=int, default=None, help="simulated days per run")
    parser.add_argument("--envs", type=int, default=None, help="simulated players per day")
    parser.add_argument("--steps-per-env", type=int, default=None, help="timesteps each player logs per day")
    parser.add_argument("--train-steps", type=int, default=None, help="agent train steps per day")
    parser.add_argument("--n-step", type=int, default=None, help="TrajectorySettings.n_step")
    parser.add_argument("--window-days", type=int, default=None, help="TrajectorySettings.window_days")
    parser.add_argument("--first-day-policy", choices=["uniform", "ou"], default=None)
    parser.add_argument("--eval-episodes", type=int, default=100, help="final greedy evaluation episodes")
    parser.add_argument("--day-eval-episodes", type=int, default=None, help="episodes of each day's metadata")
    parser.add_argument("--agent", type=json.loads, default={}, help="TFAgentsResource fields, as JSON")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the runs' temporary homes")
    parser.add_argument("--keep", action="store_true", help="keep each run's home (warehouse, storage)")
    args = parser.parse_args(argv)
    if args.preset is None:
        if args.algo is None:
            parser.error("give --preset, or --algo (and --env)")
        env = args.env or ("MountainCarContinuous-v0" if args.algo == "ddpg" else "CartPole-v0")
        if (args.algo, env) not in DEFAULT_PRESET:
            parser.error(f"no preset for --algo {args.algo} --env {env}: give --preset")
        args.preset = DEFAULT_PRESET[(args.algo, env)]
    if args.env is not None and args.env != PRESETS[args.preset].env:
        parser.error(f"the {args.preset} preset plays {PRESETS[args.preset].env}, not {args.env}")
    return args


def build_preset(args: argparse.Namespace) -> GymPreset:
    """The chosen preset with the command line's overrides."""
    preset = PRESETS[args.preset].with_agent(**args.agent)
    agent = dict(preset.agent)
    if args.algo is not None:
        agent["algorithm"] = args.algo
    if args.train_steps is not None:
        agent["train_steps_per_day"] = args.train_steps
    trajectory = dict(preset.trajectory)
    if args.n_step is not None:
        trajectory["n_step"] = args.n_step
    if args.window_days is not None:
        trajectory["window_days"] = args.window_days

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return getattr(preset, name) if value is None else value

    return dataclasses.replace(
        preset,
        agent=agent,
        trajectory=trajectory,
        days=pick("days"),
        envs=pick("envs"),
        steps_per_env=pick("steps_per_env"),
        first_day_policy=pick("first_day_policy"),
        day_eval_episodes=pick("day_eval_episodes"),
    )


def main(argv: Sequence[str] | None = None, spark: Any | None = None) -> dict[str, Any]:
    """Runs the benchmark and prints its JSON line; `spark` reuses a caller's SparkSession (tests)."""
    args = parse_args(argv)
    spec = build_preset(args)
    quiet_tensorflow()
    started = time.perf_counter()
    spark_home = None
    if spark is None:  # this process owns the session (and may change its environment)
        os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
        spark_home = Path(tempfile.mkdtemp(prefix="bench_learning_spark_", dir=args.workdir))
        spark = spark_session(spark_home, args.spark_master)
    runs = []
    try:
        for index in range(args.runs):
            runs.append(
                run_once(
                    args.preset, spec, args.eval_episodes, index, args.seed + index, args.workdir, args.keep
                )
            )
            if spark_home is not None:
                import tensorflow as tf

                tf.keras.backend.clear_session()  # many agents in one process: drop Keras' global state
    finally:
        if spark_home is not None:
            spark.stop()
            shutil.rmtree(spark_home, ignore_errors=True)
    finals = [run["final_mean_return"] for run in runs]
    result = {
        "benchmark": "learning",
        "preset": args.preset,
        "algo": spec.algorithm,
        "env": spec.env,
        "mean_reward": round(statistics.fmean(finals), 3),
        "std_reward": round(statistics.pstdev(finals), 3),
        "statistic": (
            f"mean and population std, across runs, of each run's final greedy mean return over "
            f"{args.eval_episodes} episodes (the last day's checkpoint)"
        ),
        "n_runs": len(runs),
        "n_timesteps": max(run["n_timesteps"] for run in runs),
        "n_days": spec.days,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "returns": finals,
        "hyperparameters": {
            "agent": spec.agent,
            "trajectory": spec.trajectory,
            "days": spec.days,
            "envs": spec.envs,
            "steps_per_env": spec.steps_per_env,
            "timesteps_per_day": spec.envs * spec.steps_per_env,
            "first_day_policy": spec.first_day_policy,
            "day_eval_episodes": spec.day_eval_episodes,
            "eval_episodes": args.eval_episodes,
            "seeds": [args.seed + i for i in range(args.runs)],
        },
        "per_run": runs,
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()

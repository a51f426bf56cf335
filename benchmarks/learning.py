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
`PRESETS` holds the tuned ones per (algorithm, environment); `--agent '{"field": value}'` and the
flags below override them.

Usage (results and the exact commands behind them: benchmarks/LEARNING.md):
  uv run python benchmarks/learning.py --algo dqn --env CartPole-v0 --runs 20
  uv run python benchmarks/learning.py --algo ddqn --runs 12 --agent '{"epsilon_greedy": 0.3}'
  uv run python benchmarks/learning.py --algo ddpg --env MountainCarContinuous-v0 --runs 12
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import emit, quiet_tensorflow, spark_session

DEFAULT_ENV = {"dqn": "CartPole-v0", "ddqn": "CartPole-v0", "ddpg": "MountainCarContinuous-v0"}
APP_NAMES = {"CartPole-v0": "cartpole", "MountainCarContinuous-v0": "mountain_car"}
FINAL_EVAL_SEED = 50_000_000
"""Final evaluation episodes start at this gym seed (+ 1,000 per run): apart from every logged day."""

_CARTPOLE_DQN: dict[str, Any] = {
    "agent": {
        "fc_layer_params": [100],
        "learning_rate": 1e-3,
        "gamma": 0.99,
        # exploration falls as the agent improves: broad logs first, then logs near the greedy policy,
        # whose drift towards the track's edge the agent must see to learn to avoid it
        "epsilon_greedy": 0.6,
        "epsilon_decay_steps": 8000,
        "epsilon_greedy_final": 0.05,
        "target_update_period": 100,
        "td_errors_loss": "squared",
        "batch_size": 64,
        "train_steps_per_day": 2000,
    },
    "trajectory": {"n_step": 1, "lookback_days": 1, "lag_days": 0, "window_days": 30},
    "days": 5,
    "envs": 20,
    "steps_per_env": 200,
    "first_day_policy": "uniform",
    "day_eval_episodes": 100,
}
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("dqn", "CartPole-v0"): _CARTPOLE_DQN,
    ("ddqn", "CartPole-v0"): {**_CARTPOLE_DQN, "agent": {**_CARTPOLE_DQN["agent"], "algorithm": "ddqn"}},
    ("ddpg", "MountainCarContinuous-v0"): {
        "agent": {
            "algorithm": "ddpg",
            "actor_fc_layer_params": [64, 64],
            "critic_observation_fc_layer_params": [64],
            "critic_joint_fc_layer_params": [64],
            "actor_learning_rate": 1e-4,
            "critic_learning_rate": 1e-3,
            "target_update_tau": 0.05,  # faster targets: the goal's value must travel ~100 steps back
            "target_update_period": 1,
            "gamma": 0.99,
            "ou_stddev": 0.3,
            "ou_damping": 0.15,
            "batch_size": 64,
            "train_steps_per_day": 6000,
        },
        "trajectory": {"n_step": 1, "lookback_days": 1, "lag_days": 0, "window_days": 30},
        "days": 5,
        "envs": 10,
        "steps_per_env": 1000,
        "first_day_policy": "ou",
        "day_eval_episodes": 20,
    },
}


def ou_random_policy(space: Any, seed: int, theta: float = 0.15, sigma: float = 0.6) -> Any:
    """A random policy for a `Box` space with temporally correlated actions (Ornstein-Uhlenbeck).

    Uniform noise on MountainCar only jitters the car in the valley; a slowly varying random push
    swings it up the hill now and then, so the first day's logs contain some successes.
    """
    rng = np.random.default_rng(seed)
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    state: dict[str, np.ndarray] = {}

    def act(step_type: np.ndarray, reward: np.ndarray, discount: np.ndarray, obs: np.ndarray) -> np.ndarray:
        shape = (len(step_type), *low.shape)
        if "noise" not in state:
            state["noise"] = np.zeros(shape, dtype=np.float32)
        noise = state["noise"]
        noise[step_type == 0] = 0.0
        noise += -theta * noise + sigma * rng.standard_normal(shape).astype(np.float32)
        return np.clip(noise, low, high).astype(np.float32)

    return act


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything one benchmark run needs; identical for every run but the seed."""

    algo: str
    env: str
    agent: dict[str, Any]
    trajectory: dict[str, int]
    days: int
    envs: int
    steps_per_env: int
    first_day_policy: str
    day_eval_episodes: int
    eval_episodes: int


def build_application(spec: Spec, home: Path, seed: int) -> Any:
    """The example application of `spec.env`, with the spec's agent and trajectory settings."""
    from rl_bakery_dagster.application import ActionSpace, TrajectorySettings
    from rl_bakery_dagster.examples.gym_application import gym_application
    from rl_bakery_dagster.resources.agents import TFAgentsResource

    agent = TFAgentsResource(**{**spec.agent, "algorithm": spec.algo, "seed": seed})
    trajectory = TrajectorySettings(**spec.trajectory)
    warehouse = str(home / "warehouse")
    if spec.env == "CartPole-v0":
        from rl_bakery_dagster.examples.cartpole.application import cartpole_application

        app = cartpole_application(agent=agent, warehouse=warehouse)
    elif spec.env == "MountainCarContinuous-v0":
        from rl_bakery_dagster.examples.mountain_car.application import mountain_car_application

        app = mountain_car_application(agent=agent, warehouse=warehouse)
    else:  # any other gym environment with a flat Box observation
        import gym

        probe = gym.make(spec.env)
        columns = tuple(f"obs_{i}" for i in range(int(np.prod(probe.observation_space.shape))))
        space = probe.action_space
        action_space = (
            ActionSpace("discrete", num_actions=int(space.n))
            if isinstance(space, gym.spaces.Discrete)
            else ActionSpace(
                "continuous", low=tuple(map(float, space.low)), high=tuple(map(float, space.high))
            )
        )
        name = "".join(c if c.isalnum() else "_" for c in spec.env.lower()).strip("_")
        app = gym_application(name, spec.env, columns, action_space, agent, warehouse, 10, trajectory)
    return dataclasses.replace(app, trajectory=trajectory)


def observation_columns(app: Any) -> tuple[str, ...]:
    return tuple(app.schema.observation_columns)


def checkpoint_metadata(result: Any, app_name: str) -> dict[str, Any]:
    """The raw Dagster metadata values of the run's `agent_checkpoint` materialisation."""
    return next(
        event.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.materialization.asset_key.path == [app_name, "agent_checkpoint"]
    )


def run_once(spec: Spec, run_index: int, seed: int, workdir: Path | None, keep: bool) -> dict[str, Any]:
    """One independent run: simulate and materialise `spec.days` days, then evaluate the last checkpoint."""
    import dagster as dg
    import tensorflow as tf

    from rl_bakery_dagster.checkpoint_format import COLLECT_POLICY, GREEDY_POLICY
    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster.examples.gym_simulator import (
        BatchedGym,
        deployed_policy,
        evaluate,
        random_policy,
        tf_policy,
        write_day,
    )
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.storage import StorageRoot

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix=f"bench_learning_{spec.algo}_{run_index}_", dir=workdir))
    app = build_application(spec, home, seed)
    episodes_variable = f"{app.name.upper()}_EVAL_EPISODES"  # read by the example's evaluator
    saved_episodes = os.environ.get(episodes_variable)
    os.environ[episodes_variable] = str(spec.day_eval_episodes)
    try:
        defs = build_definitions(app, home=home)
        job = defs.resolve_job_def(DAILY_JOB)
        (home / "dagster").mkdir()
        instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
        storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)  # type: ignore[union-attr]
        checkpoints = [app.name, "agent_checkpoint"]
        product = BatchedGym(spec.env, spec.envs, seed=seed * 100_000)
        columns = observation_columns(app)
        daily: list[dict[str, Any]] = []
        timesteps = 0
        metadata_types: set[str] = set()
        for offset in range(spec.days):
            day = shift_day(app.start_date, offset)
            day_started = time.perf_counter()
            policy: Callable[..., Any]
            if offset > 0:
                saved = storage.read_uri(checkpoints, shift_day(day, -1))
                # discrete: epsilon-greedy as the collect policy plays, logging exact propensities
                if app.action_space.is_discrete:
                    policy = deployed_policy(saved, app.action_space.num_actions, seed * 1_000 + offset)
                else:
                    policy = tf_policy(tf.saved_model.load(f"{saved}/{COLLECT_POLICY}"))
                played_by = "collect"
            elif spec.first_day_policy == "ou":
                policy, played_by = ou_random_policy(product.action_space, seed), "random (OU)"
            else:
                policy, played_by = random_policy(product.action_space, seed), "random (uniform)"
            logs = product.log(policy, spec.steps_per_env, columns)
            timesteps += len(logs)
            write_day(logs, app.warehouse.uri, day)
            result = job.execute_in_process(
                partition_key=day,
                instance=instance,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=True,
            )
            metadata = checkpoint_metadata(result, app.name)
            record: dict[str, Any] = {
                "day": day,
                "timesteps": len(logs),
                "played_by": played_by,
                "logged_episodes_ended": int((logs["step_type"] == 2).sum()),
                "train_steps": metadata["train_steps"].value,
                "loss_mean": metadata["loss_mean"].value,
                "seconds": round(time.perf_counter() - day_started, 1),
            }
            if "eval_return_mean" in metadata:
                metadata_types.add(type(metadata["eval_return_mean"]).__name__)
                record["eval_return_mean"] = metadata["eval_return_mean"].value
            daily.append(record)
            print(f"run {run_index} seed {seed} {json.dumps(record)}", file=sys.stderr, flush=True)
        last = storage.read_uri(checkpoints, shift_day(app.start_date, spec.days - 1))
        greedy = tf_policy(tf.saved_model.load(f"{last}/{GREEDY_POLICY}"))
        final = evaluate(greedy, spec.env, spec.eval_episodes, seed=FINAL_EVAL_SEED + 1_000 * seed)
        outcome = {
            "run": run_index,
            "seed": seed,
            "final_mean_return": round(final.mean_return, 3),
            "final_std_return": round(final.std_return, 3),
            "eval_episodes": final.episodes,
            "n_timesteps": timesteps,
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
    parser.add_argument("--algo", choices=sorted(DEFAULT_ENV), required=True)
    parser.add_argument(
        "--env", default=None, help="gym id (default: CartPole-v0 / MountainCarContinuous-v0)"
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
    args.env = args.env or DEFAULT_ENV[args.algo]
    return args


def build_spec(args: argparse.Namespace) -> Spec:
    preset = PRESETS.get((args.algo, args.env))
    if preset is None:
        family = "ddpg" if args.algo == "ddpg" else "dqn"
        preset = PRESETS[(family, DEFAULT_ENV[family])]
    agent = {**preset["agent"], **args.agent, "algorithm": args.algo}
    if args.train_steps is not None:
        agent["train_steps_per_day"] = args.train_steps
    trajectory = dict(preset["trajectory"])
    if args.n_step is not None:
        trajectory["n_step"] = args.n_step
    if args.window_days is not None:
        trajectory["window_days"] = args.window_days

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return preset[name] if value is None else value

    return Spec(
        algo=args.algo,
        env=args.env,
        agent=agent,
        trajectory=trajectory,
        days=pick("days"),
        envs=pick("envs"),
        steps_per_env=pick("steps_per_env"),
        first_day_policy=pick("first_day_policy"),
        day_eval_episodes=pick("day_eval_episodes"),
        eval_episodes=args.eval_episodes,
    )


def main(argv: Sequence[str] | None = None, spark: Any | None = None) -> dict[str, Any]:
    """Runs the benchmark and prints its JSON line; `spark` reuses a caller's SparkSession (tests)."""
    args = parse_args(argv)
    spec = build_spec(args)
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
            runs.append(run_once(spec, index, args.seed + index, args.workdir, args.keep))
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
        "algo": spec.algo,
        "env": spec.env,
        "mean_reward": round(statistics.fmean(finals), 3),
        "std_reward": round(statistics.pstdev(finals), 3),
        "statistic": (
            f"mean and population std, across runs, of each run's final greedy mean return over "
            f"{spec.eval_episodes} episodes (the last day's checkpoint)"
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
            "eval_episodes": spec.eval_episodes,
            "seeds": [args.seed + i for i in range(args.runs)],
        },
        "per_run": runs,
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()

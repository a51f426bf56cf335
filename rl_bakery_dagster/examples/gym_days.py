"""Simulated product days through a gym example's daily job, then the final greedy evaluation.

One loop shared by the examples' command lines (`python -m rl_bakery_dagster.examples.<name>`)
and `benchmarks/learning.py`, so an example prints, day by day, exactly what the benchmark
recorded for the same preset and seed. Day 1's logs are played by a random policy; every later
day by the policy the previous day's `agent_checkpoint` exported (epsilon-greedy with logged
propensities for discrete actions, the collect policy for continuous ones), as a deployed
product would. After the last day its greedy policy plays `eval_episodes` episodes on gym seeds
no day logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.examples.gym_simulator import BatchPolicy
from rl_bakery_dagster.examples.presets import PRESETS, GymPreset

FINAL_EVAL_SEED = 50_000_000
"""Final evaluation episodes start at this gym seed (+ 1,000 per seed): apart from every logged day."""

APPLICATIONS = {
    "cartpole": "rl_bakery_dagster.examples.cartpole.application:cartpole_application",
    "mountain_car": "rl_bakery_dagster.examples.mountain_car.application:mountain_car_application",
    "ddqn_cartpole": "rl_bakery_dagster.examples.ddqn_cartpole.application:ddqn_cartpole_application",
    "acrobot": "rl_bakery_dagster.examples.acrobot.application:acrobot_application",
    "cartpole_v1": "rl_bakery_dagster.examples.cartpole_v1.application:cartpole_v1_application",
}
"""Each preset's example application factory: `(agent=None, warehouse=None) -> Application`."""


def quiet_example_logs() -> None:
    """Only errors from TensorFlow, absl and the libraries' warnings: an example prints its own days."""
    import warnings

    import tensorflow as tf
    from absl import logging as absl_logging

    tf.get_logger().setLevel("ERROR")
    absl_logging.set_verbosity(absl_logging.ERROR)
    for noisy in ("gym", "tensorflow", "tf_agents", "keras"):
        warnings.filterwarnings("ignore", module=noisy)
    warnings.filterwarnings("ignore", category=SyntaxWarning)


def example_application(name: str, preset: GymPreset, seed: int, warehouse: str | None) -> Application:
    """The example `name` with `preset`'s agent (seeded with `seed`) and trajectory settings."""
    from rl_bakery_dagster.resources.agents import TFAgentsResource

    module, factory = APPLICATIONS[name].split(":")
    build: Callable[..., Application] = getattr(importlib.import_module(module), factory)
    agent = TFAgentsResource(**{**preset.agent, "seed": seed})
    app = build(agent=agent, warehouse=warehouse)
    return dataclasses.replace(app, trajectory=preset.trajectory_settings())


def ou_random_policy(space: Any, seed: int, theta: float = 0.15, sigma: float = 0.6) -> BatchPolicy:
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


@dataclass(frozen=True)
class Day:
    """One simulated day: what was logged, how it trained, and its checkpoint's greedy return."""

    day: str
    timesteps: int
    played_by: str
    logged_episodes_ended: int
    train_steps: int
    loss_mean: float
    eval_return_mean: float | None
    eval_return_std: float | None
    eval_metadata_type: str | None
    seconds: float


def play_days(
    app: Application,
    defs: Any,
    instance: Any,
    preset: GymPreset,
    seed: int,
    first_day: str,
    log_level: str = "WARNING",
) -> Iterator[Day]:
    """Writes and trains `preset.days` days from `first_day`, yielding each as it is done.

    The seeds (product `seed * 100,000`, day 1's policy `seed`, day k's `seed * 1,000 + k`) are the
    benchmark's, so a run is reproducible from its seed.
    """
    import tensorflow as tf

    from rl_bakery_dagster.checkpoint_format import COLLECT_POLICY
    from rl_bakery_dagster.examples.gym_simulator import (
        BatchedGym,
        deployed_policy,
        random_policy,
        tf_policy,
        write_day,
    )
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.storage import StorageRoot

    job = defs.resolve_job_def(DAILY_JOB)
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)
    checkpoints = [app.name, "agent_checkpoint"]
    product = BatchedGym(preset.env, preset.envs, seed=seed * 100_000)
    columns = tuple(app.schema.observation_columns)
    for offset in range(preset.days):
        day = shift_day(first_day, offset)
        started = time.perf_counter()
        policy: BatchPolicy
        if offset > 0:
            saved = storage.read_uri(checkpoints, shift_day(day, -1))
            if app.action_space.is_discrete:
                policy = deployed_policy(saved, app.action_space.num_actions, seed * 1_000 + offset)
            else:
                policy = tf_policy(tf.saved_model.load(f"{saved}/{COLLECT_POLICY}"))
            played_by = "collect"
        elif preset.first_day_policy == "ou":
            policy, played_by = ou_random_policy(product.action_space, seed), "random (OU)"
        else:
            policy, played_by = random_policy(product.action_space, seed), "random (uniform)"
        logs = product.log(policy, preset.steps_per_env, columns)
        write_day(logs, app.warehouse.uri, day)  # type: ignore[attr-defined]
        result = job.execute_in_process(
            partition_key=day,
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            raise_on_error=True,
        )
        metadata = next(
            event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.materialization.asset_key.path == checkpoints
        )
        evaluated = "eval_return_mean" in metadata
        yield Day(
            day=day,
            timesteps=len(logs),
            played_by=played_by,
            logged_episodes_ended=int((logs["step_type"] == 2).sum()),
            train_steps=int(metadata["train_steps"].value),
            loss_mean=float(metadata["loss_mean"].value),
            eval_return_mean=metadata["eval_return_mean"].value if evaluated else None,
            eval_return_std=metadata["eval_return_std"].value if evaluated else None,
            eval_metadata_type=type(metadata["eval_return_mean"]).__name__ if evaluated else None,
            seconds=round(time.perf_counter() - started, 1),
        )


def final_evaluation(
    app: Application, defs: Any, preset: GymPreset, seed: int, last_day: str, episodes: int
) -> Any:
    """The last checkpoint's greedy policy, loaded back from storage, over `episodes` fresh episodes."""
    import tensorflow as tf

    from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY
    from rl_bakery_dagster.examples.gym_simulator import evaluate, tf_policy
    from rl_bakery_dagster.resources.storage import StorageRoot

    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)
    last = storage.read_uri([app.name, "agent_checkpoint"], last_day)
    greedy = tf_policy(tf.saved_model.load(f"{last}/{GREEDY_POLICY}"))
    return evaluate(greedy, preset.env, episodes, seed=FINAL_EVAL_SEED + 1_000 * seed)


def main(name: str, argv: list[str] | None = None) -> None:
    """`python -m rl_bakery_dagster.examples.<name>`: the preset's days in the local Dagster instance."""
    import os

    preset = PRESETS[name]
    parser = argparse.ArgumentParser(
        description=f"Simulate {preset.env} days and train on each through the Dagster graph "
        f"(the `{name}` preset of benchmarks/LEARNING.md)."
    )
    parser.add_argument("--days", type=int, default=preset.days)
    parser.add_argument("--envs", type=int, default=preset.envs, help="simultaneous players")
    parser.add_argument("--steps-per-env", type=int, default=preset.steps_per_env)
    parser.add_argument("--train-steps", type=int, default=preset.agent["train_steps_per_day"])
    parser.add_argument("--seed", type=int, default=0, help="the benchmark's seed: same logs, same agent")
    parser.add_argument("--eval-episodes", type=int, default=100, help="final greedy evaluation")
    args = parser.parse_args(argv)
    preset = dataclasses.replace(
        preset.with_agent(train_steps_per_day=args.train_steps),
        days=args.days,
        envs=args.envs,
        steps_per_env=args.steps_per_env,
    )

    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    from rl_bakery_dagster.definitions import bakery_home, build_definitions
    from rl_bakery_dagster.local_instance import local_instance

    instance = local_instance(bakery_home())
    quiet_example_logs()

    app = example_application(name, preset, args.seed, warehouse=None)
    if app.warehouse.complete_days():  # type: ignore[attr-defined]
        sys.exit(
            f"{app.warehouse.uri} already holds days: the example writes its own from "  # type: ignore[attr-defined]
            f"{app.start_date}. Use a fresh RL_BAKERY_HOME."
        )
    defs = build_definitions(app)
    print(f"home: {bakery_home()}  ({preset.env}, {preset.timesteps} timesteps over {preset.days} days)")
    last = app.start_date
    for day in play_days(app, defs, instance, preset, args.seed, app.start_date, log_level="INFO"):
        last = day.day
        print(
            f"{day.day}: {day.timesteps} timesteps played by {day.played_by}; trained "
            f"{day.train_steps} steps in {day.seconds:.0f}s; greedy policy return "
            f"{day.eval_return_mean:.1f} ± {day.eval_return_std:.1f}",
            flush=True,
        )
    final = final_evaluation(app, defs, preset, args.seed, last, args.eval_episodes)
    print(
        f"final greedy policy ({last}): {final.mean_return:.2f} ± {final.std_return:.2f} over "
        f"{final.episodes} episodes"
    )

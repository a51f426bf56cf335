"""Simulated product days through a gym example's daily job, then the final greedy evaluation.

One loop shared by the examples' command lines (`python -m rl_bakery_dagster.examples.<name>`)
and `benchmarks/learning.py`, so an example prints, day by day, exactly what the benchmark
recorded for the same preset and seed. Day 1's logs are played by a random policy; every later
day by the policy the previous day's `agent_checkpoint` exported (epsilon-greedy with logged
propensities for discrete actions, the collect policy for continuous ones), as a deployed
product would. An application with the RL deployment gate (`lag_days >= 1`) plays instead what
`policy_evaluation` deployed the day before: the last accepted checkpoint, epsilon-greedy with the
epsilon the gate chose (uniformly random until one is accepted). After the last day its greedy
policy plays `eval_episodes` episodes on gym seeds no day logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
    "cartpole_gated": "rl_bakery_dagster.examples.cartpole_gated.application:cartpole_gated_application",
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
class GatedPlay:
    """What a product behind the RL gate plays on a day: the deployed checkpoint to every player but a
    canary's, which play the canary's checkpoint; `version` and `canary_version` name them in the logs."""

    policy: BatchPolicy
    in_canary: np.ndarray
    version: str
    canary_version: str | None

    def name_rows(self, logs: pd.DataFrame, column: str = "policy_version") -> None:
        """Adds `column`: the version of the policy that played each row (by its `user_id`)."""
        tried = self.canary_version or self.version
        logs[column] = np.where(self.in_canary[logs["user_id"].to_numpy()], tried, self.version)


def gated_play(
    app: Application,
    deployed: tuple[str | None, str | None, float | None],
    canary: dict[str, Any] | None,
    num_envs: int,
    seed: int,
) -> GatedPlay:
    """The day's play after `policy_evaluation` deployed (day, uri, at least epsilon) of a checkpoint
    (uniformly random without one) and perhaps started `canary` (its record in `evaluation.json`):
    epsilon-greedy with exact propensities; seeds: `seed` for the deployed policy, `seed + 500` for
    the canary's players, `seed + 700` for the canary's policy."""
    from rl_bakery_dagster.assets.evaluation import deployment_record, policy_version
    from rl_bakery_dagster.examples.gym_simulator import canary_envs, deployed_policy, split_policy

    deployed_day, uri, epsilon = deployed
    actions = app.action_space.num_actions
    policy = deployed_policy(uri, actions, seed, epsilon)
    version = f"{app.name}@uniform_random"
    if deployed_day is not None and uri is not None:
        version = policy_version(
            app.name, deployed_day, deployment_record(app, uri, deployed_day).total_train_steps
        )
    if canary is None:
        return GatedPlay(policy, np.zeros(num_envs, dtype=bool), version, None)
    in_canary = canary_envs(num_envs, canary["share"], seed + 500)
    tried = deployed_policy(canary["checkpoint_uri"], actions, seed + 700)
    return GatedPlay(split_policy(policy, tried, in_canary), in_canary, version, canary["policy_version"])


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
    gate: str | None = None
    """With the RL deployment gate: the outcome for this day's candidate."""
    deployed: str | None = None
    """With the RL deployment gate: the checkpoint (its day) deployed after this day, None before any."""
    canary: str | None = None
    """With the RL deployment gate: the candidate (its day) played to a canary of users the next day."""
    canary_verdict: str | None = None
    """With the RL deployment gate: the verdict on the canary that played this day, e.g. 'refused'."""


def play_days(
    app: Application,
    defs: Any,
    instance: Any,
    preset: GymPreset,
    seed: int,
    first_day: str,
    log_level: str = "WARNING",
    evaluation_config: dict[str, Any] | None = None,
) -> Iterator[Day]:
    """Writes and trains `preset.days` days from `first_day`, yielding each as it is done.

    The seeds (product `seed * 100,000`, day 1's policy `seed`, day k's `seed * 1,000 + k`) are the
    benchmark's, so a run is reproducible from its seed. `evaluation_config`: the
    `policy_evaluation` op's config, for an application with the RL deployment gate.
    """
    import tensorflow as tf

    from rl_bakery_dagster.assets.evaluation import (
        EVALUATION_RECORD,
        deployed_checkpoint,
        deployed_exploration,
    )
    from rl_bakery_dagster.assets.rl_evaluation import has_sequential_evaluation
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
    from rl_bakery_dagster.resources.io_managers import read_json
    from rl_bakery_dagster.resources.storage import StorageRoot

    job = defs.resolve_job_def(DAILY_JOB)
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)
    checkpoints = [app.name, "agent_checkpoint"]
    product = BatchedGym(preset.env, preset.envs, seed=seed * 100_000)
    columns = tuple(app.schema.observation_columns)
    gated = has_sequential_evaluation(app)
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if gated and evaluation_config:
        run_config["ops"] = {f"{app.name}__policy_evaluation": {"config": evaluation_config}}
    deployed: tuple[str | None, str | None, float | None] = (None, None, None)  # day, uri, epsilon
    canary: dict[str, Any] | None = None
    for offset in range(preset.days):
        day = shift_day(first_day, offset)
        started = time.perf_counter()
        policy: BatchPolicy
        play: GatedPlay | None = None
        if offset > 0 and gated:
            play = gated_play(app, deployed, canary, preset.envs, seed * 1_000 + offset)
            policy = play.policy
            played_by = (
                f"agent_checkpoint[{deployed[0]}] (deployed by the gate)"
                if deployed[0] is not None
                else "random (uniform): the gate has accepted no checkpoint yet"
            )
            if canary is not None:
                played_by += (
                    f"; {play.in_canary.sum()} players: agent_checkpoint[{canary['checkpoint']}] (canary)"
                )
        elif offset > 0:
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
        if app.schema.policy_version_column and play is not None:
            play.name_rows(logs, app.schema.policy_version_column)
        elif app.schema.policy_version_column:
            played = "uniform_random" if offset == 0 else f"{shift_day(day, -1)}#collect"
            logs[app.schema.policy_version_column] = f"{app.name}@{played}"
        write_day(logs, app.warehouse.uri, day)  # type: ignore[attr-defined]
        result = job.execute_in_process(
            partition_key=day, instance=instance, run_config=run_config, raise_on_error=True
        )
        gate = verdict = None
        if gated:
            evaluation = storage.read_uri([app.name, "policy_evaluation"], day)
            deployed = (*deployed_checkpoint(evaluation), deployed_exploration(evaluation))
            record = read_json(f"{evaluation}/{EVALUATION_RECORD}")
            gate, canary = record["outcome"], record.get("canary")
            verdict = (record.get("canary_judged") or {}).get("outcome")
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
            gate=gate,
            deployed=deployed[0],
            canary=canary["checkpoint"] if canary else None,
            canary_verdict=verdict,
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


def parse_command_line(name: str, argv: list[str] | None) -> tuple[GymPreset, argparse.Namespace]:
    """The example's preset with the command line's sizes applied, and the parsed arguments."""
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
    parser.add_argument(
        "--evaluation",
        type=json.loads,
        default=None,
        help='with the RL deployment gate: policy_evaluation config as JSON, e.g. \'{"estimator": "wdr"}\'',
    )
    args = parser.parse_args(argv)
    preset = dataclasses.replace(
        preset.with_agent(train_steps_per_day=args.train_steps),
        days=args.days,
        envs=args.envs,
        steps_per_env=args.steps_per_env,
    )
    return preset, args


def main(name: str, argv: list[str] | None = None) -> None:
    """`python -m rl_bakery_dagster.examples.<name>`: the preset's days in the local Dagster instance."""
    import os

    preset, args = parse_command_line(name, argv)

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
    last: Day | None = None
    config = args.evaluation
    days = play_days(app, defs, instance, preset, args.seed, app.start_date, "INFO", evaluation_config=config)
    for day in days:
        last = day
        gate = ""
        if day.gate is not None:
            chosen = f"agent_checkpoint[{day.deployed}]" if day.deployed else "nothing yet (random play)"
            gate = f"; gate: {day.gate.replace('_', ' ')}, deploying {chosen}"
            if day.canary_verdict is not None:
                gate = f"; canary verdict: {day.canary_verdict.replace('_', ' ')}{gate}"
            if day.canary is not None:
                gate += f", and agent_checkpoint[{day.canary}] to a canary"
        print(
            f"{day.day}: {day.timesteps} timesteps played by {day.played_by}; trained "
            f"{day.train_steps} steps in {day.seconds:.0f}s; greedy policy return "
            f"{day.eval_return_mean:.1f} ± {day.eval_return_std:.1f}{gate}",
            flush=True,
        )
    assert last is not None
    final = final_evaluation(app, defs, preset, args.seed, last.day, args.eval_episodes)
    print(
        f"final greedy policy ({last.day}): {final.mean_return:.2f} ± {final.std_return:.2f} over "
        f"{final.episodes} episodes"
    )
    if last.gate is not None and last.deployed is not None and last.deployed != last.day:
        played = final_evaluation(app, defs, preset, args.seed, last.deployed, args.eval_episodes)
        print(
            f"deployed greedy policy (agent_checkpoint[{last.deployed}], the last the gate accepted): "
            f"{played.mean_return:.2f} ± {played.std_return:.2f} over {played.episodes} episodes"
        )

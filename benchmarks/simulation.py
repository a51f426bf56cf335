"""Simulation: CartPole environment steps/s of our simulator against TF-Agents' DynamicStepDriver on one env.

- `ours`: `BatchedGym.log` — many CartPoles stepped as arrays, one batched policy call per step,
  every timestep logged into the warehouse DataFrame — with the collect policy of the CartPole
  application's DQN agent exported by `PolicySaver` and loaded back (`tf_policy`), exactly as the
  demo plays "yesterday's collect policy", and with a random policy.
- `per_env_gym`: the same `BatchedGym`, forced onto its one-gym-env-at-a-time path (the previous
  simulator's stepping); its logs must equal the array path's bit for bit (`logs_identical`).
- `tf_agents_driver`: `DynamicStepDriver` over one `TFPyEnvironment(suite_gym.load("CartPole-v0"))`
  with the same agent's collect policy and a `TFUniformReplayBuffer` observer (the TF-Agents DQN
  tutorial's collection), `num_steps` per `run()` call, eager and wrapped in `common.function`
  (a `tf.while_loop`); the faster one is the baseline.

Usage: `uv run python benchmarks/simulation.py [--envs 256,1024,4096] [--env-steps 400000]`
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from typing import Any

import pandas as pd
from bench_common import emit, quiet_tensorflow, ratio

ENV_NAME = "CartPole-v0"
TARGET_STEPS_PER_SECOND = 50_000
HEADLINE_ENVS = 1024


def collect_policy(folder: str) -> tuple[Any, Any]:
    """The CartPole application's DQN agent and its collect policy, through a PolicySaver round trip."""
    import tensorflow as tf
    from tf_agents.policies import policy_saver

    from rl_bakery_dagster.examples.cartpole.application import cartpole_application

    app = cartpole_application(warehouse="/nonexistent")
    agent = app.agent.build(app.schema.observation_spec(), app.action_space.tensor_spec(), 1)
    policy_saver.PolicySaver(agent.collect_policy, batch_size=None).save(folder)
    return agent, tf.saved_model.load(folder)


def simulator_rate(envs: int, steps: int, policy_factory: Any, per_env: bool, repeats: int) -> dict[str, Any]:
    """Median env steps/s of `BatchedGym.log` (stepping + policy + logging) over `repeats` fresh runs."""
    from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym

    rates = []
    for repeat in range(repeats):
        product = BatchedGym(ENV_NAME, envs, seed=repeat)
        if per_env:
            product._cartpole = None  # the previous stepping: one gym env at a time
        policy = policy_factory(product)
        product.log(policy, 3, OBSERVATION_COLUMNS)  # traces the policy
        started = time.perf_counter()
        logs = product.log(policy, steps, OBSERVATION_COLUMNS)
        rates.append(len(logs) / (time.perf_counter() - started))
    return {
        "envs": envs,
        "steps_per_env": steps,
        "env_steps_per_second": round(statistics.median(rates)),
        "runs": [round(r) for r in rates],
    }


def logs_identical(envs: int, steps: int, policy_factory: Any) -> bool:
    """The array path and the per-env gym path log the same rows, bit for bit."""
    from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym

    logs = []
    for per_env in (False, True):
        product = BatchedGym(ENV_NAME, envs, seed=3)
        if per_env:
            product._cartpole = None
        logs.append(product.log(policy_factory(product), steps, OBSERVATION_COLUMNS))
    try:
        pd.testing.assert_frame_equal(logs[0], logs[1], check_exact=True)
    except AssertionError:
        return False
    return True


def driver_rate(agent: Any, steps: int, graph: bool, repeats: int) -> dict[str, Any]:
    """Median env steps/s of TF-Agents' DynamicStepDriver on one CartPole into a replay buffer."""
    from tf_agents.drivers import dynamic_step_driver
    from tf_agents.environments import suite_gym, tf_py_environment
    from tf_agents.replay_buffers import tf_uniform_replay_buffer
    from tf_agents.utils import common

    rates = []
    for repeat in range(repeats):
        py_env = suite_gym.load(ENV_NAME)
        py_env.seed(repeat)
        env = tf_py_environment.TFPyEnvironment(py_env)
        buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
            agent.collect_data_spec, batch_size=1, max_length=steps + 100
        )
        driver = dynamic_step_driver.DynamicStepDriver(
            env, agent.collect_policy, observers=[buffer.add_batch], num_steps=steps
        )
        run = common.function(driver.run) if graph else driver.run
        time_step, policy_state = run()  # traces (graph) and warms up
        started = time.perf_counter()
        run(time_step, policy_state)
        rates.append(steps / (time.perf_counter() - started))
    return {
        "envs": 1,
        "mode": "common.function" if graph else "eager",
        "env_steps": steps,
        "env_steps_per_second": round(statistics.median(rates), 1),
        "runs": [round(r, 1) for r in rates],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="256,1024,4096", help="simulator batch sizes, comma-separated")
    parser.add_argument("--env-steps", type=int, default=400_000, help="env steps per simulator run")
    parser.add_argument("--driver-steps", type=int, default=1000, help="env steps per driver run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    quiet_tensorflow()
    policy_folder = tempfile.mkdtemp(prefix="bench_policy_")
    try:
        run(args, policy_folder)
    finally:
        shutil.rmtree(policy_folder, ignore_errors=True)


def run(args: argparse.Namespace, policy_folder: str) -> None:
    """All measurements, with the exported policy under `policy_folder`."""
    from rl_bakery_dagster.examples.gym_simulator import random_policy, tf_policy

    agent, saved_collect_policy = collect_policy(policy_folder)

    def trained_policy(product: Any) -> Any:
        return tf_policy(saved_collect_policy)

    def uniform(product: Any) -> Any:
        return random_policy(product.action_space, 0)

    sizes = [int(n) for n in args.envs.split(",")]
    ours = {
        "tf_collect_policy": [
            simulator_rate(n, max(1, args.env_steps // n), trained_policy, False, args.repeats) for n in sizes
        ],
        "random_policy": [
            simulator_rate(n, max(1, args.env_steps // n), uniform, False, args.repeats) for n in sizes
        ],
    }
    headline = HEADLINE_ENVS if HEADLINE_ENVS in sizes else sizes[-1]
    per_env_steps = max(1, args.env_steps // 10 // headline)
    per_env = {
        "tf_collect_policy": simulator_rate(headline, per_env_steps, trained_policy, True, args.repeats),
        "random_policy": simulator_rate(headline, per_env_steps, uniform, True, args.repeats),
    }
    identical = logs_identical(64, 600, trained_policy) and logs_identical(64, 600, uniform)
    drivers = [driver_rate(agent, args.driver_steps, graph, args.repeats) for graph in (False, True)]
    baseline = max(drivers, key=lambda d: d["env_steps_per_second"])
    ours_headline = next(r for r in ours["tf_collect_policy"] if r["envs"] == headline)
    emit(
        {
            "benchmark": "simulation",
            "env": ENV_NAME,
            "headline_envs": headline,
            "env_steps_per_second": {
                "ours_tf_collect_policy": ours_headline["env_steps_per_second"],
                "ours_random_policy": next(r for r in ours["random_policy"] if r["envs"] == headline)[
                    "env_steps_per_second"
                ],
                "per_env_gym_tf_collect_policy": per_env["tf_collect_policy"]["env_steps_per_second"],
                "tf_agents_driver_best": baseline["env_steps_per_second"],
            },
            "ours": ours,
            "per_env_gym": per_env,
            "tf_agents_driver": drivers,
            "logs_identical_to_per_env_gym": identical,
            "ratios": {
                "ours_over_tf_agents_driver": ratio(
                    ours_headline["env_steps_per_second"], baseline["env_steps_per_second"], 1
                ),
                "ours_over_per_env_gym": ratio(
                    ours_headline["env_steps_per_second"],
                    per_env["tf_collect_policy"]["env_steps_per_second"],
                    1,
                ),
            },
            "targets_met": {
                "at_least_50000_steps_per_second": ours_headline["env_steps_per_second"]
                >= TARGET_STEPS_PER_SECOND
            },
        }
    )


if __name__ == "__main__":
    main()

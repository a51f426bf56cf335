"""Online DQN with the same agent and data budget: what the daily batch design costs, measured.

The RL Zoo's 500 on CartPole-v1 after 50,000 steps is one online run of SB3's DQN. To tell how
much of `cartpole_v1`'s gap to 475 is the daily batch design (the agent sees its logs once a day,
through the warehouse) and how much is DQN on CartPole-v1 itself, this script trains the *same*
TF-Agents agent (`TFAgentsResource(**preset.agent)`, built by the product's `build_agent`) online,
in TF-Agents' own loop (`DynamicStepDriver` into a `TFUniformReplayBuffer`), with the Zoo's
cadence: `--learning-starts` uniformly random steps, then every `--train-freq` environment steps,
`--gradient-steps` train steps on uniform batches of everything seen so far (SB3's DQN:
`train_freq` 256, `gradient_steps` 128, `learning_starts` 1,000, a 100,000-step buffer). Nothing
here is an RL algorithm of ours: the agent, driver and buffer are TF-Agents'.

The final greedy policy is scored exactly as `benchmarks/learning.py` scores the daily run's last
checkpoint (same episodes, same seeds: `FINAL_EVAL_SEED + 1,000 * seed`), so a seed's online and
daily finals are a paired comparison. Run fractions of the preset (a learning rate decaying over
the run) stay resolved for the preset's daily run: with a different `--timesteps` or cadence,
pass the decay steps in `--agent`.

Usage:
  uv run python benchmarks/online_dqn.py --preset cartpole_v1 --seed 10 --runs 1
  uv run python benchmarks/online_dqn.py --preset cartpole_v1 --agent '{"fc_layer_params": [256, 256]}'
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench_common import emit, quiet_tensorflow

from rl_bakery_dagster.examples.gym_days import FINAL_EVAL_SEED
from rl_bakery_dagster.examples.presets import PRESETS


def run_once(
    preset_name: str, agent_fields: dict[str, Any], args: argparse.Namespace, seed: int
) -> dict[str, Any]:
    import numpy as np
    import tensorflow as tf
    from tf_agents.drivers import dynamic_step_driver
    from tf_agents.environments import batched_py_environment, suite_gym, tf_py_environment
    from tf_agents.policies import random_tf_policy
    from tf_agents.replay_buffers import tf_uniform_replay_buffer

    from rl_bakery_dagster.examples.gym_simulator import evaluate, tf_policy
    from rl_bakery_dagster.resources.agents import TFAgentsResource

    preset = PRESETS[preset_name].with_agent(**agent_fields)
    budget = args.timesteps or preset.timesteps
    settings = TFAgentsResource(**{**preset.agent, "seed": seed})
    players = []
    for index in range(args.envs):
        player = suite_gym.load(preset.env)
        player.gym.reset(seed=seed * 100_000 + index)
        player.gym.action_space.seed(seed * 100_000 + index)
        players.append(player)
    env = tf_py_environment.TFPyEnvironment(batched_py_environment.BatchedPyEnvironment(players))
    agent = settings.build(env.observation_spec(), env.action_spec(), n_step=1)
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=args.envs, max_length=-(-args.buffer // args.envs)
    )
    random_policy = random_tf_policy.RandomTFPolicy(env.time_step_spec(), env.action_spec())
    warmup = dynamic_step_driver.DynamicStepDriver(
        env, random_policy, observers=[buffer.add_batch], num_steps=args.learning_starts
    )
    rollout = dynamic_step_driver.DynamicStepDriver(
        env, agent.collect_policy, observers=[buffer.add_batch], num_steps=args.train_freq
    )
    warmup.run = tf.function(warmup.run)
    rollout.run = tf.function(rollout.run)
    batches = iter(
        buffer.as_dataset(
            sample_batch_size=settings.batch_size, num_steps=2, single_deterministic_pass=False
        ).prefetch(4)
    )
    train = tf.function(agent.train)
    started = time.perf_counter()
    time_step, _ = warmup.run()
    steps, losses = args.learning_starts, []
    while steps + args.train_freq <= budget:
        time_step, _ = rollout.run(time_step)
        steps += args.train_freq
        for _ in range(args.gradient_steps):
            experience, _ = next(batches)
            losses.append(float(train(experience).loss))
    if not np.isfinite(losses).all():
        raise RuntimeError(f"seed {seed}: a non-finite loss")
    greedy = tf_policy(agent.policy)
    final = evaluate(greedy, preset.env, args.eval_episodes, seed=FINAL_EVAL_SEED + 1_000 * seed)
    return {
        "seed": seed,
        "final_return_mean": round(final.mean_return, 2),
        "final_return_std": round(final.std_return, 2),
        "environment_steps": steps,  # transitions, as SB3 counts steps (the driver skips reset frames)
        "frames": int(buffer.num_frames()),  # the same plus one reset frame per episode, as logs hold
        "train_steps": int(agent.train_step_counter.numpy()),
        "loss_last_1000_mean": round(float(np.mean(losses[-1000:])), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="cartpole_v1", choices=sorted(PRESETS))
    parser.add_argument("--agent", type=json.loads, default={}, help="agent fields to replace, as JSON")
    parser.add_argument("--timesteps", type=int, default=0, help="environment steps (default: the preset's)")
    parser.add_argument("--learning-starts", type=int, default=1_000)
    parser.add_argument("--train-freq", type=int, default=256)
    parser.add_argument("--gradient-steps", type=int, default=128)
    parser.add_argument("--buffer", type=int, default=100_000)
    parser.add_argument("--envs", type=int, default=1, help="players stepped together (SB3's DQN: 1)")
    parser.add_argument("--eval-episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--runs", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    quiet_tensorflow()
    runs = []
    for seed in range(args.seed, args.seed + args.runs):
        runs.append(run_once(args.preset, args.agent, args, seed))
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finals = [run["final_return_mean"] for run in runs]
    result = {
        "benchmark": "online_dqn",
        "preset": args.preset,
        "agent_overrides": args.agent,
        "cadence": {
            "learning_starts": args.learning_starts,
            "train_freq": args.train_freq,
            "gradient_steps": args.gradient_steps,
            "buffer": args.buffer,
            "envs": args.envs,
        },
        "mean_reward": round(statistics.fmean(finals), 2),
        "std_reward": round(statistics.pstdev(finals), 2),
        "per_run": runs,
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()

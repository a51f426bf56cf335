"""A simulated product: many gym environments stepped together, logging timesteps as a warehouse would.

Environments follow TF-Agents' auto-reset semantics (the step after LAST is a FIRST, whatever the
action), so the logged rows are exactly the time steps a TF-Agents driver would see. Policies are
queried once per step for the whole batch.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import gym
import numpy as np
import pandas as pd

from rl_bakery_dagster.application import FIRST, LAST, MID, EvaluationResult

BatchPolicy = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""(step_type [B], reward [B], discount [B], observation [B, obs]) → actions [B] or [B, action]."""


@dataclass
class BatchedGym:
    """`num_envs` gym environments stepped as one batch."""

    env_name: str
    num_envs: int
    seed: int

    def __post_init__(self) -> None:
        self.envs = [gym.make(self.env_name) for _ in range(self.num_envs)]
        observations = []
        for index, env in enumerate(self.envs):
            observations.append(env.reset(seed=self.seed + index))
            env.action_space.seed(self.seed + index)
        self.observation = np.asarray(observations, dtype=np.float32)
        self.step_type = np.full(self.num_envs, FIRST, dtype=np.int32)
        self.reward = np.zeros(self.num_envs, dtype=np.float32)
        self.discount = np.ones(self.num_envs, dtype=np.float32)
        self.timestep = np.zeros(self.num_envs, dtype=np.int64)

    def step(self, actions: np.ndarray) -> None:
        for index, env in enumerate(self.envs):
            if self.step_type[index] == LAST:
                observation, reward, step_type, discount = env.reset(), 0.0, FIRST, 1.0
            else:
                observation, reward, done, info = env.step(
                    int(actions[index]) if actions.ndim == 1 else actions[index]
                )
                step_type = LAST if done else MID
                discount = 1.0 if not done or info.get("TimeLimit.truncated", False) else 0.0
            self.observation[index] = observation
            self.reward[index], self.step_type[index], self.discount[index] = (
                reward,
                step_type,
                discount,
            )
        self.timestep += 1

    @property
    def action_space(self) -> gym.Space:
        return self.envs[0].action_space

    def log(self, policy: BatchPolicy, steps: int, observation_columns: tuple[str, ...]) -> pd.DataFrame:
        """Plays `steps` steps in every environment and returns the logged timesteps."""
        discrete = isinstance(self.action_space, gym.spaces.Discrete)
        frames = []
        for _ in range(steps):
            actions = np.asarray(policy(self.step_type, self.reward, self.discount, self.observation))
            frame = pd.DataFrame(self.observation.astype(np.float64), columns=list(observation_columns))
            frame.insert(0, "step_type", self.step_type.copy())
            frame.insert(0, "ts", self.timestep.copy())
            frame.insert(0, "user_id", np.arange(self.num_envs, dtype=np.int64))
            frame["action"] = actions.astype(np.int64) if discrete else list(actions.astype(np.float32))
            frame["reward"] = self.reward.astype(np.float64)
            frame["discount"] = self.discount.astype(np.float64)
            frames.append(frame)
            self.step(actions)
        return pd.concat(frames, ignore_index=True)


def random_policy(space: gym.Space, seed: int) -> BatchPolicy:
    """Uniform actions over a gym `Discrete` or `Box` space."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        return lambda step_type, reward, discount, observation: rng.integers(0, space.n, len(step_type))
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return lambda step_type, reward, discount, observation: rng.uniform(
        low, high, (len(step_type), *low.shape)
    ).astype(np.float32)


def tf_policy(policy: object) -> BatchPolicy:
    """Batched actions from a TF-Agents policy or a `PolicySaver` SavedModel loaded back."""
    import tensorflow as tf
    from tf_agents.trajectories import time_step as ts

    @tf.function
    def act(
        step_type: tf.Tensor, reward: tf.Tensor, discount: tf.Tensor, observation: tf.Tensor
    ) -> tf.Tensor:
        time_step = ts.TimeStep(step_type, reward, discount, observation)
        return policy.action(time_step, ()).action  # type: ignore[attr-defined]

    def run(
        step_type: np.ndarray, reward: np.ndarray, discount: np.ndarray, observation: np.ndarray
    ) -> np.ndarray:
        return act(
            tf.constant(step_type, tf.int32),
            tf.constant(reward, tf.float32),
            tf.constant(discount, tf.float32),
            tf.constant(observation, tf.float32),
        ).numpy()

    return run


def evaluate(policy: BatchPolicy, env_name: str, episodes: int, seed: int) -> EvaluationResult:
    """Plays one episode in each of `episodes` environments and reports the returns."""
    batch = BatchedGym(env_name, episodes, seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        batch.step(np.asarray(policy(batch.step_type, batch.reward, batch.discount, batch.observation)))
        returns += np.where(running, batch.reward, 0.0)
        running &= batch.step_type != LAST
    return EvaluationResult(float(returns.mean()), float(returns.std()), episodes)


def write_day(frame: pd.DataFrame, warehouse_uri: str, day: str) -> str:
    """Writes a day of logs as the warehouse would: a Parquet folder, then its `_SUCCESS` marker."""
    final = os.path.join(warehouse_uri, f"dt={day}")
    staging = os.path.join(warehouse_uri, f"_staging-{uuid.uuid4().hex}")
    os.makedirs(staging)
    frame.to_parquet(os.path.join(staging, "part-00000.parquet"), index=False)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
    open(os.path.join(final, "_SUCCESS"), "w").close()
    return final

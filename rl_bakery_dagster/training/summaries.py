"""TensorBoard summaries of a training day, written into the day's checkpoint folder.

The x axis is the agent's checkpointed train step, the one clock that survives from day to day,
so the event files of a whole chain of checkpoints continue each other: point TensorBoard at the
`agent_checkpoint` folder and every day's curve starts where the previous day's ended.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
from tf_agents.agents.tf_agent import TFAgent

from rl_bakery_dagster.training.schedules import agent_learning_rates

SUMMARIES = "tensorboard"
"""The subfolder of a checkpoint folder that holds the day's TF event file."""

POINTS_PER_DAY = 100
"""How many train steps of a day record the value estimate, learning rates and epsilon."""


def _value_estimate(agent: TFAgent, experience: object) -> tuple[str, float] | None:
    """(tag, mean over the batch) of the agent's own value of its best action, if it has one."""
    observation = experience.observation[:, 0]  # type: ignore[attr-defined]
    q_network = getattr(agent, "_q_network", None)
    if q_network is not None:  # DQN, DDQN: max over actions of Q(s, a)
        values, _ = q_network(observation, training=False)
        return "value/mean_max_q", float(tf.reduce_mean(tf.reduce_max(values, axis=-1)))
    reward_network = getattr(agent, "_reward_network", None)
    if reward_network is not None:  # neural bandits: the best arm's predicted reward
        values, _ = reward_network(observation, training=False)
        return "value/mean_max_predicted_reward", float(tf.reduce_mean(tf.reduce_max(values, axis=-1)))
    critic, actor = getattr(agent, "_critic_network", None), getattr(agent, "_actor_network", None)
    if critic is not None and actor is not None:  # DDPG: Q(s, actor(s))
        actions, _ = actor(observation, training=False)
        values, _ = critic((observation, actions), training=False)
        return "value/mean_q_of_actor", float(tf.reduce_mean(values))
    return None


class DaySummaries:
    """Collects a day's scalars while it trains and writes them as one TF event file."""

    def __init__(self, folder: str, epsilon_at: Callable[[int], float] | None, train_steps: int):
        self.folder = os.path.join(folder, SUMMARIES)
        self.epsilon_at = epsilon_at
        self.every = max(1, train_steps // POINTS_PER_DAY)
        self.points: list[tuple[str, int, float]] = []

    def record(self, agent: TFAgent, step_in_day: int, experience: object) -> None:
        """Called after each train step; samples `POINTS_PER_DAY` of them."""
        if (step_in_day + 1) % self.every:
            return
        step = int(agent.train_step_counter.numpy())
        estimate = _value_estimate(agent, experience)
        if estimate is not None:
            self.points.append((estimate[0], step, estimate[1]))
        for name, rate in agent_learning_rates(agent).items():
            self.points.append((f"learning_rate/{name}", step, rate))
        if self.epsilon_at is not None:
            self.points.append(("exploration/epsilon", step, self.epsilon_at(step)))

    def write(self, first_step: int, losses: Sequence[float] | np.ndarray) -> None:
        """Writes every step's loss (global step `first_step + i`) and the sampled points."""
        writer = tf.summary.create_file_writer(self.folder)
        with writer.as_default():
            for offset, loss in enumerate(losses):
                tf.summary.scalar("loss", float(loss), step=first_step + offset)
            for tag, step, value in self.points:
                tf.summary.scalar(tag, value, step=step)
        writer.flush()
        writer.close()

"""Learning-rate and exploration schedules, both driven by the agent's checkpointed train step.

A daily agent is rebuilt every day and restored from yesterday's checkpoint; its `train_step`
is the one clock that survives, so every schedule reads it (a backfill or a restarted day
continues where the previous day stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import tensorflow as tf

if TYPE_CHECKING:
    from rl_bakery_dagster.resources.agents import TFAgentsResource


class DecayOnTrainStep(tf.keras.optimizers.schedules.LearningRateSchedule):
    """A linear decay evaluated at the agent's checkpointed train step, not the optimiser's count.

    Keras calls a schedule with the optimiser's own iteration count; reading the agent's
    `train_step` instead keeps one clock for every optimiser of an agent (DDPG has two) and for
    the day's metadata, and a restored agent resumes its schedule where the previous day ended.
    """

    def __init__(self, initial: float, decay_steps: int, final: float, train_step: tf.Variable):
        self.decay = tf.keras.optimizers.schedules.PolynomialDecay(initial, decay_steps, final)
        self.train_step = train_step

    def __call__(self, step: object) -> tf.Tensor:
        return self.decay(self.train_step)

    def get_config(self) -> dict[str, object]:
        return self.decay.get_config()


def adam(
    settings: TFAgentsResource, learning_rate: float, train_step: tf.Variable
) -> tf.keras.optimizers.Optimizer:
    """Adam at a constant `learning_rate`, or decaying as `settings` asks."""
    if settings.learning_rate_decay_steps == 0:
        return tf.keras.optimizers.Adam(learning_rate=learning_rate)
    final = learning_rate * settings.learning_rate_final_fraction
    schedule = DecayOnTrainStep(learning_rate, settings.learning_rate_decay_steps, final, train_step)
    return tf.keras.optimizers.Adam(learning_rate=schedule)


def current_learning_rate(optimizer: tf.keras.optimizers.Optimizer) -> float:
    """The rate the optimiser's next update uses (Keras' `learning_rate` lags a schedule by a step)."""
    rate = optimizer._learning_rate  # Keras keeps the schedule object only here
    if isinstance(rate, tf.keras.optimizers.schedules.LearningRateSchedule):
        return float(rate(optimizer.iterations))
    return float(optimizer.learning_rate)


OPTIMIZER_ATTRIBUTES = {
    "learning_rate": "_optimizer",
    "actor_learning_rate": "_actor_optimizer",
    "critic_learning_rate": "_critic_optimizer",
}
"""Metadata name → where TF-Agents' DQN/DDQN/bandit (`_optimizer`) and DDPG agents keep an optimiser."""


def agent_learning_rates(agent: object) -> dict[str, float]:
    """The current learning rate of each of the agent's optimisers (none for LinUCB)."""
    rates = {}
    for name, attribute in OPTIMIZER_ATTRIBUTES.items():
        optimizer = getattr(agent, attribute, None)
        if isinstance(optimizer, tf.keras.optimizers.Optimizer):
            rates[name] = current_learning_rate(optimizer)
    return rates


def exploration(settings: TFAgentsResource, train_step: tf.Variable) -> float | Callable[[], tf.Tensor]:
    """The epsilon of the collect policy: constant, or `settings.epsilon_at` of the live train step.

    TF-Agents' epsilon-greedy policy accepts a callable; the exported collect policy captures the
    train step variable, so it explores at the rate of the day it was saved.
    """
    if settings.epsilon_decay_steps == 0:
        return settings.epsilon_greedy
    start, final = settings.epsilon_greedy, settings.epsilon_greedy_final
    steps = float(settings.epsilon_decay_steps)

    def epsilon() -> tf.Tensor:
        progress = tf.minimum(tf.cast(train_step, tf.float32), steps) / steps
        return start + (final - start) * progress

    return epsilon

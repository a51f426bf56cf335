"""Builds TF-Agents contextual-bandit agents from the agent resource's settings.

Every bandit policy emits its predicted mean reward per action (`predicted_rewards_mean`): the
exported policy then carries its own reward model, which off-policy evaluation uses for the
direct method and doubly robust estimates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf
from tf_agents.agents.tf_agent import TFAgent
from tf_agents.bandits.agents import lin_ucb_agent, neural_epsilon_greedy_agent
from tf_agents.bandits.policies import policy_utilities
from tf_agents.networks import q_network
from tf_agents.specs import BoundedTensorSpec
from tf_agents.trajectories import time_step as ts

from rl_bakery_dagster.training.schedules import adam, exploration

if TYPE_CHECKING:
    from rl_bakery_dagster.resources.agents import TFAgentsResource

EMITTED_INFO = (policy_utilities.InfoFields.PREDICTED_REWARDS_MEAN,)


def build_bandit_agent(
    settings: TFAgentsResource,
    time_step_spec: ts.TimeStep,
    action_spec: BoundedTensorSpec,
    train_step: tf.Variable,
) -> TFAgent:
    if action_spec.dtype.is_floating:
        raise ValueError(f"{settings.algorithm} needs a discrete action space")
    if settings.algorithm == "neural_epsilon_greedy":
        reward_network = q_network.QNetwork(
            time_step_spec.observation, action_spec, fc_layer_params=tuple(settings.fc_layer_params)
        )
        return neural_epsilon_greedy_agent.NeuralEpsilonGreedyAgent(
            time_step_spec,
            action_spec,
            reward_network=reward_network,
            optimizer=adam(settings, settings.learning_rate, train_step),
            epsilon=exploration(settings, train_step),
            emit_policy_info=EMITTED_INFO,
            gradient_clipping=settings.gradient_clipping,
            train_step_counter=train_step,
        )
    if settings.algorithm == "lin_ucb":
        return lin_ucb_agent.LinearUCBAgent(
            time_step_spec,
            action_spec,
            alpha=settings.ucb_alpha,
            add_bias=True,
            emit_policy_info=EMITTED_INFO,
            dtype=tf.float32,
        )  # keeps its own train step counter, which counts training rows rather than batches
    raise ValueError(f"unknown bandit algorithm {settings.algorithm!r}")

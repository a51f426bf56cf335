"""Builds TF-Agents agents from the agent resource's settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf
from tf_agents.agents.ddpg import actor_network, critic_network, ddpg_agent
from tf_agents.agents.dqn import dqn_agent
from tf_agents.agents.tf_agent import TFAgent
from tf_agents.networks import q_network
from tf_agents.specs import BoundedTensorSpec, TensorSpec
from tf_agents.trajectories import time_step as ts
from tf_agents.utils import common

from rl_bakery_dagster.training.bandit_agents import build_bandit_agent
from rl_bakery_dagster.training.schedules import adam, exploration

if TYPE_CHECKING:
    from rl_bakery_dagster.resources.agents import TFAgentsResource

TD_LOSSES = {"squared": common.element_wise_squared_loss, "huber": common.element_wise_huber_loss}
"""`TFAgentsResource.td_errors_loss` → the TF-Agents element-wise loss on TD errors."""


def build_agent(
    settings: TFAgentsResource,
    observation_spec: TensorSpec,
    action_spec: BoundedTensorSpec,
    n_step: int,
) -> TFAgent:
    """Returns an initialised agent; weights depend only on `settings.seed`."""
    tf.keras.utils.set_random_seed(settings.seed)
    time_step_spec = ts.time_step_spec(observation_spec)
    train_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="train_step")
    if settings.algorithm in ("dqn", "ddqn"):
        agent = _build_dqn(settings, time_step_spec, action_spec, n_step, train_step)
    elif settings.algorithm == "ddpg":
        agent = _build_ddpg(settings, time_step_spec, action_spec, n_step, train_step)
    elif settings.is_bandit:
        agent = build_bandit_agent(settings, time_step_spec, action_spec, train_step)
    else:
        raise ValueError(f"unknown algorithm {settings.algorithm!r}")
    agent.initialize()
    return agent


def _build_dqn(
    settings: TFAgentsResource,
    time_step_spec: ts.TimeStep,
    action_spec: BoundedTensorSpec,
    n_step: int,
    train_step: tf.Variable,
) -> TFAgent:
    if action_spec.dtype.is_floating:
        raise ValueError(f"{settings.algorithm} needs a discrete action space")
    q_net = q_network.QNetwork(
        time_step_spec.observation, action_spec, fc_layer_params=tuple(settings.fc_layer_params)
    )
    agent_class = dqn_agent.DdqnAgent if settings.algorithm == "ddqn" else dqn_agent.DqnAgent
    return agent_class(
        time_step_spec,
        action_spec,
        q_network=q_net,
        optimizer=adam(settings, settings.learning_rate, train_step),
        epsilon_greedy=exploration(settings, train_step),
        n_step_update=n_step,
        target_update_tau=settings.target_update_tau,
        target_update_period=settings.target_update_period,
        td_errors_loss_fn=TD_LOSSES[settings.td_errors_loss],
        gamma=settings.gamma,
        gradient_clipping=settings.gradient_clipping,
        train_step_counter=train_step,
    )


def _build_ddpg(
    settings: TFAgentsResource,
    time_step_spec: ts.TimeStep,
    action_spec: BoundedTensorSpec,
    n_step: int,
    train_step: tf.Variable,
) -> TFAgent:
    if not action_spec.dtype.is_floating:
        raise ValueError("ddpg needs a continuous action space")
    if n_step != 1:
        raise ValueError("ddpg trains on one-step transitions: set TrajectorySettings(n_step=1)")
    actor = actor_network.ActorNetwork(
        time_step_spec.observation,
        action_spec,
        fc_layer_params=tuple(settings.actor_fc_layer_params),
    )
    critic = critic_network.CriticNetwork(
        (time_step_spec.observation, action_spec),
        observation_fc_layer_params=tuple(settings.critic_observation_fc_layer_params),
        joint_fc_layer_params=tuple(settings.critic_joint_fc_layer_params),
    )
    return ddpg_agent.DdpgAgent(
        time_step_spec,
        action_spec,
        actor_network=actor,
        critic_network=critic,
        actor_optimizer=adam(settings, settings.actor_learning_rate, train_step),
        critic_optimizer=adam(settings, settings.critic_learning_rate, train_step),
        ou_stddev=settings.ou_stddev,
        ou_damping=settings.ou_damping,
        target_update_tau=settings.target_update_tau,
        target_update_period=settings.target_update_period,
        gamma=settings.gamma,
        gradient_clipping=settings.gradient_clipping,
        train_step_counter=train_step,
    )

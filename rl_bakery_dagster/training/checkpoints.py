"""Saves, restores and exports agents in one folder per day (layout: `checkpoint_format`)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping

import tensorflow as tf
from tf_agents.agents.tf_agent import TFAgent
from tf_agents.policies import policy_saver
from tf_agents.policies.epsilon_greedy_policy import EpsilonGreedyPolicy
from tf_agents.policies.tf_policy import TFPolicy

from rl_bakery_dagster.checkpoint_format import (
    CHECKPOINT,
    CHECKPOINT_PREFIX,
    COLLECT_POLICY,
    GREEDY_POLICY,
    METRICS,
)


def greedy_policy(agent: TFAgent) -> TFPolicy:
    """The agent's exploitation policy; bandit agents wrap theirs in epsilon-greedy exploration."""
    policy = agent.policy
    return policy.wrapped_policy if isinstance(policy, EpsilonGreedyPolicy) else policy


def _checkpoint(agent: TFAgent) -> tf.train.Checkpoint:
    return tf.train.Checkpoint(agent=agent, train_step=agent.train_step_counter)


def save_agent(
    agent: TFAgent, folder: str, metrics: Mapping[str, object], unchanged_from: str | None = None
) -> None:
    """Writes the checkpoint, both exported policies and the day's metrics into `folder`.

    `unchanged_from`: the folder of an identical, untrained-since checkpoint to copy instead of
    writing the agent again; a restored agent that has not trained yet has not created its
    optimiser slots, so writing it would drop them.
    """
    if unchanged_from:
        shutil.copytree(os.path.join(unchanged_from, CHECKPOINT), os.path.join(folder, CHECKPOINT))
    else:
        _checkpoint(agent).write(os.path.join(folder, CHECKPOINT, CHECKPOINT_PREFIX))
    for policy, subfolder in (
        (greedy_policy(agent), GREEDY_POLICY),
        (agent.collect_policy, COLLECT_POLICY),
    ):
        saver = policy_saver.PolicySaver(policy, batch_size=None, train_step=agent.train_step_counter)
        saver.save(os.path.join(folder, subfolder))
    with open(os.path.join(folder, METRICS), "w") as handle:
        json.dump(dict(metrics), handle, indent=2, sort_keys=True)


def restore_agent(agent: TFAgent, folder: str) -> None:
    """Loads the checkpoint in `folder` into `agent`; every variable must match."""
    status = _checkpoint(agent).read(os.path.join(folder, CHECKPOINT, CHECKPOINT_PREFIX))
    status.assert_existing_objects_matched()


def read_metrics(folder: str) -> dict:
    with open(os.path.join(folder, METRICS)) as handle:
        return json.load(handle)

"""Scores a population with an exported policy on Spark executors (`mapInPandas`).

Each Python worker loads the SavedModel once and runs batched inference. Discrete actions are
deployed epsilon-greedy around the greedy policy, with exact propensities
`(1 - epsilon) * [action == greedy] + epsilon / num_actions`, so that tomorrow's logs support
off-policy evaluation. (TF-Agents' own epsilon-greedy log-probability counts only the branch
that was taken, which understates the greedy action's propensity.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import ActionSpace, TimestepSchema
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN

INFERENCE_BATCH = 8192


@dataclass(frozen=True)
class Deployment:
    """What to deploy: the exported greedy policy, its version and the exploration rate."""

    policy_uri: str | None
    """None: no policy can be deployed yet, actions are uniformly random (epsilon 1)."""
    policy_version: str
    epsilon: float
    seed: int


@lru_cache(maxsize=4)
def load_policy(uri: str) -> Any:
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    import tf_agents.trajectories  # noqa: F401  (registers the TFP type specs the SavedModel holds)

    return tf.saved_model.load(uri)


def first_time_steps(observations: np.ndarray) -> Any:
    """A batch of FIRST `TimeStep`s for [B, obs] observations: what a policy sees for a context."""
    import tensorflow as tf
    from tf_agents.trajectories import time_step as ts

    size = len(observations)
    return ts.TimeStep(
        step_type=tf.fill([size], tf.constant(ts.StepType.FIRST, tf.int32)),
        reward=tf.zeros([size], tf.float32),
        discount=tf.ones([size], tf.float32),
        observation=tf.constant(observations, tf.float32),
    )


def policy_outputs(policy_uri: str, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The exported policy's actions for a [B, obs] batch, and its predicted reward per action
    ([B, num_actions]) when the policy emits them (bandit policies do), in chunks of INFERENCE_BATCH."""
    import tensorflow as tf

    policy = load_policy(policy_uri)
    actions, predicted = [], []
    for start in range(0, len(observations), INFERENCE_BATCH):
        output = policy.action(first_time_steps(observations[start : start + INFERENCE_BATCH]), ())
        actions.append(output.action.numpy())
        rewards = getattr(output.info, "predicted_rewards_mean", ())
        if isinstance(rewards, tf.Tensor):
            predicted.append(rewards.numpy())
    if not actions:
        return np.zeros((0,), np.int64), None
    return np.concatenate(actions), np.concatenate(predicted) if predicted else None


def greedy_actions(policy_uri: str, observations: np.ndarray) -> np.ndarray:
    return policy_outputs(policy_uri, observations)[0]


def epsilon_greedy_probability(
    actions: np.ndarray, greedy: np.ndarray, epsilon: float, num_actions: int
) -> np.ndarray:
    """Probability that epsilon-greedy around `greedy` picks `actions`."""
    return ((1 - epsilon) * (actions == greedy) + epsilon / num_actions).astype(np.float64)


def score_population(
    population: DataFrame,
    schema: TimestepSchema,
    action_space: ActionSpace,
    deployment: Deployment,
    day: str,
) -> DataFrame:
    """One action per population row: env ids, `action`, `action_prob`, `greedy_action`, `policy_version`."""
    ids = list(schema.env_id_columns)
    observations = list(schema.observation_columns)
    frame = population.select(
        *ids,
        *[F.col(c).cast(T.FloatType()).alias(c) for c in observations],
        F.rand(deployment.seed).alias("_explore"),
        F.rand(deployment.seed + 1).alias("_uniform"),
    )
    action_type = T.LongType() if action_space.is_discrete else T.ArrayType(T.FloatType())
    # the policy version and the day are the same on every row: Spark adds them after the Python
    # step, so they are never built as pandas object columns nor sent back through Arrow
    output = T.StructType(
        [population.schema[c] for c in ids]
        + [
            T.StructField("action", action_type),
            T.StructField("action_prob", T.FloatType()),
            T.StructField("greedy_action", action_type),
        ]
    )
    epsilon, num_actions = deployment.epsilon, action_space.num_actions
    if deployment.policy_uri is None:
        epsilon = 1.0

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if deployment.policy_uri is None:
                greedy = np.zeros(len(batch), np.int64)
            else:
                greedy = greedy_actions(deployment.policy_uri, batch[observations].to_numpy(np.float32))
            scored = batch[ids].copy()
            if action_space.is_discrete:
                explore = batch["_explore"].to_numpy() < epsilon
                random_action = np.minimum(
                    (batch["_uniform"].to_numpy() * num_actions).astype(np.int64), num_actions - 1
                )
                action = np.where(explore, random_action, greedy.astype(np.int64))
                scored["action"] = action
                scored["action_prob"] = epsilon_greedy_probability(
                    action, greedy, epsilon, num_actions
                ).astype(np.float32)
                scored["greedy_action"] = greedy.astype(np.int64)
            else:
                scored["action"] = list(greedy.astype(np.float32))
                scored["action_prob"] = np.nan
                scored["greedy_action"] = list(greedy.astype(np.float32))
            yield scored

    return frame.mapInPandas(score, schema=output).select(
        *ids,
        "action",
        "action_prob",
        "greedy_action",
        F.lit(deployment.policy_version).alias("policy_version"),
        F.lit(day).alias(PARTITION_COLUMN),
    )


def score_logged(
    logged: DataFrame,
    schema: TimestepSchema,
    action_space: ActionSpace,
    policy_uri: str,
    epsilon: float,
) -> DataFrame:
    """Adds what off-policy evaluation needs of a candidate policy to each logged bandit row.

    `target_prob`: probability that the candidate, deployed epsilon-greedy, picks the logged
    action; `q_logged`: its predicted reward for the logged action; `v_target`: its expected
    predicted reward under its own epsilon-greedy distribution.
    """
    observations = list(schema.observation_columns)
    num_actions = action_space.num_actions
    output = T.StructType(
        [f for f in logged.schema.fields if f.name not in observations]
        + [
            T.StructField("greedy_action", T.LongType()),
            T.StructField("target_prob", T.DoubleType()),
            T.StructField("q_logged", T.DoubleType()),
            T.StructField("v_target", T.DoubleType()),
        ]
    )
    kept = [f.name for f in logged.schema.fields if f.name not in observations]

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            greedy, predicted = policy_outputs(policy_uri, batch[observations].to_numpy(np.float32))
            if predicted is None:
                raise ValueError(f"{policy_uri} does not emit predicted rewards; it is not a bandit policy")
            logged_action = batch["action"].to_numpy(np.int64)
            greedy = greedy.astype(np.int64)
            rows = np.arange(len(batch))
            out = batch[kept].copy()
            out["greedy_action"] = greedy
            out["target_prob"] = epsilon_greedy_probability(logged_action, greedy, epsilon, num_actions)
            out["q_logged"] = predicted[rows, logged_action].astype(np.float64)
            out["v_target"] = (
                (1 - epsilon) * predicted[rows, greedy] + epsilon * predicted.mean(axis=1)
            ).astype(np.float64)
            yield out

    return logged.mapInPandas(score, schema=output)

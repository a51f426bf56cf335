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

    policy_uri: str
    policy_version: str
    epsilon: float
    seed: int


@lru_cache(maxsize=4)
def load_policy(uri: str) -> Any:
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    return tf.saved_model.load(uri)


def greedy_actions(policy_uri: str, observations: np.ndarray) -> np.ndarray:
    """The exported policy's actions for a [B, obs] batch, in chunks of INFERENCE_BATCH."""
    import tensorflow as tf
    from tf_agents.trajectories import time_step as ts

    policy = load_policy(policy_uri)
    actions = []
    for start in range(0, len(observations), INFERENCE_BATCH):
        chunk = observations[start : start + INFERENCE_BATCH]
        size = len(chunk)
        step = ts.TimeStep(
            step_type=tf.fill([size], tf.constant(ts.StepType.FIRST, tf.int32)),
            reward=tf.zeros([size], tf.float32),
            discount=tf.ones([size], tf.float32),
            observation=tf.constant(chunk, tf.float32),
        )
        actions.append(policy.action(step, ()).action.numpy())
    return np.concatenate(actions) if actions else np.zeros((0,), np.int64)


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
    output = T.StructType(
        [population.schema[c] for c in ids]
        + [
            T.StructField("action", action_type),
            T.StructField("action_prob", T.FloatType()),
            T.StructField("greedy_action", action_type),
            T.StructField("policy_version", T.StringType()),
            T.StructField(PARTITION_COLUMN, T.StringType()),
        ]
    )
    epsilon, num_actions = deployment.epsilon, action_space.num_actions

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            greedy = greedy_actions(deployment.policy_uri, batch[observations].to_numpy(np.float32))
            scored = batch[ids].copy()
            if action_space.is_discrete:
                explore = batch["_explore"].to_numpy() < epsilon
                random_action = np.minimum(
                    (batch["_uniform"].to_numpy() * num_actions).astype(np.int64), num_actions - 1
                )
                action = np.where(explore, random_action, greedy.astype(np.int64))
                scored["action"] = action
                scored["action_prob"] = ((1 - epsilon) * (action == greedy) + epsilon / num_actions).astype(
                    np.float32
                )
                scored["greedy_action"] = greedy.astype(np.int64)
            else:
                scored["action"] = list(greedy.astype(np.float32))
                scored["action_prob"] = np.nan
                scored["greedy_action"] = list(greedy.astype(np.float32))
            scored["policy_version"] = deployment.policy_version
            scored[PARTITION_COLUMN] = day
            yield scored

    return frame.mapInPandas(score, schema=output)

"""Logged RL timesteps → decisions (state, logged action, its propensity, the reward that followed),
scored with a candidate's Q-network on Spark executors, for sequential off-policy evaluation.

An episode is judged only from its FIRST step: episodes that began before the day (their start is
in an earlier partition) are left out, and an episode still running at the day's end counts with
the decisions whose reward was observed (a horizon cut that the logging policy's observed return
shares, so the paired comparison stays like for like).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import FIRST, LAST, TimestepSchema
from rl_bakery_dagster.transforms.scoring import epsilon_greedy_probability

EPISODE = "episode"
"""Number of the episode within its env on the day (1 = the first that starts on the day)."""


def logged_decisions(
    timesteps: DataFrame, schema: TimestepSchema, with_policy_version: bool = False
) -> DataFrame:
    """One row per decision of every episode that starts in `timesteps`: env ids, `episode`, `t`,
    the observation columns, `action`, `action_prob` and `reward` (the reward of the next timestep),
    and with `with_policy_version` the logged `policy_version` of the policy that chose the action.
    """
    env = [F.col(c) for c in schema.env_id_columns]
    version = [F.col("policy_version")] if with_policy_version else []
    order = Window.partitionBy(*env).orderBy(schema.timestep_column)
    rows = timesteps.select(
        *env,
        F.col(schema.timestep_column),
        F.col("step_type"),
        *[F.col(c) for c in schema.observation_columns],
        F.col("action"),
        F.col("action_prob").cast("double").alias("action_prob"),
        *version,
        F.sum((F.col("step_type") == FIRST).cast("int")).over(order).alias(EPISODE),
        F.lead("reward").over(order).cast("double").alias("next_reward"),
        F.lead("step_type").over(order).alias("next_step_type"),
    )
    decisions = rows.filter(
        (F.col(EPISODE) >= 1)
        & (F.col("step_type") != LAST)
        & F.col("next_step_type").isin(1, LAST)  # the next timestep continues this episode
    )
    in_episode = Window.partitionBy(*env, F.col(EPISODE)).orderBy(schema.timestep_column)
    return decisions.select(
        *env,
        F.col(EPISODE),
        (F.row_number().over(in_episode) - 1).alias("t"),
        *[F.col(c) for c in schema.observation_columns],
        F.col("action"),
        F.col("action_prob"),
        *version,
        F.col("next_reward").alias("reward"),
    )


@lru_cache(maxsize=2)
def candidate_q_function(
    checkpoint_uri: str,
    settings: tuple[tuple[str, Any], ...],
    observation_size: int,
    num_actions: int,
    n_step: int,
) -> Any:
    """The candidate's Q-values as a TensorFlow function of [B, obs] observations, restored from its
    TF checkpoint (`settings`: the checkpoint's agent settings as sorted items)."""
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf
    from tf_agents.specs import tensor_spec
    from tf_agents.trajectories import time_step as ts

    from rl_bakery_dagster.resources.agents import TFAgentsResource
    from rl_bakery_dagster.training.checkpoints import greedy_policy, restore_agent

    fields = {k: list(v) if isinstance(v, tuple) else v for k, v in settings}
    agent = TFAgentsResource(**fields).build(
        tensor_spec.TensorSpec((observation_size,), tf.float32, name="observation"),
        tensor_spec.BoundedTensorSpec((), tf.int64, minimum=0, maximum=num_actions - 1, name="action"),
        n_step,
    )
    restore_agent(agent, checkpoint_uri)
    q_policy = greedy_policy(agent)
    q_policy = getattr(q_policy, "wrapped_policy", q_policy)  # GreedyPolicy(QPolicy): Q-values are its logits

    def q_values(observations: tf.Tensor) -> tf.Tensor:
        size = tf.shape(observations)[0]
        first = ts.TimeStep(
            step_type=tf.fill([size], tf.constant(ts.StepType.FIRST, tf.int32)),
            reward=tf.zeros([size], tf.float32),
            discount=tf.ones([size], tf.float32),
            observation=tf.cast(observations, tf.float32),
        )
        return q_policy.distribution(first).action.logits

    return q_values


def frozen_settings(settings: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Agent settings as a hashable key for :func:`candidate_q_function`."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items()))


@dataclass(frozen=True)
class Candidate:
    """The policy being judged: its checkpoint, the agent settings it recorded, and how it is deployed
    (epsilon-greedy around its greedy action). Picklable, so executors restore the network themselves."""

    checkpoint_uri: str
    settings: tuple[tuple[str, Any], ...]
    observation_size: int
    num_actions: int
    n_step: int
    epsilon: float

    def q_values(self) -> Any:
        """Q(s, .) of numpy observations [B, obs] → [B, num_actions] (the network is cached per process)."""
        q_function = candidate_q_function(
            self.checkpoint_uri, self.settings, self.observation_size, self.num_actions, self.n_step
        )
        return lambda observations: np.asarray(
            q_function(np.asarray(observations, np.float32)), dtype=np.float64
        )


def score_decisions(decisions: DataFrame, schema: TimestepSchema, candidate: Candidate) -> DataFrame:
    """Adds `ratio` (candidate deployed epsilon-greedy / logged propensity of the logged action),
    `q_logged` = Q(s, a), `v_target` = E_candidate Q(s, ·) and `greedy_action`, on the executors."""
    observations = list(schema.observation_columns)
    kept = [f for f in decisions.schema.fields if f.name not in observations]
    output = T.StructType(
        [
            *kept,
            T.StructField("greedy_action", T.LongType()),
            T.StructField("ratio", T.DoubleType()),
            T.StructField("q_logged", T.DoubleType()),
            T.StructField("v_target", T.DoubleType()),
        ]
    )
    from rl_bakery_dagster.evaluation.fqe import epsilon_greedy_value

    epsilon, num_actions = candidate.epsilon, candidate.num_actions

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        q_values = candidate.q_values()
        for batch in batches:
            q = q_values(batch[observations].to_numpy(np.float32))
            greedy = q.argmax(axis=1).astype(np.int64)
            action = batch["action"].to_numpy(np.int64)
            rows = np.arange(len(batch))
            out = batch[[f.name for f in kept]].copy()
            out["greedy_action"] = greedy
            target = epsilon_greedy_probability(action, greedy, epsilon, num_actions)
            out["ratio"] = target / batch["action_prob"].to_numpy(np.float64)
            out["q_logged"] = q[rows, action]
            out["v_target"] = epsilon_greedy_value(q, greedy, epsilon)
            yield out

    return decisions.mapInPandas(score, schema=output)


def score_episode_starts(
    decisions: DataFrame, schema: TimestepSchema, candidate: Candidate, fitted: Any
) -> DataFrame:
    """One row per episode (its first decision): the env ids, `episode`, and the fitted Q evaluation
    values `fqe_candidate` (the candidate deployed epsilon-greedy) and `fqe_logging` (the logging
    policy, at the action it took), computed on the executors; `fitted` is an `FQEResult`."""
    from rl_bakery_dagster.evaluation.fqe import start_values

    observations = list(schema.observation_columns)
    ids = [*schema.env_id_columns, EPISODE]
    id_fields = [f for f in decisions.schema.fields if f.name in ids]
    output = T.StructType(
        [
            *id_fields,
            T.StructField("fqe_candidate", T.DoubleType()),
            T.StructField("fqe_logging", T.DoubleType()),
        ]
    )
    candidate_head, logging_head = fitted.candidate, fitted.logging

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        q_values = candidate.q_values()
        for batch in batches:
            states = batch[observations].to_numpy(np.float64)
            greedy = q_values(states).argmax(axis=1)
            value, logged = start_values(
                candidate_head,
                logging_head,
                states,
                greedy,
                batch["action"].to_numpy(np.int64),
                candidate.epsilon,
            )
            out = batch[[f.name for f in id_fields]].copy()
            out["fqe_candidate"] = value
            out["fqe_logging"] = logged
            yield out

    return decisions.filter(F.col("t") == 0).mapInPandas(score, schema=output)

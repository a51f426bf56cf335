"""Timesteps → n-step transitions, as one Spark window job (no driver-side loop)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import FIRST, LAST, TimestepSchema
from rl_bakery_dagster.trajectory_format import (
    ACTION,
    DISCOUNT,
    NEXT_STEP_TYPE,
    OBSERVATION,
    PARTITION_COLUMN,
    REWARD,
    STEP_TYPE,
)


def build_transitions(
    timesteps: DataFrame, schema: TimestepSchema, n_step: int, days: Sequence[str]
) -> DataFrame:
    """Windows of n_step+1 consecutive timesteps of one episode, in the layout of `trajectory_format`.

    Args:
      timesteps: contract rows (from `to_contract`) of `days` and of the lookback days before them.
      schema: names the env id, timestep id and observation columns.
      n_step: transitions hold n_step+1 timesteps.
      days: the days to emit; a transition belongs to the day of its last timestep, so each one
        is emitted exactly once over all days.

    Returns:
      One row per transition: env ids, the timestep id and day of its last timestep, and the
      array columns of `trajectory_format`. A window never crosses an episode boundary: its
      first n_step timesteps are not LAST and its last n_step timesteps are not FIRST.
    """
    observation = F.array(*[F.col(c) for c in schema.observation_columns])
    action = F.col("action")
    if not isinstance(timesteps.schema["action"].dataType, T.ArrayType):
        action = F.array(action)
    if schema.single_step:
        return single_step_transitions(timesteps, schema, observation, action, days)
    by_env = Window.partitionBy(*schema.env_id_columns).orderBy(schema.timestep_column)
    rows = timesteps.select(
        *schema.env_id_columns,
        schema.timestep_column,
        PARTITION_COLUMN,
        "step_type",
        observation.alias("_observation"),
        action.alias("_action"),
        "reward",
        "discount",
    )

    def at(column: str, item: int) -> Column:
        """`column` of window item `item` (0 = oldest, n_step = the row itself)."""
        lag = n_step - item
        return F.col(column) if lag == 0 else F.lag(column, lag).over(by_env)

    items = range(n_step + 1)
    step_types = [at("step_type", i) for i in items]
    within_episode = reduce(
        operator.and_,
        [step_types[0].isNotNull()]
        + [step_types[i] != LAST for i in items[:-1]]
        + [step_types[i] != FIRST for i in items[1:]],
    )
    windows = rows.select(
        *schema.env_id_columns,
        schema.timestep_column,
        PARTITION_COLUMN,
        within_episode.alias("_within_episode"),
        F.array(*step_types).alias(STEP_TYPE),
        F.flatten(F.array(*[at("_observation", i) for i in items])).alias(OBSERVATION),
        F.flatten(F.array(*[at("_action", i) for i in items])).alias(ACTION),
        F.array(*step_types[1:]).alias(NEXT_STEP_TYPE),
        F.array(*[at("reward", i) for i in items[1:]]).alias(REWARD),
        F.array(*[at("discount", i) for i in items[1:]]).alias(DISCOUNT),
    )
    return windows.filter(F.col("_within_episode") & F.col(PARTITION_COLUMN).isin(list(days))).drop(
        "_within_episode"
    )


def single_step_transitions(
    timesteps: DataFrame, schema: TimestepSchema, observation: Column, action: Column, days: Sequence[str]
) -> DataFrame:
    """Bandit rows as one-step episodes (FIRST, then LAST with the row's reward): a plain projection.

    The logged propensity and policy version travel along for off-policy evaluation.
    """
    extra = [c for c in ("action_prob", "policy_version") if c in timesteps.columns]
    return timesteps.filter(F.col(PARTITION_COLUMN).isin(list(days))).select(
        *schema.env_id_columns,
        schema.timestep_column,
        PARTITION_COLUMN,
        F.array(F.lit(FIRST)).alias(STEP_TYPE),
        observation.alias(OBSERVATION),
        action.alias(ACTION),
        F.array(F.lit(LAST)).alias(NEXT_STEP_TYPE),
        F.array(F.col("reward")).alias(REWARD),
        F.array(F.lit(0.0).cast(T.FloatType())).alias(DISCOUNT),
        *extra,
    )

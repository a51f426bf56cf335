"""Brings an application's warehouse rows into the timestep contract (names and types)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import FIRST, ActionSpace, TimestepSchema
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN
from rl_bakery_dagster.transforms.validation import check_contract_schema


def to_contract(raw: DataFrame, schema: TimestepSchema, action_space: ActionSpace, day: str) -> DataFrame:
    """Selects the contract columns with their contract types and tags each row with `day`.

    Integer ids are stored as 64-bit, so that days written with 32- and 64-bit ids agree.
    Raises `TimestepContractError` when a column is missing or has a type the contract refuses.
    """
    check_contract_schema(raw, schema, action_space, day)
    columns: list[Column] = [_id(raw, c) for c in (*schema.env_id_columns, schema.timestep_column)]
    step_type = F.lit(FIRST) if schema.single_step else F.col(schema.step_type_column)
    columns.append(step_type.cast(T.IntegerType()).alias("step_type"))
    columns += [F.col(c).cast(T.FloatType()).alias(c) for c in schema.observation_columns]
    columns.append(_action(raw, schema.action_column, action_space).alias("action"))
    columns.append(F.col(schema.reward_column).cast(T.FloatType()).alias("reward"))
    discount = F.lit(0.0) if schema.single_step else F.col(schema.discount_column)
    columns.append(discount.cast(T.FloatType()).alias("discount"))
    if schema.action_prob_column:
        columns.append(F.col(schema.action_prob_column).cast(T.FloatType()).alias("action_prob"))
    if schema.policy_version_column:
        columns.append(F.col(schema.policy_version_column).cast(T.StringType()).alias("policy_version"))
    columns.append(F.lit(day).alias(PARTITION_COLUMN))
    return raw.select(*columns)


def _id(raw: DataFrame, column: str) -> Column:
    if isinstance(raw.schema[column].dataType, T.IntegralType):
        return F.col(column).cast(T.LongType()).alias(column)
    return F.col(column)


def _action(raw: DataFrame, column: str, action_space: ActionSpace) -> Column:
    if action_space.is_discrete:
        value = F.col(column)
        if isinstance(raw.schema[column].dataType, T.FractionalType):
            # a fractional id becomes null, which the action rule refuses
            value = F.when(value == F.floor(value), value)
        return value.cast(T.LongType())
    if isinstance(raw.schema[column].dataType, T.ArrayType):
        return F.col(column).cast(T.ArrayType(T.FloatType()))
    return F.array(F.col(column).cast(T.FloatType()))

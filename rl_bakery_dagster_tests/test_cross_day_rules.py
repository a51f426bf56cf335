"""A day is judged against the days before it, and every contract column has a type and a bound.

Each case breaks one rule in two otherwise valid, consecutive days of CartPole logs (episodes
cross midnight): ids that go back or restart at midnight, a day folder that repeats yesterday's
rows, an episode that goes on after yesterday's LAST, negative ids, absurd magnitudes, text
where the contract wants numbers. The rules run on real Spark through `find_violations`, as the
`timesteps` asset runs them.
"""

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.application import FIRST, LAST, MID
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS, cartpole_application
from rl_bakery_dagster.transforms.timesteps import to_contract
from rl_bakery_dagster.transforms.transitions import build_transitions
from rl_bakery_dagster.transforms.validation import (
    TimestepContractError,
    check_same_types,
    find_violations,
)

APP = cartpole_application(warehouse="unused")
YESTERDAY, TODAY = "2024-01-01", "2024-01-02"
Days = tuple[pd.DataFrame | None, pd.DataFrame]


@pytest.fixture(scope="module")
def two_days() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two consecutive days of one product: ids keep counting and episodes cross midnight."""
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym, random_policy

    product = BatchedGym("CartPole-v0", 2, seed=4)
    policy = random_policy(product.action_space, 4)
    return product.log(policy, 30, OBSERVATION_COLUMNS), product.log(policy, 30, OBSERVATION_COLUMNS)


def verdict(spark, days: Days, schema=APP.schema) -> list[tuple[str, str]]:
    yesterday, today = days
    earlier = None
    if yesterday is not None:
        earlier = to_contract(spark.createDataFrame(yesterday), schema, APP.action_space, YESTERDAY)
    contract = to_contract(spark.createDataFrame(today), schema, APP.action_space, TODAY)
    violations = find_violations(contract, schema, APP.action_space, earlier, 1)
    for violation in violations:
        assert violation.samples and "user_id" in violation.samples[0], violation
        assert violation.days == (TODAY,)
    return [(v.rule, ", ".join(v.columns)) for v in violations]


def first_rows(frame: pd.DataFrame, user: int) -> pd.Index:
    return frame[frame.user_id == user].sort_values("ts").index


def ids_go_back(yesterday: pd.DataFrame, today: pd.DataFrame) -> Days:
    """Yesterday's ids were larger than today's (no id repeats): today went back in time."""
    return yesterday.assign(ts=yesterday.ts + 1000), today


def ids_restart_at_zero(yesterday: pd.DataFrame, today: pd.DataFrame) -> Days:
    """The product counts from 0 every day: today's ids are yesterday's ids again."""
    return yesterday, today.assign(ts=today.ts - today.ts.min())


def folder_repeats_yesterday(yesterday: pd.DataFrame, today: pd.DataFrame) -> Days:
    """Today's folder also holds yesterday's rows."""
    return yesterday, pd.concat([yesterday, today], ignore_index=True)


def continues_after_last(yesterday: pd.DataFrame, today: pd.DataFrame) -> Days:
    """User 0's last row yesterday was a LAST; today it goes on with a MID."""
    yesterday, today = yesterday.copy(), today.copy()
    last = first_rows(yesterday, 0)[-1]
    yesterday.loc[last, ["step_type", "discount"]] = [LAST, 0.0]
    today.loc[first_rows(today, 0)[0], "step_type"] = MID
    return yesterday, today


def negative_ids(yesterday: pd.DataFrame, today: pd.DataFrame) -> Days:
    """Ids below zero (no earlier day, so only this rule can fail)."""
    return None, today.assign(ts=today.ts - 10_000)


def observation_of(value: float, column: str = "pole_angle") -> Callable[..., Days]:
    def corrupt(yesterday: pd.DataFrame, today: pd.DataFrame) -> Days:
        today = today.copy()
        today.loc[5, column] = value
        return yesterday, today

    return corrupt


CASES = [
    # (rule, column(s), how today breaks it)
    ("increasing_across_days", "ts", ids_go_back),
    ("unique_across_days", "user_id, ts", ids_restart_at_zero),
    ("unique_across_days", "user_id, ts", folder_repeats_yesterday),
    ("episode_order", "step_type", continues_after_last),
    ("timestep_id_not_negative", "ts", negative_ids),
    ("bounded_value", "pole_angle", observation_of(1e30)),  # finite in float32, absurd
    ("bounded_value", "reward", observation_of(-2e6, "reward")),
]


@pytest.mark.parametrize(("rule", "columns", "corrupt"), CASES)
def test_a_day_breaking_one_rule_is_refused_by_that_rule(
    spark, two_days: tuple[pd.DataFrame, pd.DataFrame], rule: str, columns: str, corrupt
) -> None:
    assert verdict(spark, corrupt(*two_days)) == [(rule, columns)]


def test_two_valid_days_pass(spark, two_days: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    assert verdict(spark, two_days) == []


def test_an_abandoned_episode_may_start_again_with_first(
    spark, two_days: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Products abandon sessions: after a MID yesterday, a FIRST today is legal, and no transition
    pairs the abandoned step with the new episode."""
    yesterday, today = (frame.copy() for frame in two_days)
    last = first_rows(yesterday, 0)[-1]
    yesterday.loc[last, "step_type"] = MID
    first_today = first_rows(today, 0)[0]
    today.loc[first_today, "step_type"] = FIRST
    assert verdict(spark, (yesterday, today)) == []

    contract = to_contract(spark.createDataFrame(today), APP.schema, APP.action_space, TODAY).unionByName(
        to_contract(spark.createDataFrame(yesterday), APP.schema, APP.action_space, YESTERDAY)
    )
    ending_at_first_today = build_transitions(contract, APP.schema, 1, [TODAY]).filter(
        f"user_id = 0 AND ts = {today.loc[first_today, 'ts']}"
    )
    assert ending_at_first_today.count() == 0


def test_the_magnitude_bound_is_set_per_application(
    spark, two_days: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """An application whose features are legitimately large raises its own bound."""
    wide = dataclasses.replace(APP.schema, max_abs_value=1e31)
    assert verdict(spark, observation_of(1e30)(*two_days), wide) == []
    narrow = dataclasses.replace(APP.schema, max_abs_value=0.1)
    assert ("bounded_value", "pole_angle") in verdict(spark, two_days, narrow)
    with pytest.raises(ValueError, match="max_abs_value"):
        dataclasses.replace(APP.schema, max_abs_value=float("inf"))


@pytest.mark.parametrize(
    ("change", "column"),
    [
        (lambda f: f.assign(ts=f.ts.astype(str)), "ts"),  # castable text: still refused
        (lambda f: f.assign(step_type=f.step_type.astype(float)), "step_type"),  # 1.0 is not a step type
        (lambda f: f.assign(user_id=f.user_id + 0.5), "user_id"),  # fractional env ids
        (lambda f: f.assign(reward=f.reward.astype(str)), "reward"),
        (lambda f: f.assign(discount=f.discount.astype(str)), "discount"),
        (lambda f: f.assign(action=f.action.astype(str)), "action"),
    ],
)
def test_every_contract_column_has_a_type_rule(
    spark, two_days: tuple[pd.DataFrame, pd.DataFrame], change, column: str
) -> None:
    with pytest.raises(TimestepContractError) as refused:
        to_contract(spark.createDataFrame(change(two_days[1])), APP.schema, APP.action_space, TODAY)
    assert [(v.rule, v.columns, v.days) for v in refused.value.violations] == [
        ("contract_columns", (column,), (TODAY,))
    ]


def test_a_type_that_changes_between_days_is_refused(
    spark, two_days: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Integer ids as 32 or 64 bits are one type once in the contract; ids that become
    timestamps are not (every later read of the two partitions together would fail)."""
    yesterday, today = two_days
    contract = {
        YESTERDAY: to_contract(spark.createDataFrame(yesterday), APP.schema, APP.action_space, YESTERDAY),
        TODAY: to_contract(
            spark.createDataFrame(today.astype({"ts": np.int32, "user_id": np.int32})),
            APP.schema,
            APP.action_space,
            TODAY,
        ),
    }
    check_same_types(contract)

    stamped = today.assign(ts=pd.to_datetime(today.ts, unit="s", utc=True))
    contract[TODAY] = to_contract(spark.createDataFrame(stamped), APP.schema, APP.action_space, TODAY)
    with pytest.raises(TimestepContractError) as refused:
        check_same_types(contract)
    assert [(v.rule, v.columns, v.days) for v in refused.value.violations] == [
        ("contract_columns", ("ts",), (TODAY,))
    ]


@pytest.mark.parametrize("timestamp_type", ["timestamp", "timestamp_ntz"])  # both Spark timestamp types
def test_timestamp_ids_follow_the_same_rules(
    spark, two_days: tuple[pd.DataFrame, pd.DataFrame], timestamp_type: str
) -> None:
    """Timestamps order timesteps like integer ids: valid days pass, a day before 1970 and a day
    whose timestamps go back across midnight are refused."""
    from pyspark.sql import functions as F

    def contract(frame: pd.DataFrame, day: str, offset_seconds: int = 1_700_000_000):
        raw = spark.createDataFrame(frame.assign(ts=frame.ts + offset_seconds))
        raw = raw.withColumn("ts", F.timestamp_seconds("ts").cast(timestamp_type))
        return to_contract(raw, APP.schema, APP.action_space, day)

    def rules(today, earlier) -> list[str]:
        return [v.rule for v in find_violations(today, APP.schema, APP.action_space, earlier, 1)]

    yesterday, today = two_days
    assert rules(contract(today, TODAY), contract(yesterday, YESTERDAY)) == []
    assert rules(contract(today, TODAY, -10_000), None) == ["timestep_id_not_negative"]
    back = contract(yesterday, YESTERDAY, 1_700_001_000)
    assert rules(contract(today, TODAY), back) == ["increasing_across_days"]

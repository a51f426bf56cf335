"""Bad warehouse rows are refused by name: the rule, the column and a few offending rows.

Each case breaks one rule of the timestep contract in an otherwise valid day of CartPole logs.
Through Dagster, a refused day fails its run and writes nothing.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS, cartpole_application
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.transforms.timesteps import to_contract
from rl_bakery_dagster.transforms.validation import (
    TimestepContractError,
    contract_rules,
    find_violations,
    rule_names,
)
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole


def set_value(column: str, value: object, row: int = 3) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if isinstance(value, float) and column in ("action", "step_type"):
            frame[column] = frame[column].astype(float)
        frame.loc[row, column] = value
        return frame

    return corrupt


def duplicate_row(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[[5]]], ignore_index=True)


def continue_after_last(frame: pd.DataFrame) -> pd.DataFrame:
    """An episode goes on (MID) right after a LAST step."""
    frame = frame.sort_values(["user_id", "ts"]).reset_index(drop=True)
    after_last = (frame.step_type.shift(1) == 2) & (frame.user_id.shift(1) == frame.user_id)
    frame.loc[after_last.idxmax(), "step_type"] = 1
    return frame


CASES = [
    # (rule, column, how the day is broken)
    ("finite_observation", "pole_angle", set_value("pole_angle", np.nan)),
    ("finite_observation", "cart_velocity", set_value("cart_velocity", np.inf)),
    ("finite_reward", "reward", set_value("reward", None)),
    ("known_step_type", "step_type", set_value("step_type", 7)),
    ("action_in_spec", "action", set_value("action", 2)),  # CartPole has actions 0 and 1
    ("action_in_spec", "action", set_value("action", 0.5)),  # not an action id
    ("discount_in_unit_interval", "discount", set_value("discount", 1.5)),
    ("unique_timestep", "user_id, ts", duplicate_row),
    ("episode_order", "step_type", continue_after_last),
]


@pytest.fixture(scope="module")
def day_of_logs() -> pd.DataFrame:
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym, random_policy

    product = BatchedGym("CartPole-v0", 2, seed=1)
    return product.log(random_policy(product.action_space, 1), 60, OBSERVATION_COLUMNS)


@pytest.mark.parametrize(("rule", "column", "corrupt"), CASES)
def test_rule_names_column_and_rows(
    spark, day_of_logs: pd.DataFrame, rule: str, column: str, corrupt
) -> None:
    app = cartpole_application(warehouse="unused")
    raw = spark.createDataFrame(corrupt(day_of_logs))
    violations = find_violations(
        to_contract(raw, app.schema, app.action_space, START), app.schema, app.action_space
    )

    assert [(v.rule, ", ".join(v.columns)) for v in violations] == [(rule, column)]
    assert violations[0].rows >= 1
    assert violations[0].samples and "user_id" in violations[0].samples[0]


def test_valid_logs_pass(spark, day_of_logs: pd.DataFrame) -> None:
    app = cartpole_application(warehouse="unused")
    contract = to_contract(spark.createDataFrame(day_of_logs), app.schema, app.action_space, START)
    assert find_violations(contract, app.schema, app.action_space) == []


@pytest.mark.parametrize(
    ("change", "column"),
    [
        (lambda f: f.drop(columns=["reward"]), "reward"),  # a contract column is absent
        (lambda f: f.assign(pole_angle="tilted"), "pole_angle"),  # text where a number belongs
    ],
)
def test_schema_rules(spark, day_of_logs: pd.DataFrame, change, column: str) -> None:
    app = cartpole_application(warehouse="unused")
    with pytest.raises(TimestepContractError) as refused:
        to_contract(spark.createDataFrame(change(day_of_logs)), app.schema, app.action_space, START)
    assert [(v.rule, v.columns) for v in refused.value.violations] == [("contract_columns", (column,))]


def test_a_refused_day_fails_its_run_and_writes_nothing(spark, home: Path) -> None:
    frames = log_random_days(home, 1)
    from rl_bakery_dagster.examples.gym_simulator import write_day

    write_day(set_value("reward", np.nan)(frames[0]), str(home / "warehouse"), START)
    defs = definitions(home, tiny_cartpole(home))
    result = defs.resolve_job_def(DAILY_JOB).execute_in_process(partition_key=START, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert "rule 'finite_reward' on column(s) reward" in message
    assert not (home / "storage" / "cartpole" / "timesteps" / f"dt={START}").exists()
    checks = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert not checks.pop("finite_reward").passed
    assert checks and all(check.passed for check in checks.values())
    assert result.get_asset_materialization_events() == []


def test_asset_check_names_match_the_rules(spark) -> None:
    app = cartpole_application(warehouse="unused")
    names = [r.name for r in contract_rules(app.schema, app.action_space)]
    assert rule_names(app.schema) == ["contract_columns", *dict.fromkeys(names), "unique_timestep"]


@pytest.mark.parametrize("propensity", [0.0, 1.5, np.nan])  # zero, above one, missing
def test_propensities_outside_the_unit_interval_are_refused(
    spark, day_of_logs: pd.DataFrame, propensity
) -> None:
    app = cartpole_application(warehouse="unused")
    schema = dataclasses.replace(app.schema, action_prob_column="action_prob")
    logs = day_of_logs.assign(action_prob=0.5)
    logs.loc[4, "action_prob"] = propensity
    contract = to_contract(spark.createDataFrame(logs), schema, app.action_space, START)
    violations = find_violations(contract, schema, app.action_space)
    assert [(v.rule, v.columns, v.rows) for v in violations] == [
        ("propensity_in_unit_interval", ("action_prob",), 1)
    ]

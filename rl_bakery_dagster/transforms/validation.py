"""The timestep contract's rules, checked on Spark executors.

Each rule is a Spark condition that is true on an offending row. One aggregate pass counts the
offenders of every rule; only for rules that fail are a few sample rows fetched, so the driver
never sees more than a handful of rows.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import FIRST, LAST, ActionSpace, TimestepSchema

SAMPLE_ROWS = 5
SCHEMA_RULE = "contract_columns"
UNIQUE_RULE = "unique_timestep"
PREVIOUS_STEP_TYPE = "_previous_step_type"


@dataclass(frozen=True)
class Rule:
    """A named contract rule on one or more columns; `offending` is true on a bad row."""

    name: str
    columns: tuple[str, ...]
    description: str
    offending: Column


@dataclass(frozen=True)
class Violation:
    rule: str
    columns: tuple[str, ...]
    description: str
    rows: int
    samples: list[dict] = field(default_factory=list)

    def __str__(self) -> str:
        columns = ", ".join(self.columns)
        return (
            f"rule '{self.rule}' on column(s) {columns}: {self.description}; "
            f"{self.rows} offending row(s), e.g. {self.samples}"
        )


class TimestepContractError(ValueError):
    """A day's logs break the timestep contract; nothing of that day is written."""

    def __init__(self, day: str, violations: list[Violation]):
        self.day = day
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"timesteps of {day} refused by the timestep contract:\n{lines}")


def episode_columns(schema: TimestepSchema) -> list[str]:
    """Step type and discount: read from episodic logs, implied for single-step (bandit) rows."""
    return [] if schema.single_step else [schema.step_type_column, schema.discount_column]


def check_contract_schema(raw: DataFrame, schema: TimestepSchema, action_space: ActionSpace) -> None:
    """Refuses missing columns and columns whose type cannot hold the contract's values."""
    present = {f.name: f.dataType for f in raw.schema.fields}
    required = [
        *schema.env_id_columns,
        schema.timestep_column,
        *episode_columns(schema),
        *schema.observation_columns,
        schema.action_column,
        schema.reward_column,
        *[c for c in (schema.action_prob_column, schema.policy_version_column) if c],
    ]
    missing = [c for c in required if c not in present]
    if missing:
        raise TimestepContractError(
            "(schema)",
            [Violation(SCHEMA_RULE, tuple(missing), f"missing; present: {sorted(present)}", 0)],
        )
    numeric = [
        *episode_columns(schema),
        *schema.observation_columns,
        schema.reward_column,
        *[c for c in (schema.action_prob_column,) if c],
    ]
    action_type = present[schema.action_column]
    if isinstance(action_type, T.ArrayType) and not action_space.is_discrete:
        action_type = action_type.elementType
    else:
        numeric.append(schema.action_column)
    wrong = [c for c in numeric if not isinstance(present[c], T.NumericType)]
    if not isinstance(action_type, T.NumericType) and schema.action_column not in wrong:
        wrong.append(schema.action_column)
    if wrong:
        types = {c: present[c].simpleString() for c in wrong}
        raise TimestepContractError(
            "(schema)",
            [Violation(SCHEMA_RULE, tuple(wrong), f"must be numeric, found {types}", 0)],
        )


def _not_finite(column: str) -> Column:
    value = F.col(column)
    return value.isNull() | F.isnan(value) | value.isin(float("inf"), float("-inf"))


def contract_rules(schema: TimestepSchema, action_space: ActionSpace) -> list[Rule]:
    """Row-level rules of the contract, on a frame produced by `to_contract`."""
    rules = [
        Rule(
            "env_id_not_null",
            schema.env_id_columns,
            "env ids must not be null",
            reduce(operator.or_, [F.col(c).isNull() for c in schema.env_id_columns]),
        ),
        Rule(
            "timestep_id_not_null",
            (schema.timestep_column,),
            "timestep ids must not be null",
            F.col(schema.timestep_column).isNull(),
        ),
        *[
            Rule("finite_observation", (c,), "must be a finite number", _not_finite(c))
            for c in schema.observation_columns
        ],
        Rule("finite_reward", ("reward",), "must be a finite number", _not_finite("reward")),
        _action_rule(action_space),
    ]
    if not schema.single_step:
        rules += [
            Rule(
                "known_step_type",
                ("step_type",),
                f"must be {FIRST} (FIRST), 1 (MID) or {LAST} (LAST)",
                F.col("step_type").isNull() | ~F.col("step_type").isin(0, 1, 2),
            ),
            Rule(
                "episode_order",
                ("step_type",),
                "after a LAST, an environment's next timestep must be a FIRST",
                (F.col(PREVIOUS_STEP_TYPE) == LAST) & (F.col("step_type") != FIRST),
            ),
            Rule(
                "discount_in_unit_interval",
                ("discount",),
                "must be a number in [0, 1]",
                _not_finite("discount") | (F.col("discount") < 0) | (F.col("discount") > 1),
            ),
        ]
    if schema.action_prob_column:
        rules.append(
            Rule(
                "propensity_in_unit_interval",
                ("action_prob",),
                "must be in (0, 1]",
                _not_finite("action_prob") | (F.col("action_prob") <= 0) | (F.col("action_prob") > 1),
            )
        )
    return rules


def _action_rule(action_space: ActionSpace) -> Rule:
    action = F.col("action")
    if action_space.is_discrete:
        return Rule(
            "action_in_spec",
            ("action",),
            f"must be an integer in [0, {action_space.num_actions - 1}]",
            action.isNull() | (action < 0) | (action >= action_space.num_actions),
        )
    low, high = F.array(*map(F.lit, action_space.low)), F.array(*map(F.lit, action_space.high))
    element_bad = F.exists(
        F.arrays_zip(action.alias("a"), low.alias("lo"), high.alias("hi")),
        lambda x: x["a"].isNull() | F.isnan(x["a"]) | (x["a"] < x["lo"]) | (x["a"] > x["hi"]),
    )
    return Rule(
        "action_in_spec",
        ("action",),
        f"must be {action_space.size} number(s) within low={list(action_space.low)}, "
        f"high={list(action_space.high)}",
        action.isNull() | (F.size(action) != action_space.size) | element_bad,
    )


def rule_names(schema: TimestepSchema) -> list[str]:
    """Every rule of the contract once, in order: the asset checks of `timesteps`.

    Needs no SparkSession (definitions load without one); a test keeps it equal to the names
    of `contract_rules`.
    """
    row_rules = [
        "env_id_not_null",
        "timestep_id_not_null",
        "finite_observation",
        "finite_reward",
        "action_in_spec",
    ]
    if not schema.single_step:
        row_rules += ["known_step_type", "episode_order", "discount_in_unit_interval"]
    if schema.action_prob_column:
        row_rules.append("propensity_in_unit_interval")
    return [SCHEMA_RULE, *row_rules, UNIQUE_RULE]


def find_violations(
    timesteps: DataFrame, schema: TimestepSchema, action_space: ActionSpace
) -> list[Violation]:
    """Checks every rule plus unique (env id, timestep id); returns the rules that fail.

    Row rules run in one aggregate pass (with each row's previous step type in its environment,
    for the episode-order rule); uniqueness is one more pass.
    """
    by_env = Window.partitionBy(*schema.env_id_columns).orderBy(schema.timestep_column)
    rows = (
        timesteps.withColumn(PREVIOUS_STEP_TYPE, F.lit(None))
        if schema.single_step
        else timesteps.withColumn(PREVIOUS_STEP_TYPE, F.lag("step_type").over(by_env))
    )
    rules = contract_rules(schema, action_space)
    counts = rows.agg(
        *[F.sum(F.when(rule.offending, 1).otherwise(0)).alias(f"r{i}") for i, rule in enumerate(rules)]
    ).first()
    violations = []
    for i, rule in enumerate(rules):
        offending = counts[f"r{i}"] or 0
        if offending:
            sample = rows.filter(rule.offending).drop(PREVIOUS_STEP_TYPE).limit(SAMPLE_ROWS).collect()
            violations.append(
                Violation(rule.name, rule.columns, rule.description, offending, [r.asDict() for r in sample])
            )
    keys = [*schema.env_id_columns, schema.timestep_column]
    duplicates = timesteps.groupBy(*keys).count().filter(F.col("count") > 1)
    samples = [r.asDict() for r in duplicates.limit(SAMPLE_ROWS).collect()]
    if samples:
        violations.append(
            Violation(
                UNIQUE_RULE,
                tuple(keys),
                "each (env id, timestep id) must appear once",
                duplicates.count(),
                samples,
            )
        )
    return violations

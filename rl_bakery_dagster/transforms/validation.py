"""The timestep contract's rules, checked on Spark executors.

Each rule is a Spark condition that is true on an offending row. One aggregate pass counts the
offenders of every rule; only for rules that fail are a few sample rows fetched, so the driver
never sees more than a handful of rows.

Every day is judged on its own rows and on the stored rows of the days before it (the
`earlier_days` it reads): rules within a day are keyed on (day, env id), rules across days look
back over exactly `earlier_days` days, so a range validated in one run gets the verdict that one
run per day gives.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import FIRST, LAST, ActionSpace, TimestepSchema
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN

SAMPLE_ROWS = 5
SCHEMA_RULE = "contract_columns"
UNIQUE_RULE = "unique_timestep"
PREVIOUS_STEP_TYPE = "_previous_step_type"
"""The step type before a row in its environment: earlier that day, else the last of the earlier days."""
EARLIER_LAST_TIMESTEP = "_earlier_last_timestep"
"""The largest timestep id of the row's environment over the earlier days."""
EARLIER_DAY = "_earlier_day"
"""The latest earlier day that holds the row's (env id, timestep id), if any."""
_CURRENT = "_current"
_DAY_NUMBER = "_day_number"


@dataclass(frozen=True)
class Rule:
    """A named contract rule on one or more columns; `offending` is true on a bad row."""

    name: str
    columns: tuple[str, ...]
    description: str
    offending: Column
    context: tuple[str, ...] = ()
    """Helper columns shown beside the sample rows (what the row was compared with)."""


@dataclass(frozen=True)
class Violation:
    rule: str
    columns: tuple[str, ...]
    description: str
    rows: int
    samples: list[dict] = field(default_factory=list)
    days: tuple[str, ...] = ()

    def __str__(self) -> str:
        columns = ", ".join(self.columns)
        where = f" on {', '.join(self.days)}" if self.days else ""
        return (
            f"rule '{self.rule}' on column(s) {columns}: {self.description}; "
            f"{self.rows} offending row(s){where}, e.g. {self.samples}"
        )


class TimestepContractError(ValueError):
    """A day's logs break the timestep contract; nothing of that day is written."""

    def __init__(self, day: str, violations: list[Violation]):
        self.day = day
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"timesteps of {day} refused by the timestep contract:\n{lines}")


def refused_days(violations: list[Violation]) -> list[str]:
    """The days the violations were found on, oldest first."""
    return sorted({day for v in violations for day in v.days})


def episode_columns(schema: TimestepSchema) -> list[str]:
    """Step type and discount: read from episodic logs, implied for single-step (bandit) rows."""
    return [] if schema.single_step else [schema.step_type_column, schema.discount_column]


def check_contract_schema(
    raw: DataFrame, schema: TimestepSchema, action_space: ActionSpace, day: str = "(schema)"
) -> None:
    """Refuses missing columns and columns whose type is not the contract's.

    Text is refused even where it could be cast: a column written as text one day is a
    warehouse fault that a cast would hide until a later day or a later asset fails.
    """
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
            day,
            [Violation(SCHEMA_RULE, tuple(missing), f"missing; present: {sorted(present)}", 0, days=(day,))],
        )
    expected = _expected_types(schema, action_space)
    wrong = {c: kind for c, (accepts, kind) in expected.items() if not accepts(present[c])}
    if wrong:
        found = {c: f"{present[c].simpleString()} (must be {kind})" for c, kind in wrong.items()}
        raise TimestepContractError(
            day, [Violation(SCHEMA_RULE, tuple(wrong), f"wrong type: {found}", 0, days=(day,))]
        )


TypeTest = tuple[Callable[[T.DataType], bool], str]


def _is_integer(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.IntegralType)


def _is_numeric(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.NumericType)


def _is_env_id(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.IntegralType | T.StringType)


def _is_timestep(data_type: T.DataType) -> bool:
    return isinstance(data_type, T.IntegralType | T.TimestampType | T.TimestampNTZType)


def _is_action(action_space: ActionSpace) -> Callable[[T.DataType], bool]:
    def accepts(data_type: T.DataType) -> bool:
        if isinstance(data_type, T.ArrayType) and not action_space.is_discrete:
            return _is_numeric(data_type.elementType)
        return _is_numeric(data_type)

    return accepts


def _expected_types(schema: TimestepSchema, action_space: ActionSpace) -> dict[str, TypeTest]:
    """Each contract column's type test and what it accepts, in words."""
    expected: dict[str, TypeTest] = {c: (_is_env_id, "an integer or text id") for c in schema.env_id_columns}
    expected[schema.timestep_column] = (_is_timestep, "an integer or a timestamp")
    if not schema.single_step:
        expected[schema.step_type_column] = (_is_integer, "an integer")
        expected[schema.discount_column] = (_is_numeric, "a number")
    for column in (*schema.observation_columns, schema.reward_column, schema.action_prob_column):
        if column:
            expected[column] = (_is_numeric, "a number")
    action_kind = "a number" if action_space.is_discrete else "a number or an array of numbers"
    expected[schema.action_column] = (_is_action(action_space), action_kind)
    return expected


def check_same_types(frames: Mapping[str, DataFrame]) -> None:
    """Refuses a column whose contract type differs between days (e.g. ids that became timestamps).

    `frames`: contract frames by day, including the stored earlier days. Parquet partitions of
    one asset must agree on their types, or every later read of them fails.
    """
    first_day, first = next(iter(frames.items()))
    types = {f.name: f.dataType for f in first.schema.fields}
    for day, frame in frames.items():
        changed = {
            f.name: f"{types[f.name].simpleString()} on {first_day}, {f.dataType.simpleString()} on {day}"
            for f in frame.schema.fields
            if f.name in types and f.dataType.simpleString() != types[f.name].simpleString()
        }
        if changed:
            violation = Violation(
                SCHEMA_RULE, tuple(changed), f"type changes between days: {changed}", 0, days=(day,)
            )
            raise TimestepContractError(day, [violation])


def _not_finite(column: str) -> Column:
    value = F.col(column)
    return value.isNull() | F.isnan(value) | value.isin(float("inf"), float("-inf"))


def _beyond(column: str, bound: float) -> Column:
    """|value| above `bound` but finite (NaN and ±inf are the finite rules' to report)."""
    size = F.abs(F.col(column))
    return (size > bound) & (size < float("inf"))


def _negative(column: str, data_type: T.DataType) -> Column:
    """An id below zero; a timestamp before 1970-01-01 (UTC)."""
    if isinstance(data_type, T.TimestampType | T.TimestampNTZType):
        return F.unix_micros(F.col(column).cast(T.TimestampType())) < 0
    return F.col(column) < 0


def contract_rules(
    schema: TimestepSchema, action_space: ActionSpace, timestep_type: T.DataType | None = None
) -> list[Rule]:
    """Row-level rules of the contract, on a frame produced by `to_contract` and `with_history`.

    `timestep_type`: the type of the frame's timestep id column (integer when not given).
    """
    timestep = schema.timestep_column
    bound = schema.max_abs_value
    rules = [
        Rule(
            "env_id_not_null",
            schema.env_id_columns,
            "env ids must not be null",
            reduce(operator.or_, [F.col(c).isNull() for c in schema.env_id_columns]),
        ),
        Rule(
            "timestep_id_not_null",
            (timestep,),
            "timestep ids must not be null",
            F.col(timestep).isNull(),
        ),
        Rule(
            "timestep_id_not_negative",
            (timestep,),
            "timestep ids must not be negative (timestamps: not before 1970-01-01)",
            _negative(timestep, timestep_type or T.LongType()),
        ),
        *[
            Rule("finite_observation", (c,), "must be a finite number", _not_finite(c))
            for c in schema.observation_columns
        ],
        Rule("finite_reward", ("reward",), "must be a finite number", _not_finite("reward")),
        *[
            Rule(
                "bounded_value",
                (c,),
                f"|value| must be at most {bound:g} (TimestepSchema.max_abs_value)",
                _beyond(c, bound),
            )
            for c in (*schema.observation_columns, "reward")
        ],
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
                "after a LAST (earlier that day or as the last row of an earlier day), an "
                "environment's next timestep must be a FIRST",
                (F.col(PREVIOUS_STEP_TYPE) == LAST) & (F.col("step_type") != FIRST),
                (PREVIOUS_STEP_TYPE,),
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
    rules += [
        Rule(
            "increasing_across_days",
            (timestep,),
            "an environment's timestep ids must keep increasing across midnight: each must be "
            "larger than every id of that environment on the earlier days (ids that restart "
            "every day would pair yesterday's last step with today's first)",
            (F.col(timestep) <= F.col(EARLIER_LAST_TIMESTEP)) & F.col(EARLIER_DAY).isNull(),
            (EARLIER_LAST_TIMESTEP,),
        ),
        Rule(
            "unique_across_days",
            (*schema.env_id_columns, timestep),
            "each (env id, timestep id) must belong to one day only: this one is already stored "
            "on an earlier day (a day folder that holds the previous day's rows?)",
            F.col(EARLIER_DAY).isNotNull(),
            (EARLIER_DAY,),
        ),
    ]
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
        "timestep_id_not_negative",
        "finite_observation",
        "finite_reward",
        "bounded_value",
        "action_in_spec",
    ]
    if not schema.single_step:
        row_rules += ["known_step_type", "episode_order", "discount_in_unit_interval"]
    if schema.action_prob_column:
        row_rules.append("propensity_in_unit_interval")
    row_rules += ["increasing_across_days", "unique_across_days"]
    return [SCHEMA_RULE, *row_rules, UNIQUE_RULE]


def with_history(
    timesteps: DataFrame, schema: TimestepSchema, earlier: DataFrame | None, earlier_days: int
) -> DataFrame:
    """`timesteps` with what each row is compared with on its own day and on the earlier days.

    Args:
      timesteps: contract rows of the days being validated (one or a range).
      earlier: stored contract rows of the `earlier_days` days before the first of them, or None.
      earlier_days: how many days before its own each day is compared with.

    Returns:
      The rows of `timesteps` with `PREVIOUS_STEP_TYPE`, `EARLIER_LAST_TIMESTEP` and
      `EARLIER_DAY`. Rows of a day d only ever see days d-earlier_days .. d-1, whether those
      were stored by earlier runs or are validated in this run.
    """
    env, timestep = list(schema.env_id_columns), schema.timestep_column
    rows = timesteps.withColumn(_CURRENT, F.lit(True))
    if earlier is not None:
        history = earlier.select(*env, timestep, "step_type", PARTITION_COLUMN)
        rows = rows.unionByName(history.withColumn(_CURRENT, F.lit(False)), allowMissingColumns=True)
    rows = rows.withColumn(_DAY_NUMBER, F.unix_date(F.to_date(PARTITION_COLUMN)))
    earlier_rows = Window.partitionBy(*env).orderBy(_DAY_NUMBER).rangeBetween(-earlier_days, -1)
    same_key_earlier = Window.partitionBy(*env, timestep).orderBy(_DAY_NUMBER).rangeBetween(-earlier_days, -1)
    same_day = Window.partitionBy(PARTITION_COLUMN, *env).orderBy(timestep)
    previous = (
        F.lit(None).cast(T.IntegerType())
        if schema.single_step
        else F.coalesce(F.lag("step_type").over(same_day), F.max_by("step_type", timestep).over(earlier_rows))
    )
    return (
        rows.select(
            "*",
            previous.alias(PREVIOUS_STEP_TYPE),
            F.max(timestep).over(earlier_rows).alias(EARLIER_LAST_TIMESTEP),
            F.max(PARTITION_COLUMN).over(same_key_earlier).alias(EARLIER_DAY),
        )
        .filter(F.col(_CURRENT))
        .drop(_CURRENT, _DAY_NUMBER)
    )


def find_violations(
    timesteps: DataFrame,
    schema: TimestepSchema,
    action_space: ActionSpace,
    earlier: DataFrame | None = None,
    earlier_days: int = 1,
) -> list[Violation]:
    """Checks every rule plus unique (day, env id, timestep id); returns the rules that fail.

    Row rules run in one aggregate pass over `with_history(...)`; uniqueness within a day is
    one more pass. Only a failing rule costs more: its sample rows and the days it failed on.
    """
    columns = timesteps.columns
    rows = with_history(timesteps, schema, earlier, earlier_days)
    rules = contract_rules(schema, action_space, timesteps.schema[schema.timestep_column].dataType)
    counts = rows.agg(
        *[F.sum(F.when(rule.offending, 1).otherwise(0)).alias(f"r{i}") for i, rule in enumerate(rules)]
    ).first()
    violations = []
    for i, rule in enumerate(rules):
        offending = counts[f"r{i}"] or 0
        if offending:
            bad = rows.filter(rule.offending)
            sample = bad.select(*columns, *rule.context).limit(SAMPLE_ROWS).collect()
            violations.append(
                Violation(
                    rule.name,
                    rule.columns,
                    rule.description,
                    offending,
                    [r.asDict() for r in sample],
                    _days(bad),
                )
            )
    keys = [PARTITION_COLUMN, *schema.env_id_columns, schema.timestep_column]
    duplicates = timesteps.groupBy(*keys).count().filter(F.col("count") > 1)
    samples = [r.asDict() for r in duplicates.limit(SAMPLE_ROWS).collect()]
    if samples:
        violations.append(
            Violation(
                UNIQUE_RULE,
                tuple(keys[1:]),
                "each (env id, timestep id) must appear once in a day",
                duplicates.count(),
                samples,
                _days(duplicates),
            )
        )
    return violations


def _days(offending: DataFrame) -> tuple[str, ...]:
    """The days holding offending rows: at most one row per day reaches the driver."""
    found = offending.select(PARTITION_COLUMN).distinct().collect()
    return tuple(sorted(r[PARTITION_COLUMN] for r in found))

"""The application contract: everything a user declares to get a daily RL pipeline.

An application names its timestep schema, its action space, its trajectory settings, the agent
(a configured `TFAgentsResource`) and where its data comes from. `build_definitions(app)` turns
it into Dagster definitions; nothing else is required.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from tf_agents.policies.tf_policy import TFPolicy
    from tf_agents.specs import BoundedTensorSpec

    from rl_bakery_dagster.resources.agents import TFAgentsResource
    from rl_bakery_dagster.warehouse import DayRead

FIRST, MID, LAST = 0, 1, 2
"""TF-Agents `StepType` values, as stored in the `step_type` column."""

SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def require_safe_name(value: str, what: str) -> str:
    """Refuse names that become path segments unless they are plain identifiers."""
    if not SAFE_NAME.match(value):
        raise ValueError(f"{what} {value!r} must match {SAFE_NAME.pattern} (it becomes a folder name)")
    return value


@dataclass(frozen=True)
class ActionSpace:
    """The action the product takes: `discrete` (ids 0..num_actions-1) or `continuous` (a box)."""

    kind: Literal["discrete", "continuous"]
    num_actions: int = 0
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "discrete" and self.num_actions < 2:
            raise ValueError("a discrete action space needs num_actions >= 2")
        if self.kind == "continuous" and (not self.low or len(self.low) != len(self.high)):
            raise ValueError("a continuous action space needs low and high of the same length")

    @property
    def is_discrete(self) -> bool:
        return self.kind == "discrete"

    @property
    def size(self) -> int:
        """Numbers per action: 1 for a discrete id, the box dimension otherwise."""
        return 1 if self.is_discrete else len(self.low)

    def tensor_spec(self) -> BoundedTensorSpec:
        import tensorflow as tf
        from tf_agents.specs import tensor_spec

        if self.is_discrete:
            return tensor_spec.BoundedTensorSpec(
                (), tf.int64, minimum=0, maximum=self.num_actions - 1, name="action"
            )
        return tensor_spec.BoundedTensorSpec(
            (self.size,), tf.float32, minimum=list(self.low), maximum=list(self.high), name="action"
        )


DEFAULT_MAX_ABS_VALUE = 1e6
"""Observations and rewards above this magnitude are refused. Measured (300 train steps, default
agents): observations and rewards of scale 1e9 still train finitely with DQN and DDPG, scale 1e12
overflows DQN's loss at step 2 (squares of the TD error and in Adam's moments pass float32's
3.4e38). 1e6 keeps three orders of margin, keeps every integer up to it exact in float32, and
admits realistic features (counts, seconds in a day, prices in cents up to 10,000.00)."""


@dataclass(frozen=True)
class TimestepSchema:
    """Column names of the timestep contract (DESIGN.md) for one application."""

    env_id_columns: tuple[str, ...]
    timestep_column: str
    observation_columns: tuple[str, ...]
    action_column: str = "action"
    reward_column: str = "reward"
    discount_column: str = "discount"
    step_type_column: str = "step_type"
    action_prob_column: str | None = None
    policy_version_column: str | None = None
    single_step: bool = False
    """Bandit logs: every row is its own one-step episode, so step type and discount are not read."""
    day_time_zone: str = "UTC"
    """Time zone of the warehouse's day folders: a timestamp timestep of day d must lie in
    [d 00:00, d+1 00:00) there (a timestamp without a zone is read as wall-clock time there)."""
    max_abs_value: float = DEFAULT_MAX_ABS_VALUE
    """Largest |value| accepted in an observation or reward column (docs/RELIABILITY.md)."""

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(self.day_time_zone)
        except (KeyError, ValueError) as error:
            raise ValueError(f"day_time_zone {self.day_time_zone!r} is not an IANA time zone") from error
        if not self.env_id_columns:
            raise ValueError("the timestep schema needs at least one env id column")
        if not self.observation_columns:
            raise ValueError("the timestep schema needs at least one observation column")
        if not 0 < self.max_abs_value < 3.4e38:
            raise ValueError(f"max_abs_value {self.max_abs_value} must be positive and below float32's max")

    @property
    def observation_size(self) -> int:
        return len(self.observation_columns)

    def observation_spec(self) -> BoundedTensorSpec:
        import tensorflow as tf
        from tf_agents.specs import tensor_spec

        return tensor_spec.TensorSpec((self.observation_size,), tf.float32, name="observation")


@dataclass(frozen=True)
class TrajectorySettings:
    """How daily timesteps become training data.

    `n_step`: transitions hold n_step+1 consecutive timesteps. `lookback_days`: earlier timestep
    partitions read so that windows which start before midnight are complete. `lag_days` and
    `window_days`: `agent_checkpoint[d]` trains on trajectories[d-lag-window+1 .. d-lag].
    """

    n_step: int = 1
    lookback_days: int = 1
    lag_days: int = 0
    window_days: int = 1

    def __post_init__(self) -> None:
        if self.n_step < 1 or self.lookback_days < 0 or self.lag_days < 0 or self.window_days < 1:
            raise ValueError(f"invalid trajectory settings: {self}")


class DailyTable(Protocol):
    """A table with one slice per day."""

    def read(self, spark: SparkSession, day: str) -> DataFrame:
        """Return day `day`'s rows."""
        ...


class Warehouse(Protocol):
    """Where the product's daily logs live."""

    def read(self, spark: SparkSession, day: str) -> DataFrame:
        """Return day `day`'s logs in the timestep contract."""
        ...

    def complete_days(self) -> Sequence[str]:
        """Days (YYYY-MM-DD) whose logs are complete; the sensor requests runs for these."""
        ...


@runtime_checkable
class VersionedWarehouse(Warehouse, Protocol):
    """A warehouse that can say what it read and fingerprint its days, so late changes show."""

    def read_recorded(self, spark: SparkSession, day: str) -> DayRead:
        """Day `day`'s rows and the record of its files (count, bytes, rows, fingerprint)."""
        ...

    def day_versions(self, days: Sequence[str] | None = None) -> Mapping[str, str]:
        """Complete days (of `days`, or all) → a fingerprint that changes when the day's files change."""
        ...


@dataclass(frozen=True)
class ParquetWarehouse:
    """A warehouse of `dt=YYYY-MM-DD/` Parquet folders; a day is complete once `_SUCCESS` exists.

    `uri` is anything Spark and `pyarrow.fs` can open: a local folder, `s3://`, `gs://`, `hdfs://`.
    Exactly the data files of a day folder are read (`rl_bakery_dagster/warehouse.py`);
    `subfolders="read"` reads files in subfolders of a day folder as more rows of that day
    (by default a subfolder is refused, naming it).
    """

    uri: str
    subfolders: Literal["refuse", "read"] = "refuse"

    def read(self, spark: SparkSession, day: str) -> DataFrame:
        return self.read_recorded(spark, day).frame

    def read_recorded(self, spark: SparkSession, day: str) -> DayRead:
        from rl_bakery_dagster.warehouse import read_day

        return read_day(spark, self.uri, day, self.subfolders)

    def day_versions(self, days: Sequence[str] | None = None) -> dict[str, str]:
        from rl_bakery_dagster.warehouse import list_day

        complete = self.complete_days()
        wanted = complete if days is None else [d for d in days if d in set(complete)]
        return {day: list_day(self.uri, day, self.subfolders).fingerprint for day in wanted}

    def complete_days(self) -> list[str]:
        from pyarrow import fs

        filesystem, root = fs.FileSystem.from_uri(self.uri)
        listing = filesystem.get_file_info(fs.FileSelector(root, allow_not_found=True))
        days = []
        for folder in listing:
            if folder.type != fs.FileType.Directory or not folder.base_name.startswith("dt="):
                continue
            marker = filesystem.get_file_info(f"{folder.path}/_SUCCESS")
            if marker.type == fs.FileType.File:
                days.append(folder.base_name.removeprefix("dt="))
        return sorted(days)


@dataclass(frozen=True)
class EvaluationResult:
    """Returns of complete episodes played by a policy in a simulator."""

    mean_return: float
    std_return: float
    episodes: int


PolicyEvaluator = Callable[["TFPolicy", int], EvaluationResult]
"""Plays the given (greedy) policy in a simulator with the given seed."""


@dataclass(frozen=True)
class Application:
    """One daily RL or bandit application.

    Args:
      name: identifier, used in asset groups and storage paths.
      start_date: first day (YYYY-MM-DD, UTC) of every daily partition.
      schema: column names of the timestep contract.
      action_space: the actions the product can take.
      agent: the TF-Agents agent and its hyper-parameters (Dagster resource config).
      warehouse: where the daily logs come from.
      trajectory: n-step, lookback, lag and training window.
      evaluator: optional simulator that plays the greedy policy after each training day.
      population: optional table of who needs an action on a day (env ids and observation
        columns); with it, `action_batch[d]` scores every row with the policy of day d.
      require_complete_days: `timesteps[d]` refuses day d unless `warehouse.complete_days()`
        lists it (for `ParquetWarehouse`, `dt=<d>/_SUCCESS` exists), on every launch path. Set
        False only for a warehouse that writes no completion markers.
      reward_range: (low, high) that every reward lies in, e.g. (0, 1) for clicks; the
        deployment gate's finite-sample intervals rely on it (a bandit's evaluation fails with a
        sentence if a logged reward falls outside it).
    """

    name: str
    start_date: str
    schema: TimestepSchema
    action_space: ActionSpace
    agent: TFAgentsResource
    warehouse: Warehouse
    trajectory: TrajectorySettings = field(default_factory=TrajectorySettings)
    evaluator: PolicyEvaluator | None = None
    population: DailyTable | None = None
    require_complete_days: bool = True
    reward_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        require_safe_name(self.name, "application name")
        if not (len(self.reward_range) == 2 and float(self.reward_range[0]) < float(self.reward_range[1])):
            raise ValueError(
                f"{self.name}: reward_range must be (low, high) with low < high, got {self.reward_range}"
            )
        if self.is_bandit != self.schema.single_step:
            raise ValueError(
                f"{self.name}: agent {self.agent.algorithm!r} needs TimestepSchema(single_step="
                f"{self.is_bandit}): bandit agents learn from single-step rows, RL agents from episodes"
            )
        if self.is_bandit and not self.schema.action_prob_column:
            raise ValueError(
                f"{self.name}: a bandit application must log the propensity of each action "
                "(TimestepSchema.action_prob_column) so that new policies can be evaluated off-policy"
            )
        if self.schema.action_prob_column and not self.action_space.is_discrete:
            raise ValueError(
                f"{self.name}: continuous actions have a logged density, not a probability in (0, 1]; "
                "leave TimestepSchema.action_prob_column unset: only model-based off-policy estimates "
                "apply to continuous actions"
            )
        if self.is_bandit and self.trajectory.lag_days < 1:
            raise ValueError(
                f"{self.name}: a bandit application trains with TrajectorySettings(lag_days>=1), so that "
                "policy_evaluation[d] judges agent_checkpoint[d] on day d's logs, which it never saw"
            )
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", self.start_date):
            raise ValueError(f"start_date {self.start_date!r} must be YYYY-MM-DD")

    @property
    def is_bandit(self) -> bool:
        return self.agent.is_bandit

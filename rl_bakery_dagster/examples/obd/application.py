"""The Open Bandit Dataset as a daily contextual bandit: which fashion item of a campaign to show a user.

Warehouse rows are ZOZOTOWN's logged impressions (`data.py`): the raw hashed user features,
one user-item affinity per item of the campaign (80 in `all`, 34 in `men`, 46 in `women`), the
slot position, the item shown, the click and the logging policy's propensity. The context is built
on Spark when the warehouse is read: affinities as they are, the position one-hot, and each hashed
categorical user feature one-hot over `HASH_BUCKETS` buckets of
its hash (the hashing trick: no vocabulary to keep in step with the data).

`item_context.csv` (per-item features) is read to check the campaign's item count, but not fed to
the agent: its reward network has one output per item, which already learns each item's own level,
and a feature that is constant per item adds nothing to a per-item output; item features would help
an agent with per-arm features (TF-Agents' per-arm bandits), which this example does not use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rl_bakery_dagster.application import (
    ActionSpace,
    Application,
    ParquetWarehouse,
    TimestepSchema,
    TrajectorySettings,
)
from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.resources.agents import TFAgentsResource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

START_DATE = "2019-11-24"
ITEMS = 80
"""The `all` campaign's defaults (the sample's); `obd_application` takes any campaign's."""
POSITIONS = 3
USER_FEATURES = 4
HASH_BUCKETS = 8
POSITION_COLUMNS = tuple(f"position_{p}" for p in range(1, POSITIONS + 1))
USER_FEATURE_COLUMNS = tuple(
    f"user_feature_{k}_bucket_{b}" for k in range(USER_FEATURES) for b in range(HASH_BUCKETS)
)


def affinity_columns(items: int) -> tuple[str, ...]:
    return tuple(f"user_item_affinity_{i}" for i in range(items))


def observation_columns(items: int) -> tuple[str, ...]:
    """The context: the user's affinity to each item, the slot position, the hashed user features."""
    return affinity_columns(items) + POSITION_COLUMNS + USER_FEATURE_COLUMNS


AFFINITY_COLUMNS = affinity_columns(ITEMS)
OBSERVATION_COLUMNS = observation_columns(ITEMS)


@dataclass(frozen=True)
class OpenBanditWarehouse:
    """Raw OBD impressions in `dt=` folders, read with the context features built on Spark."""

    uri: str
    items: int = ITEMS

    def read(self, spark: SparkSession, day: str) -> DataFrame:
        from pyspark.sql import functions as F

        raw = ParquetWarehouse(self.uri).read(spark, day)
        positions = [
            (F.col("position") == p).cast("float").alias(f"position_{p}") for p in range(1, POSITIONS + 1)
        ]
        buckets = [
            (F.pmod(F.xxhash64(f"user_feature_{k}"), F.lit(HASH_BUCKETS)) == b)
            .cast("float")
            .alias(f"user_feature_{k}_bucket_{b}")
            for k in range(USER_FEATURES)
            for b in range(HASH_BUCKETS)
        ]
        return raw.select(
            "impression_id",
            "ts",
            *affinity_columns(self.items),
            *positions,
            *buckets,
            F.col("item_id").alias("action"),
            F.col("click").alias("reward"),
            F.col("propensity_score").alias("action_prob"),
            F.col("logging_policy").alias("policy_version"),
        )

    def complete_days(self) -> list[str]:
        return ParquetWarehouse(self.uri).complete_days()


def warehouse_uri() -> str:
    """`OBD_WAREHOUSE_URI`, default `<home>/warehouse/obd`."""
    return os.environ.get("OBD_WAREHOUSE_URI", str(bakery_home() / "warehouse" / "obd"))


def obd_application(
    agent: TFAgentsResource | None = None,
    warehouse: str | None = None,
    *,
    items: int = ITEMS,
    start_date: str = START_DATE,
) -> Application:
    """The daily bandit for one campaign: `items` and `start_date` come from its logs (`data.py`)."""
    return Application(
        name="obd",
        start_date=start_date,
        schema=TimestepSchema(
            env_id_columns=("impression_id",),
            timestep_column="ts",
            observation_columns=observation_columns(items),
            action_prob_column="action_prob",
            policy_version_column="policy_version",
            single_step=True,
        ),
        action_space=ActionSpace("discrete", num_actions=items),
        agent=agent
        or TFAgentsResource(
            algorithm="neural_epsilon_greedy",
            fc_layer_params=[64],
            learning_rate=1e-3,
            batch_size=256,
            train_steps_per_day=300,
            epsilon_greedy=0.1,
        ),
        warehouse=OpenBanditWarehouse(warehouse or warehouse_uri(), items),
        # every earlier day stays in the training window (clicks are rare: 0.4 %); lag 1 keeps
        # day d unseen for policy_evaluation[d]
        trajectory=TrajectorySettings(lookback_days=0, lag_days=1, window_days=7),
        reward_range=(0.0, 1.0),  # clicks
    )

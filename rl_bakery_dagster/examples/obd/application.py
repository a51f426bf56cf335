"""The Open Bandit Dataset as a daily contextual bandit: which of 80 fashion items to show a user.

Warehouse rows are ZOZOTOWN's logged impressions (`data.py`): the raw hashed user features,
80 user-item affinities, the slot position, the item shown, the click and the logging policy's
propensity. The context is built on Spark when the warehouse is read: affinities as they are, the
position one-hot, and each hashed categorical user feature one-hot over `HASH_BUCKETS` buckets of
its hash (the hashing trick: no vocabulary to keep in step with the data).
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
POSITIONS = 3
USER_FEATURES = 4
HASH_BUCKETS = 8
AFFINITY_COLUMNS = tuple(f"user_item_affinity_{i}" for i in range(ITEMS))
POSITION_COLUMNS = tuple(f"position_{p}" for p in range(1, POSITIONS + 1))
USER_FEATURE_COLUMNS = tuple(
    f"user_feature_{k}_bucket_{b}" for k in range(USER_FEATURES) for b in range(HASH_BUCKETS)
)
OBSERVATION_COLUMNS = AFFINITY_COLUMNS + POSITION_COLUMNS + USER_FEATURE_COLUMNS


@dataclass(frozen=True)
class OpenBanditWarehouse:
    """Raw OBD impressions in `dt=` folders, read with the context features built on Spark."""

    uri: str

    def read(self, spark: SparkSession, day: str) -> DataFrame:
        from pyspark.sql import functions as F

        raw = ParquetWarehouse(self.uri).read(spark, day)
        positions = [(F.col("position") == p).cast("float").alias(f"position_{p}") for p in range(1, 4)]
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
            *AFFINITY_COLUMNS,
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


def obd_application(agent: TFAgentsResource | None = None, warehouse: str | None = None) -> Application:
    return Application(
        name="obd",
        start_date=START_DATE,
        schema=TimestepSchema(
            env_id_columns=("impression_id",),
            timestep_column="ts",
            observation_columns=OBSERVATION_COLUMNS,
            action_prob_column="action_prob",
            policy_version_column="policy_version",
            single_step=True,
        ),
        action_space=ActionSpace("discrete", num_actions=ITEMS),
        agent=agent
        or TFAgentsResource(
            algorithm="neural_epsilon_greedy",
            fc_layer_params=[64],
            learning_rate=1e-3,
            batch_size=256,
            train_steps_per_day=300,
            epsilon_greedy=0.1,
        ),
        warehouse=OpenBanditWarehouse(warehouse or warehouse_uri()),
        # every earlier day stays in the training window (clicks are rare: 0.4 %); lag 1 keeps
        # day d unseen for policy_evaluation[d]
        trajectory=TrajectorySettings(lookback_days=0, lag_days=1, window_days=7),
    )

"""A canary: the candidate played for one day to a share of users, then judged on-policy against the rest.

Off-policy estimates cannot say how a candidate acts where it departs from a nearly greedy logging
policy (benchmarks/LEARNING.md, issue 14): its importance weights vanish there. A canary gets that
evidence directly. When the gate has not enough evidence, `action_batch` plays the candidate to a
stable share of users (:func:`canary_users`: a hash of the env ids and the day) and the deployed
policy to the others, and every logged row names the policy that chose it (the schema's
`policy_version_column`). The next day's `policy_evaluation` compares the two arms on the episodes
each played whole (:func:`canary_episode_returns`): the mean observed return per episode of the
canary's episodes minus the others', with a Poisson bootstrap over episodes, and the same three-way
decision and tolerance as the off-policy gate.

Returns are undiscounted, as the product observed them, and cut at the day's end exactly as the
off-policy comparison cuts them (an episode counts from its FIRST step on the day, with the rewards
observed by midnight), so both arms lose the same tail. An episode with rows of both arms (the product
switched policy mid-episode) belongs to neither and is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

CANARY_BUCKETS = 1_000_000
"""Resolution of the canary share: a user is in the canary when its hash bucket is below share x this."""


def canary_users(env_id_columns: Sequence[str], share: float, day: str) -> Column:
    """True for the users in the canary of `day`: a stable hash of the env ids salted with the day, so a
    user's arm is the same in every run of the day and a fresh draw each day (a canary does not follow
    the same users from candidate to candidate)."""
    from pyspark.sql import functions as F

    hashed = F.xxhash64(*[F.col(c) for c in env_id_columns], F.lit(f"canary:{day}"))
    return F.pmod(hashed, F.lit(CANARY_BUCKETS)) < F.lit(round(share * CANARY_BUCKETS))


def canary_episode_returns(
    decisions: DataFrame, episode_columns: Sequence[str], canary_version: str
) -> DataFrame:
    """One row per episode played whole by one arm: `episode_columns`, `canary_return` and `canary`
    (1 for the canary's, 0 otherwise), `other_return` and `other` (the same for the other arm).

    `decisions` are `logged_decisions` with their `policy_version`: one row per decision with the
    reward that followed it. An episode without a decision (its FIRST step is the day's last row)
    has no observed return yet and is not a row."""
    from pyspark.sql import functions as F

    is_canary = (F.col("policy_version") == F.lit(canary_version)).cast("int")
    episodes = decisions.groupBy(*episode_columns).agg(
        F.sum(F.col("reward").cast("double")).alias("episode_return"),
        F.min(is_canary).alias("all_canary"),
        F.max(is_canary).alias("any_canary"),
    )
    whole = episodes.filter(F.col("all_canary") == F.col("any_canary"))
    canary = F.col("all_canary").cast("double")
    return whole.select(
        *episode_columns,
        (canary * F.col("episode_return")).alias("canary_return"),
        canary.alias("canary"),
        ((1.0 - canary) * F.col("episode_return")).alias("other_return"),
        (1.0 - canary).alias("other"),
    )


def canary_replicates(
    decisions: DataFrame, episode_columns: Sequence[str], canary_version: str, replicates: int, seed: int
) -> dict[str, np.ndarray]:
    """Per bootstrap replicate (index 0: every episode once): the number of episodes of each arm
    (`canary`, `other`) and their mean observed returns (`canary_mean`, `other_mean`; NaN for an arm
    without episodes). One grouped sum over episodes reaches the driver: R + 1 rows."""
    from rl_bakery_dagster.evaluation.sequential import spark_start_sums

    rows = canary_episode_returns(decisions, episode_columns, canary_version)
    columns = ["canary_return", "canary", "other_return", "other"]
    _, sums = spark_start_sums(rows, episode_columns, columns, replicates, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        canary_mean = np.where(sums["canary"] > 0, sums["canary_return"] / sums["canary"], np.nan)
        other_mean = np.where(sums["other"] > 0, sums["other_return"] / sums["other"], np.nan)
    return {
        "canary": sums["canary"],
        "other": sums["other"],
        "canary_mean": canary_mean,
        "other_mean": other_mean,
    }

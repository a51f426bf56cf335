"""Sequential off-policy estimators (Thomas & Brunskill 2016) from per-decision sums over episodes.

A logged episode ``i`` is a sequence of decisions ``t = 0 .. T_i - 1``: state ``s_t``, logged action
``a_t`` with logged propensity ``b_t = pi_b(a_t | s_t)``, and the reward ``r_t`` that followed it. For a
target policy ``pi_e`` the per-step ratio is ``c_t = pi_e(a_t | s_t) / b_t`` and the cumulative weight
``rho_t = c_0 ... c_t``; after an episode ends it keeps its last weight and earns nothing (an absorbing
state), so it stays in every later normaliser. With a model ``q_t = Q(s_t, a_t)`` and
``v_t = sum_a pi_e(a | s_t) Q(s_t, a)`` (the candidate's own Q-network):

* ``pdis``     ``sum_t g^t sum_i rho_t r_t / n``: per-decision importance sampling, unbiased, but its
  weights are products over the whole episode, so over long episodes a few episodes carry everything;
* ``pdwis``    ``sum_t g^t sum_i rho_t r_t / sum_i rho_t``: per-decision *weighted* IS, normalised at
  each step: biased, consistent, and bounded by the largest observed return;
* ``wdr``      ``pdwis - sum_t g^t sum_i (w_t q_t - w_{t-1} v_t)`` with ``w_t = rho_t / sum_j rho_t^j``
  and ``w_{-1} = 1/n``: weighted doubly robust. With an exact model and deterministic transitions it is
  exactly ``mean_i V(s_0)``; with a poor model it falls back towards ``pdwis``;
* ``logging``  ``sum_t g^t sum_i r_t / n``: the logging policy's observed discounted return per episode.

Every estimator is a function of a few sums per step ``t`` over episodes (:class:`EpisodeSums`),
computed on Spark (:func:`spark_episode_sums`: cumulative weights by a window over each episode, then
one grouped sum) so that only ``O(replicates x horizon)`` numbers reach the driver. The interval is a
**Poisson bootstrap over episodes**: each replicate gives each episode a Poisson(1) weight drawn from
a hash of its id (so every row of an episode shares it), and all sums are linear in those weights, so
each replicate is just one more group of the same sums. The paired difference against the logging
policy is taken replicate by replicate, which keeps the shared episodes' noise out of it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

SEQUENTIAL_ESTIMATORS = ("logging", "pdis", "pdwis", "wdr")

POISSON_ONE_CDF = tuple(sum(math.exp(-1.0) / math.factorial(j) for j in range(k + 1)) for k in range(16))
"""P(K <= k) for K ~ Poisson(1), k = 0..15: a uniform u maps to K = #{k : u >= cdf_k}."""


@dataclass(frozen=True)
class EpisodeSums:
    """Per-step sums over episodes, one row per bootstrap replicate: arrays of shape [R, T].

    Replicate 0 weighs every episode 1 (the point estimate). ``rho*`` sums run over episodes still
    running at step t; ``ended_rho[:, t]`` sums the final weight of episodes whose last decision is t.
    """

    episodes: np.ndarray
    """[R]: sum of episode weights (the number of episodes in replicate 0)."""
    rho: np.ndarray
    rho_sq: np.ndarray
    rho_reward: np.ndarray
    rho_q: np.ndarray
    prev_rho_v: np.ndarray
    """sum of rho_{t-1} v_t (rho_{-1} = 1)."""
    reward: np.ndarray
    ended_rho: np.ndarray
    ended_rho_sq: np.ndarray

    @property
    def horizon(self) -> int:
        return int(self.rho.shape[1])


def normalisers(sums: EpisodeSums) -> tuple[np.ndarray, np.ndarray]:
    """``sum_i rho_t`` and ``sum_i rho_t^2`` over all episodes at each step, ended ones included: [R, T]."""
    ended_before = np.cumsum(sums.ended_rho, axis=1) - sums.ended_rho
    ended_sq_before = np.cumsum(sums.ended_rho_sq, axis=1) - sums.ended_rho_sq
    return sums.rho + ended_before, sums.rho_sq + ended_sq_before


def _discounts(gamma: float, horizon: int) -> np.ndarray:
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"the discount must lie in (0, 1], got {gamma}")
    return gamma ** np.arange(horizon, dtype=np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (no weight left: nothing to add)."""
    safe = np.where(denominator > 0.0, denominator, 1.0)
    return np.where(denominator > 0.0, numerator / safe, 0.0)


def logging_value(sums: EpisodeSums, gamma: float) -> np.ndarray:
    """Observed discounted return per episode of the logging policy: [R]."""
    return _ratio(sums.reward @ _discounts(gamma, sums.horizon), sums.episodes)


def pdis(sums: EpisodeSums, gamma: float) -> np.ndarray:
    """Per-decision importance sampling: [R]."""
    return _ratio(sums.rho_reward @ _discounts(gamma, sums.horizon), sums.episodes)


def pdwis(sums: EpisodeSums, gamma: float) -> np.ndarray:
    """Per-decision weighted importance sampling: [R]."""
    total, _ = normalisers(sums)
    return _ratio(sums.rho_reward, total) @ _discounts(gamma, sums.horizon)


def wdr(sums: EpisodeSums, gamma: float) -> np.ndarray:
    """Weighted doubly robust (Thomas & Brunskill 2016, eq. 13 with per-step normalised weights): [R]."""
    total, _ = normalisers(sums)
    previous = np.concatenate([sums.episodes[:, None], total[:, :-1]], axis=1)
    per_step = _ratio(sums.rho_reward - sums.rho_q, total) + _ratio(sums.prev_rho_v, previous)
    return per_step @ _discounts(gamma, sums.horizon)


def effective_episodes(sums: EpisodeSums) -> np.ndarray:
    """Kish's effective number of episodes at the last step, ``(sum rho)^2 / sum rho^2``: [R].

    The cumulative weights only spread out along an episode, so the last step is where the log is
    worth least; it equals the number of episodes when the candidate is the logging policy.
    """
    total, total_sq = normalisers(sums)
    if sums.horizon == 0:
        return np.zeros(len(sums.episodes))
    return _ratio(total[:, -1] ** 2, total_sq[:, -1])


def discounted_effective_episodes(sums: EpisodeSums, gamma: float) -> np.ndarray:
    """Kish's effective number of episodes at each step, averaged with the discount's weights: [R].

    The per-decision estimators weigh step ``t``'s reward by ``rho_t`` and the discounted value by
    ``gamma^t``, so each step's evidence is its own ``(sum rho_t)^2 / sum rho_t^2`` and it counts as
    much as the step counts in the value. :func:`effective_episodes` is the last step's alone: over
    200-step episodes at ``gamma = 0.99`` that step carries ``0.99^199 = 0.14`` of the first one's weight.
    """
    total, total_sq = normalisers(sums)
    if sums.horizon == 0:
        return np.zeros(len(sums.episodes))
    discounts = _discounts(gamma, sums.horizon)
    return (_ratio(total**2, total_sq) @ discounts) / discounts.sum()


def estimates(sums: EpisodeSums, gamma: float) -> dict[str, np.ndarray]:
    """Every estimator for every replicate, keyed as in :data:`SEQUENTIAL_ESTIMATORS`: [R] each."""
    return {
        "logging": logging_value(sums, gamma),
        "pdis": pdis(sums, gamma),
        "pdwis": pdwis(sums, gamma),
        "wdr": wdr(sums, gamma),
    }


def percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """The two-sided percentile bootstrap interval (NaN, NaN with fewer than two replicates)."""
    values = np.asarray(replicates, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return float(low), float(high)


def episode_sums(episodes: Sequence[dict[str, Any]], weights: np.ndarray | None = None) -> EpisodeSums:
    """The sums of in-memory episodes (for tests and small logs); ``weights``: [R, n] replicate weights.

    Each episode is a mapping of equal-length 1-D arrays ``ratio``, ``reward`` and, optionally,
    ``q`` and ``v`` (zero without a model).
    """
    n = len(episodes)
    weights = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64)
    horizon = max((len(e["ratio"]) for e in episodes), default=0)
    replicates = weights.shape[0]
    arrays = {f.name: np.zeros((replicates, horizon)) for f in fields(EpisodeSums) if f.name != "episodes"}
    for index, episode in enumerate(episodes):
        ratio = np.asarray(episode["ratio"], dtype=np.float64)
        length = len(ratio)
        if length == 0:
            raise ValueError(f"episode {index} has no decisions")
        reward = np.asarray(episode["reward"], dtype=np.float64)
        q = np.asarray(episode.get("q", np.zeros(length)), dtype=np.float64)
        v = np.asarray(episode.get("v", np.zeros(length)), dtype=np.float64)
        rho = np.cumprod(ratio)
        previous = np.concatenate([[1.0], rho[:-1]])
        k = weights[:, index : index + 1]
        span = slice(0, length)
        arrays["rho"][:, span] += k * rho
        arrays["rho_sq"][:, span] += k * rho**2
        arrays["rho_reward"][:, span] += k * rho * reward
        arrays["rho_q"][:, span] += k * rho * q
        arrays["prev_rho_v"][:, span] += k * previous * v
        arrays["reward"][:, span] += k * reward
        arrays["ended_rho"][:, length - 1] += k[:, 0] * rho[-1]
        arrays["ended_rho_sq"][:, length - 1] += k[:, 0] * rho[-1] ** 2
    return EpisodeSums(episodes=weights.sum(axis=1), **arrays)


def poisson_weight(uniform: Any) -> Any:
    """A Poisson(1) draw from a uniform in [0, 1) (a Spark column or a number), by inverting the CDF."""
    total = None
    for threshold in POISSON_ONE_CDF:
        step = (
            (uniform >= threshold).cast("double") if hasattr(uniform, "cast") else float(uniform >= threshold)
        )
        total = step if total is None else total + step
    return total


def with_replicates(
    frame: DataFrame, episode_columns: Sequence[str], replicates: int, seed: int
) -> DataFrame:
    """`frame` repeated once per replicate 0..R with `replicate` and its episode's Poisson(1) weight `k`
    (1 in replicate 0), drawn from a hash of the episode id: every estimator that uses the same seed
    resamples the same episodes, so their differences can be paired replicate by replicate."""
    from pyspark.sql import functions as F

    ids = [F.col(c) for c in episode_columns]
    replicate_ids = frame.sparkSession.range(replicates + 1).withColumnRenamed("id", "replicate")
    bits = F.xxhash64(*ids, F.col("replicate"), F.lit(seed)).bitwiseAND(F.lit((1 << 53) - 1))
    uniform = bits.cast("double") / F.lit(float(1 << 53))
    k = F.when(F.col("replicate") == 0, F.lit(1.0)).otherwise(poisson_weight(uniform))
    return frame.crossJoin(F.broadcast(replicate_ids)).withColumn("k", k)


def spark_start_sums(
    starts: DataFrame,
    episode_columns: Sequence[str],
    value_columns: Sequence[str],
    replicates: int,
    seed: int,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per replicate, the number of episodes and the sum of each per-episode value (one row per episode
    in `starts`): [R] arrays, so means and paired differences per replicate are ratios of these."""
    from pyspark.sql import functions as F

    rows = with_replicates(starts, episode_columns, replicates, seed)
    grouped = rows.groupBy("replicate").agg(
        F.sum("k").alias("episodes"), *[F.sum(F.col("k") * F.col(c)).alias(c) for c in value_columns]
    )
    episodes = np.zeros(replicates + 1)
    sums = {c: np.zeros(replicates + 1) for c in value_columns}
    for row in grouped.collect():
        b = int(row["replicate"])
        episodes[b] = float(row["episodes"] or 0.0)
        for c in value_columns:
            sums[c][b] = float(row[c] or 0.0)
    return episodes, sums


def spark_episode_sums(
    decisions: DataFrame,
    episode_columns: Sequence[str],
    *,
    replicates: int = 200,
    seed: int = 0,
    max_horizon: int = 10_000,
) -> EpisodeSums:
    """:class:`EpisodeSums` of a Spark frame of decisions, with ``replicates`` Poisson bootstrap replicates.

    ``decisions`` has one row per decision: the ``episode_columns`` (which identify an episode), ``t``
    (its step index, 0 = first decision), ``ratio`` (target / logged probability of the logged
    action), ``reward`` (what followed the action), ``q_logged`` and ``v_target`` (the model). The
    cumulative weights come from a window over each episode; the rows are then repeated once per
    replicate (weights from a hash of the episode id and the replicate, so no join), and one grouped
    sum over (replicate, t) is all that reaches the driver: at most ``(replicates + 1) x horizon`` rows.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if replicates < 0:
        raise ValueError(f"replicates must be non-negative, got {replicates}")
    ids = [F.col(c) for c in episode_columns]
    episode = Window.partitionBy(*ids).orderBy("t")
    running = episode.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    whole = Window.partitionBy(*ids)
    ratio = F.col("ratio").cast("double")
    zeros = F.sum((ratio <= 0.0).cast("int")).over(running)
    log_rho = F.sum(F.when(ratio > 0.0, F.log(ratio)).otherwise(F.lit(0.0))).over(running)
    weighted = decisions.select(
        *ids,
        F.col("t").cast("int").alias("t"),
        F.col("reward").cast("double").alias("reward"),
        F.col("q_logged").cast("double").alias("q"),
        F.col("v_target").cast("double").alias("v"),
        F.when(zeros > 0, F.lit(0.0)).otherwise(F.exp(log_rho)).alias("rho"),
        (F.col("t") == F.max("t").over(whole)).alias("is_last"),
    ).withColumn("prev_rho", F.coalesce(F.lag("rho").over(episode), F.lit(1.0)))
    rows = with_replicates(weighted, episode_columns, replicates, seed)
    kr = F.col("k") * F.col("rho")
    ended = F.when(F.col("is_last"), kr)
    grouped = rows.groupBy("replicate", "t").agg(
        F.sum(kr).alias("rho"),
        F.sum(kr * F.col("rho")).alias("rho_sq"),
        F.sum(kr * F.col("reward")).alias("rho_reward"),
        F.sum(kr * F.col("q")).alias("rho_q"),
        F.sum(F.col("k") * F.col("prev_rho") * F.col("v")).alias("prev_rho_v"),
        F.sum(F.col("k") * F.col("reward")).alias("reward"),
        F.sum(ended).alias("ended_rho"),
        F.sum(F.when(F.col("is_last"), kr * F.col("rho"))).alias("ended_rho_sq"),
        F.sum(F.when(F.col("is_last"), F.col("k"))).alias("episodes"),
    )
    horizon_row = decisions.agg(F.max("t").alias("last")).first()
    last = horizon_row["last"] if horizon_row else None
    horizon = 0 if last is None else int(last) + 1
    if horizon > max_horizon:
        raise ValueError(
            f"an episode has {horizon} decisions, more than max_horizon={max_horizon}: the per-step sums "
            "sent to the driver would grow with it; raise max_horizon or evaluate shorter episodes"
        )
    names = [f.name for f in fields(EpisodeSums) if f.name != "episodes"]
    arrays = {name: np.zeros((replicates + 1, horizon)) for name in names}
    episodes = np.zeros(replicates + 1)
    for row in grouped.collect():
        b, t = int(row["replicate"]), int(row["t"])
        for name in names:
            arrays[name][b, t] = float(row[name] or 0.0)
        episodes[b] += float(row["episodes"] or 0.0)
    return EpisodeSums(episodes=episodes, **arrays)

"""Off-policy estimators of a target policy's value from a contextual-bandit log, via sufficient statistics.

A logged row ``i`` has a context ``x_i``, the action ``a_i`` the logging policy ``pi_0`` took, its reward
``r_i`` and the logged propensity ``p_i = pi_0(a_i | x_i)``. To evaluate a target policy ``pi_e`` we also need
``pi_e(a_i | x_i)`` (the probability that the target policy takes the *logged* action) and, for the
model-based estimators, a reward model ``q_hat``: its prediction for the logged action
``q_i = q_hat(x_i, a_i)`` and its expected reward under the target policy
``v_i = sum_a pi_e(a | x_i) q_hat(x_i, a)``. With the importance weight ``w_i = pi_e(a_i | x_i) / p_i``:

* ``logging``: ``mean(r)``, the logging policy's observed value (the baseline the candidate must beat);
* ``ips``:     ``mean(w r)``, unbiased when the logging policy covers the target policy's actions;
* ``snips``:   ``sum(w r) / sum(w)``, self-normalised IPS: slightly biased, much lower variance when the
  weights are heavy-tailed, and invariant to adding a constant to every reward;
* ``dm``:      ``mean(v)``, the direct method: low variance, but exactly as biased as the reward model;
* ``dr``:      ``mean(v + w (r - q))``, doubly robust: unbiased if either the propensities or the model are
  right, and lower variance than IPS when the model is decent;
* ``dr_minus_logging``: ``mean(dr_i - r_i)``, the *paired* difference between the candidate (DR) and the
  logging policy on the same rows. The two estimates share their rows, so they are strongly correlated, and
  the paired interval is much narrower than comparing two separate intervals. The deployment gate uses it.

Why sufficient statistics: the log is large and lives on Spark. Every estimate and its standard error is a
function of a few sums over rows (``n``, ``sum w``, ``sum w^2``, ``sum w r``, ...), so a whole day is
evaluated with one Spark aggregation returning one row (:func:`spark_aggregations` and
:meth:`OPESums.from_row`), never by collecting the data. Sums also merge exactly
(:meth:`OPESums.merge`), so several days, or several partitions computed separately, combine losslessly.

Confidence intervals are normal approximations (central limit theorem) from the sample variances that the
sums determine, ``value +- z * std_error``; the ratio estimator SNIPS uses the delta method. They are
trustworthy when the effective sample size (:func:`effective_sample_size`) is large; with a few huge
importance weights they are too narrow, so watch ``effective_sample_size`` and ``max_weight``. DM's interval
only reflects the sampling of contexts, not the reward model's bias, so it is honest only if the model is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import Column

ESTIMATOR_NAMES = ("logging", "ips", "snips", "dm", "dr", "dr_minus_logging")
"""Keys of :func:`estimate`'s result (``dm`` and ``dr`` only when the sums include a reward model)."""

SPARK_ALIAS_PREFIX = "ope_"
"""Default prefix of the aggregate columns :func:`spark_aggregations` produces: ``ope_<OPESums field>``."""

N_INVALID_FIELD = "n_invalid"
"""Extra aggregate counting rows with a null/non-finite input or a probability out of range."""


@dataclass(frozen=True, slots=True)
class OPESums:
    """The sufficient statistics of every estimator: sums over logged rows, mergeable across partitions.

    Per row, ``w = target_prob / logged_prob``, ``dm = v``, ``dr = v + w (r - q)``. Without a reward model
    (``has_reward_model=False``) ``q = v = 0``, so ``dr`` degenerates to ``w r`` (IPS) and the paired
    difference ``dr_minus_logging`` becomes IPS minus logging: still unbiased, just noisier.
    """

    n: int
    sum_r: float
    sum_r_sq: float
    sum_w: float
    sum_w_sq: float
    sum_wr: float
    sum_wr_sq: float
    sum_w_wr: float
    sum_dm: float
    sum_dm_sq: float
    sum_dr: float
    sum_dr_sq: float
    sum_dr_minus_r_sq: float
    max_weight: float
    has_reward_model: bool

    @classmethod
    def empty(cls, has_reward_model: bool = True) -> OPESums:
        """No rows: the identity of :meth:`merge`."""
        return cls(0, *([0.0] * 13), has_reward_model=has_reward_model)

    @classmethod
    def from_arrays(
        cls,
        reward: Any,
        logged_prob: Any,
        target_prob: Any,
        q_logged: Any | None = None,
        v_target: Any | None = None,
    ) -> OPESums:
        """Sums over in-memory rows (1-D array-likes of equal length).

        ``logged_prob`` must lie in (0, 1] (a zero propensity means the log cannot support any policy
        that takes that action) and ``target_prob`` in [0, 1]. Pass both or neither of ``q_logged`` and
        ``v_target``. Invalid input raises ``ValueError`` rather than being silently dropped: a bad
        propensity column would otherwise quietly bias every estimate.
        """
        r = _as_vector("reward", reward)
        p = _as_vector("logged_prob", logged_prob)
        t = _as_vector("target_prob", target_prob)
        if (q_logged is None) != (v_target is None):
            raise ValueError("pass both q_logged and v_target (a reward model) or neither")
        has_model = q_logged is not None
        q = _as_vector("q_logged", q_logged) if has_model else np.zeros_like(r)
        v = _as_vector("v_target", v_target) if has_model else np.zeros_like(r)
        lengths = {len(r), len(p), len(t), len(q), len(v)}
        if len(lengths) != 1:
            raise ValueError(f"all inputs must have the same length, got lengths {sorted(lengths)}")
        if np.any((p <= 0.0) | (p > 1.0)):
            raise ValueError("logged_prob must lie in (0, 1]")
        if np.any((t < 0.0) | (t > 1.0)):
            raise ValueError("target_prob must lie in [0, 1]")
        w = t / p
        wr = w * r
        dr = v + w * (r - q)
        d = dr - r
        return cls(
            n=len(r),
            sum_r=float(r.sum()),
            sum_r_sq=float(r @ r),
            sum_w=float(w.sum()),
            sum_w_sq=float(w @ w),
            sum_wr=float(wr.sum()),
            sum_wr_sq=float(wr @ wr),
            sum_w_wr=float(w @ wr),
            sum_dm=float(v.sum()),
            sum_dm_sq=float(v @ v),
            sum_dr=float(dr.sum()),
            sum_dr_sq=float(dr @ dr),
            sum_dr_minus_r_sq=float(d @ d),
            max_weight=float(w.max()) if len(w) else 0.0,
            has_reward_model=has_model,
        )

    @classmethod
    def from_row(
        cls, row: Mapping[str, Any], *, prefix: str = SPARK_ALIAS_PREFIX, drop_invalid: bool = False
    ) -> OPESums:
        """Sums from one aggregated row: ``frame.agg(*spark_aggregations(...)).first().asDict()``.

        Reads the keys that start with ``prefix`` (as given to :func:`spark_aggregations`; pass
        ``prefix=""`` for the bare field names written by :meth:`as_dict`) and ignores the rest, so the
        same ``agg`` may compute other columns, or the sums of several target policies under different
        prefixes in a single pass over the log. Spark sums over no rows are null, read as zero. If the
        aggregation counted invalid rows (null or non-finite inputs, probabilities out of range), this
        raises unless ``drop_invalid``: those rows are already excluded from every sum, so dropping them
        is consistent, but it should be a decision.
        """
        values = {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}
        n_invalid = int(values.pop(N_INVALID_FIELD, 0) or 0)
        if n_invalid and not drop_invalid:
            raise ValueError(
                f"{n_invalid} logged rows have a null or non-finite input or a probability out of range "
                "(logged propensity must lie in (0, 1], target probability in [0, 1]); fix the log or pass "
                "drop_invalid=True to evaluate without them"
            )
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"aggregated row lacks {missing}; build it with spark_aggregations()")
        kwargs: dict[str, Any] = {name: float(values[name] or 0.0) for name in names}
        kwargs["n"] = int(values["n"] or 0)
        kwargs["has_reward_model"] = bool(values["has_reward_model"])
        return cls(**kwargs)

    def as_dict(self) -> dict[str, Any]:
        """Plain field -> value mapping (JSON-friendly; ``from_row(d, prefix="")`` reads it back)."""
        return asdict(self)

    def merge(self, other: OPESums) -> OPESums:
        """Sums over the union of both row sets (e.g. two days, or partitions aggregated separately)."""
        if self.has_reward_model != other.has_reward_model:
            raise ValueError("cannot merge sums with and without a reward model: DM/DR would mix meanings")
        kwargs: dict[str, Any] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "max_weight":
                kwargs[f.name] = max(a, b)
            elif f.name == "has_reward_model":
                kwargs[f.name] = a
            else:
                kwargs[f.name] = a + b
        return OPESums(**kwargs)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its standard error and a two-sided normal-approximation interval."""

    name: str
    value: float
    lower: float
    upper: float
    std_error: float
    confidence: float = 0.95

    def describe(self) -> str:
        """E.g. ``dr = 0.4312 (95% CI 0.4201 to 0.4423)``."""
        return (
            f"{self.name} = {self.value:.4g} ({self.confidence:.0%} CI {self.lower:.4g} to {self.upper:.4g})"
        )


@dataclass(frozen=True, slots=True)
class GateDecision:
    """Whether to deploy the candidate, why (a sentence with the numbers), and the estimate it rests on."""

    accept: bool
    reason: str
    difference: Estimate


def _as_vector(name: str, values: Any) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _interval(name: str, value: float, std_error: float, z: float, confidence: float) -> Estimate:
    return Estimate(name, value, value - z * std_error, value + z * std_error, std_error, confidence)


def _mean(name: str, n: int, total: float, total_sq: float, z: float, confidence: float) -> Estimate:
    """The sample mean of per-row values from their sum and sum of squares; unbiased (n - 1) variance."""
    if n < 2:
        return Estimate(name, math.nan, math.nan, math.nan, math.nan, confidence)
    mean = total / n
    variance = max(total_sq - total * mean, 0.0) / (n - 1)  # clamp rounding below zero
    return _interval(name, mean, math.sqrt(variance / n), z, confidence)


def _snips(sums: OPESums, z: float, confidence: float) -> Estimate:
    """Self-normalised IPS ``R = sum(w r) / sum(w)`` with a delta-method standard error.

    Linearising the ratio of means around ``R``: ``R_hat - R ~ mean(w r - R w) / mean(w)``, and the
    residuals ``e_i = w_i r_i - R w_i`` sum to zero by construction, so
    ``sum e^2 = sum (w r)^2 - 2 R sum w (w r) + R^2 sum w^2`` comes straight from the sums.
    """
    n = sums.n
    if n < 2 or sums.sum_w <= 0.0:
        return Estimate("snips", math.nan, math.nan, math.nan, math.nan, confidence)
    ratio = sums.sum_wr / sums.sum_w
    residual_sq = sums.sum_wr_sq - 2.0 * ratio * sums.sum_w_wr + ratio * ratio * sums.sum_w_sq
    variance = max(residual_sq, 0.0) / (n - 1)
    std_error = math.sqrt(variance / n) / (sums.sum_w / n)
    return _interval("snips", ratio, std_error, z, confidence)


def estimate(sums: OPESums, confidence: float = 0.95) -> dict[str, Estimate]:
    """Every estimator with a two-sided ``confidence`` normal interval, keyed as in :data:`ESTIMATOR_NAMES`.

    ``dm`` and ``dr`` are present only when the sums include a reward model. With fewer than two rows
    (e.g. an empty day) every value is NaN rather than an exception, so a daily asset can still record
    the evaluation; :func:`deployment_gate` refuses on NaN.
    """
    z = _z(confidence)
    n = sums.n
    result = {
        "logging": _mean("logging", n, sums.sum_r, sums.sum_r_sq, z, confidence),
        "ips": _mean("ips", n, sums.sum_wr, sums.sum_wr_sq, z, confidence),
        "snips": _snips(sums, z, confidence),
    }
    if sums.has_reward_model:
        result["dm"] = _mean("dm", n, sums.sum_dm, sums.sum_dm_sq, z, confidence)
        result["dr"] = _mean("dr", n, sums.sum_dr, sums.sum_dr_sq, z, confidence)
    result["dr_minus_logging"] = _mean(
        "dr_minus_logging", n, sums.sum_dr - sums.sum_r, sums.sum_dr_minus_r_sq, z, confidence
    )
    return result


def effective_sample_size(sums: OPESums) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``: how many on-policy rows the log is worth.

    It equals ``n`` when the target policy is the logging policy and collapses towards 1 when a few rows
    carry all the importance weight; the normal-approximation intervals need it to be large (hundreds).
    """
    if sums.sum_w_sq <= 0.0:
        return 0.0
    return sums.sum_w * sums.sum_w / sums.sum_w_sq


def is_confidently_worse(candidate: Estimate, baseline: Estimate) -> bool:
    """Unpaired check: the candidate's upper bound lies below the baseline's point value.

    Use it when the two estimates come from different data; on the same rows prefer the paired
    :func:`deployment_gate`, whose interval on the difference is much narrower. NaN is never "worse".
    """
    return candidate.upper < baseline.value


def deployment_gate(estimates: Mapping[str, Estimate], *, tolerance: float = 0.0) -> GateDecision:
    """Refuse the candidate only if it is confidently worse than the logging policy on the same rows.

    Uses the paired ``dr_minus_logging`` estimate: refuse when the whole interval lies below
    ``-tolerance`` (the candidate loses more than ``tolerance`` reward per row with the interval's
    confidence; the upper bound of a two-sided 95% interval is a one-sided 97.5% test). Equal or better
    policies, and inconclusive evidence, are accepted: the gate guards against regressions, it does not
    demand proof of improvement. Without a usable estimate (fewer than two rows, so NaN) it refuses,
    because nothing was checked.
    """
    if tolerance < 0.0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance}")
    difference = estimates["dr_minus_logging"]
    method = "doubly-robust" if "dr" in estimates else "IPS (no reward model)"
    level = f"{difference.confidence:.0%}"
    interval = f"{level} CI {difference.lower:+.4g} to {difference.upper:+.4g}"
    if not all(math.isfinite(x) for x in (difference.value, difference.lower, difference.upper)):
        return GateDecision(
            False,
            "Refused: the paired difference could not be estimated (fewer than two usable logged rows), "
            "so there is no evidence that the candidate is not worse than the logging policy.",
            difference,
        )
    change = (
        f"The {method} estimate says the candidate changes mean reward by {difference.value:+.4g} per row "
        f"versus the logging policy ({interval})"
    )
    if difference.upper < -tolerance:
        return GateDecision(
            False,
            f"{change}; the whole interval is below {-tolerance:+.4g}, so the candidate is confidently "
            "worse and is refused.",
            difference,
        )
    return GateDecision(
        True,
        f"{change}; the interval reaches {-tolerance:+.4g} or above, so the candidate is not confidently "
        "worse and is accepted.",
        difference,
    )


def spark_aggregations(
    reward_col: str,
    logged_prob_col: str,
    target_prob_col: str,
    q_logged_col: str | None = None,
    v_target_col: str | None = None,
    *,
    prefix: str = SPARK_ALIAS_PREFIX,
) -> list[Column]:
    """Aggregate expressions for one ``frame.agg(...)`` whose single row :meth:`OPESums.from_row` reads.

    Aliases are ``<prefix><field>`` for every :class:`OPESums` field plus ``<prefix>n_invalid``; give each
    target policy its own prefix to evaluate several in one pass (and the same prefix to ``from_row``).
    Rows with a null, NaN or infinite input, a logged propensity outside (0, 1] or a target probability
    outside [0, 1] are counted in ``n_invalid`` and contribute nothing to any sum; the arithmetic runs on
    masked columns, so even ANSI mode never divides by zero. pyspark is imported here only, so the rest of
    the module stays usable without Spark.
    """
    from pyspark.sql import functions as F

    if (q_logged_col is None) != (v_target_col is None):
        raise ValueError("pass both q_logged_col and v_target_col (a reward model) or neither")
    has_model = q_logged_col is not None
    inputs = [reward_col, logged_prob_col, target_prob_col]
    if q_logged_col is not None and v_target_col is not None:
        inputs += [q_logged_col, v_target_col]

    def finite(name: str) -> Column:
        column = F.col(name).cast("double")
        # NaN sorts above +inf in Spark, so this rejects NaN and both infinities; null yields null.
        return column.isNotNull() & (F.abs(column) < F.lit(math.inf))

    raw_p = F.col(logged_prob_col).cast("double")
    raw_t = F.col(target_prob_col).cast("double")
    valid = finite(inputs[0])
    for name in inputs[1:]:
        valid = valid & finite(name)
    valid = F.coalesce(valid & (raw_p > 0.0) & (raw_p <= 1.0) & (raw_t >= 0.0) & (raw_t <= 1.0), F.lit(False))

    def masked(name: str | None, fill: float) -> Column:
        if name is None:
            return F.lit(0.0)
        return F.when(valid, F.col(name).cast("double")).otherwise(F.lit(fill))

    r = masked(reward_col, 0.0)
    p = masked(logged_prob_col, 1.0)
    t = masked(target_prob_col, 0.0)
    q = masked(q_logged_col, 0.0)
    v = masked(v_target_col, 0.0)
    w = t / p
    wr = w * r
    dr = v + w * (r - q)
    d = dr - r

    def alias(column: Column, name: str) -> Column:
        return column.alias(prefix + name)

    return [
        alias(F.sum(valid.cast("long")), "n"),
        alias(F.sum((~valid).cast("long")), N_INVALID_FIELD),
        alias(F.sum(r), "sum_r"),
        alias(F.sum(r * r), "sum_r_sq"),
        alias(F.sum(w), "sum_w"),
        alias(F.sum(w * w), "sum_w_sq"),
        alias(F.sum(wr), "sum_wr"),
        alias(F.sum(wr * wr), "sum_wr_sq"),
        alias(F.sum(w * wr), "sum_w_wr"),
        alias(F.sum(v), "sum_dm"),
        alias(F.sum(v * v), "sum_dm_sq"),
        alias(F.sum(dr), "sum_dr"),
        alias(F.sum(dr * dr), "sum_dr_sq"),
        alias(F.sum(d * d), "sum_dr_minus_r_sq"),
        alias(F.max(F.when(valid, w)), "max_weight"),
        alias(F.lit(has_model), "has_reward_model"),
    ]

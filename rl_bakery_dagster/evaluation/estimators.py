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

Two kinds of confidence interval. The *normal* interval (central limit theorem, ``value +- z * std_error``;
SNIPS by the delta method) is what :func:`estimate` gives without a reward range, and always as
``normal_lower``/``normal_upper``. It is trustworthy only when the effective sample size
(:func:`effective_sample_size`) is large: with rare rewards and a few heavy importance weights it is far too
narrow (zero observed reward gives the interval [0, 0]). When the application declares its reward range
``[a, b]``, :func:`estimate` gives instead, as ``lower``/``upper``, the **empirical-Bernstein** interval of
Maurer & Pontil (2009, Theorem 4), which holds for any sample size for i.i.d. values in a known range
``[lo, hi]`` (width ``R = hi - lo``), each side at level ``delta / 2``::

    |mean - E| <= sqrt(2 V ln(4 / delta) / n) + 7 R ln(4 / delta) / (3 (n - 1))

with ``V`` the unbiased sample variance: a function of ``n``, the sum and the sum of squares, so it stays a
bounded Spark aggregate. The range of each per-row value follows from the reward range and the largest
possible importance weight ``W = max 1 / logged_prob`` (``w = target_prob / logged_prob <= W``): IPS values
lie in ``W [min(a, 0), max(b, 0)]``, DR and the paired difference in ``[a, b] +- W (b - a)`` (reward model
predictions are clipped into ``[a, b]``). Its second term never vanishes, so zero observed reward never
gives a zero-width interval. It is conservative (wider than the normal interval by a factor of about 1.5
plus the range term) in exchange for a guarantee that does not depend on the normal approximation; the
betting-based confidence sequences of Waudby-Smith & Ramdas and Karampatziakis, Mineiro & Ramdas (2021) are
tighter but need a sequential pass over the rows, which sufficient statistics cannot give. The value ``V``
has one interval, so SNIPS (a biased, lower-variance point estimate of the same value) reports IPS's
empirical-Bernstein interval; every value interval is also clipped to ``[a, b]`` because ``V`` lies there.
DM's interval only reflects the sampling of contexts, not the reward model's bias.

The deployment gate (:func:`deployment_gate`, or the general :func:`three_way_decision` on any interval of
a difference) has three outcomes: ``accepted`` (not worse than the baseline by more than the tolerance, with
confidence), ``refused`` (confidently worse by more than the tolerance) and ``not_enough_evidence`` (the
interval straddles the tolerance, or the effective sample size is below a floor).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import Column

ESTIMATOR_NAMES = ("logging", "ips", "snips", "dm", "dr", "dr_minus_logging")
ACCEPTED, REFUSED, NOT_ENOUGH_EVIDENCE = "accepted", "refused", "not_enough_evidence"
OUTCOMES = (ACCEPTED, REFUSED, NOT_ENOUGH_EVIDENCE)
"""The deployment gate's three outcomes."""

EMPIRICAL_BERNSTEIN, NORMAL = "empirical_bernstein", "normal"
_MIN_FIELDS = ("min_reward", "min_prediction")
_MAX_FIELDS = ("max_weight", "max_inverse_propensity", "max_reward", "max_prediction")
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
    difference ``dr_minus_logging`` becomes IPS minus logging: still unbiased, just noisier. The extremes
    (largest ``1 / logged_prob``, smallest and largest reward and reward-model prediction) let
    :func:`estimate` check the declared reward range and bound every per-row value.
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
    max_inverse_propensity: float = 0.0
    min_reward: float = math.inf
    max_reward: float = -math.inf
    min_prediction: float = math.inf
    max_prediction: float = -math.inf

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
        *,
        prediction_range: tuple[float, float] | None = None,
    ) -> OPESums:
        """Sums over in-memory rows (1-D array-likes of equal length).

        ``prediction_range`` clips the reward model's predictions into the declared reward range (a
        prediction outside it can only be further from the truth), as the empirical-Bernstein bounds need.

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
        if has_model and prediction_range is not None:
            q, v = np.clip(q, *prediction_range), np.clip(v, *prediction_range)
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
            max_inverse_propensity=float((1.0 / p).max()) if len(p) else 0.0,
            min_reward=float(r.min()) if len(r) else math.inf,
            max_reward=float(r.max()) if len(r) else -math.inf,
            min_prediction=float(min(q.min(), v.min())) if has_model and len(r) else math.inf,
            max_prediction=float(max(q.max(), v.max())) if has_model and len(r) else -math.inf,
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
        for name in _MIN_FIELDS + _MAX_FIELDS[1:]:  # Spark's min/max over no rows is null
            if values[name] is None:
                kwargs[name] = math.inf if name in _MIN_FIELDS else -math.inf
        if values["max_inverse_propensity"] is None:
            kwargs["max_inverse_propensity"] = 0.0
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
            if f.name in _MAX_FIELDS:
                kwargs[f.name] = max(a, b)
            elif f.name in _MIN_FIELDS:
                kwargs[f.name] = min(a, b)
            elif f.name == "has_reward_model":
                kwargs[f.name] = a
            else:
                kwargs[f.name] = a + b
        return OPESums(**kwargs)


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate with its standard error and a two-sided interval.

    ``lower``/``upper`` come from ``interval`` (``normal`` or ``empirical_bernstein``); the normal
    approximation's bounds are always kept as ``normal_lower``/``normal_upper`` for comparison.
    """

    name: str
    value: float
    lower: float
    upper: float
    std_error: float
    confidence: float = 0.95
    interval: str = NORMAL
    normal_lower: float = math.nan
    normal_upper: float = math.nan

    def describe(self) -> str:
        """E.g. ``dr = 0.4312 (95% CI 0.4201 to 0.4423)``."""
        return (
            f"{self.name} = {self.value:.4g} ({self.confidence:.0%} CI {self.lower:.4g} to {self.upper:.4g})"
        )


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's outcome (one of :data:`OUTCOMES`), why (a sentence with the numbers), and its estimate."""

    outcome: str
    reason: str
    difference: Estimate

    @property
    def accept(self) -> bool:
        return self.outcome == ACCEPTED


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


def empirical_bernstein_half_width(n: Any, variance: Any, value_range: Any, confidence: float = 0.95) -> Any:
    """Half-width of the two-sided empirical-Bernstein interval for the mean of ``n`` i.i.d. values.

    Maurer & Pontil (2009), Theorem 4, applied to each side at level ``(1 - confidence) / 2``, for values
    known to lie in an interval of width ``value_range`` with unbiased sample variance ``variance``.
    Works on numpy arrays (a whole simulation at once) as well as floats; ``n < 2`` gives infinity.
    """
    _z(confidence)
    log_term = math.log(4.0 / (1.0 - confidence))
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.sqrt(2.0 * np.maximum(variance, 0.0) * log_term / n) + 7.0 * np.asarray(
            value_range
        ) * log_term / (3.0 * (n - 1.0))
    return np.where(n >= 2, width, np.inf)


def mean_and_variance(n: Any, total: Any, total_sq: Any) -> tuple[Any, Any]:
    """Sample mean and unbiased sample variance from ``n``, the sum and the sum of squares (or arrays)."""
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        variance = np.maximum(total_sq - total * mean, 0.0) / (n - 1.0)  # clamp rounding below zero
    return mean, variance


def bounded_mean(
    name: str,
    n: int,
    total: float,
    total_sq: float,
    value_range: tuple[float, float],
    confidence: float = 0.95,
    *,
    clip: tuple[float, float] | None = None,
) -> Estimate:
    """The mean of per-row values known to lie in ``value_range``, with its empirical-Bernstein interval.

    General: any per-row quantity with a known range (a reward, an importance-weighted return, a paired
    difference) summarised by ``n``, its sum and its sum of squares. ``clip`` is a range the *estimand*
    is known to lie in (a policy value lies in the reward range): the point is projected onto it and
    the interval intersected with it.
    """
    normal = _mean(name, n, total, total_sq, _z(confidence), confidence)
    if n < 2:
        return dataclasses.replace(normal, interval=EMPIRICAL_BERNSTEIN)
    low, high = value_range
    mean, variance = mean_and_variance(n, total, total_sq)
    half = float(empirical_bernstein_half_width(n, variance, high - low, confidence))
    point = float(mean)
    lower, upper = point - half, point + half
    if clip is not None:
        # the estimand lies in `clip`, but an unbiased estimate (DR) may not: project the point onto
        # `clip` (never farther from a truth inside it) and keep it inside its interval (an interval
        # widened within `clip` never loses coverage); the normal bounds stay around the raw mean
        point = min(max(point, clip[0]), clip[1])
        lower, upper = min(max(lower, clip[0]), point), max(min(upper, clip[1]), point)
    return dataclasses.replace(normal, value=point, lower=lower, upper=upper, interval=EMPIRICAL_BERNSTEIN)


def _interval(name: str, value: float, std_error: float, z: float, confidence: float) -> Estimate:
    lower, upper = value - z * std_error, value + z * std_error
    return Estimate(name, value, lower, upper, std_error, confidence, NORMAL, lower, upper)


def _mean(name: str, n: int, total: float, total_sq: float, z: float, confidence: float) -> Estimate:
    """The sample mean of per-row values from their sum and sum of squares; unbiased (n - 1) variance."""
    if n < 2:
        return Estimate(name, math.nan, math.nan, math.nan, math.nan, confidence)
    mean, variance = mean_and_variance(n, total, total_sq)
    return _interval(name, float(mean), math.sqrt(float(variance) / n), z, confidence)


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


def _product_range(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    corners = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
    return min(corners), max(corners)


def _sum_range(*ranges: tuple[float, float]) -> tuple[float, float]:
    return sum(r[0] for r in ranges), sum(r[1] for r in ranges)


def value_ranges(
    reward_range: tuple[float, float], max_weight: float, has_reward_model: bool
) -> dict[str, tuple[float, float]]:
    """The range of each estimator's per-row value, by interval arithmetic.

    ``w`` lies in ``[0, max_weight]``, rewards and (clipped) model predictions in ``reward_range``; without
    a reward model the predictions are 0.
    """
    a, b = reward_range
    r, w = (a, b), (0.0, max_weight)
    q = r if has_reward_model else (0.0, 0.0)
    residual = _sum_range(r, (-q[1], -q[0]))  # r - q
    dr = _sum_range(q, _product_range(w, residual))  # v + w (r - q), v ranging like q
    return {
        "logging": r,
        "ips": _product_range(w, r),
        "dm": q,
        "dr": dr,
        "dr_minus_logging": _sum_range(dr, (-b, -a)),
    }


def check_reward_range(sums: OPESums, reward_range: tuple[float, float]) -> None:
    """Raises a sentence when rewards or (clipped) predictions fall outside the declared range."""
    a, b = reward_range
    if not a < b:
        raise ValueError(f"the reward range must have low < high, got {reward_range}")
    if sums.n and (sums.min_reward < a or sums.max_reward > b):
        raise ValueError(
            f"rewards range from {sums.min_reward:g} to {sums.max_reward:g}, outside the declared reward "
            f"range [{a:g}, {b:g}]: the interval's guarantee needs every reward inside it; declare the "
            "application's true reward range"
        )
    if sums.has_reward_model and sums.n and (sums.min_prediction < a or sums.max_prediction > b):
        raise ValueError(
            f"reward-model predictions range from {sums.min_prediction:g} to {sums.max_prediction:g}, "
            "outside "
            f"the declared reward range [{a:g}, {b:g}]; clip them (prediction_range) before summing"
        )


def estimate(
    sums: OPESums, confidence: float = 0.95, reward_range: tuple[float, float] | None = None
) -> dict[str, Estimate]:
    """Every estimator with a two-sided ``confidence`` interval, keyed as in :data:`ESTIMATOR_NAMES`.

    Without ``reward_range`` the intervals are normal approximations. With it (the range every reward is
    known to lie in, e.g. ``(0, 1)`` for clicks) they are empirical-Bernstein intervals, valid at any
    sample size, using ``W = max 1 / logged_prob`` as the largest possible importance weight; the normal
    bounds stay in ``normal_lower``/``normal_upper``. ``dm`` and ``dr`` are present only when the sums
    include a reward model. With fewer than two rows every value is NaN rather than an exception, so a
    daily asset can still record the evaluation; :func:`deployment_gate` then says there is no evidence.
    """
    z = _z(confidence)
    n = sums.n
    totals = {
        "logging": (sums.sum_r, sums.sum_r_sq),
        "ips": (sums.sum_wr, sums.sum_wr_sq),
        "dm": (sums.sum_dm, sums.sum_dm_sq),
        "dr": (sums.sum_dr, sums.sum_dr_sq),
        "dr_minus_logging": (sums.sum_dr - sums.sum_r, sums.sum_dr_minus_r_sq),
    }
    names = ["logging", "ips", "snips", "dm", "dr", "dr_minus_logging"]
    if not sums.has_reward_model:
        names = [name for name in names if name not in ("dm", "dr")]
    if reward_range is None:
        result = {
            name: _snips(sums, z, confidence)
            if name == "snips"
            else _mean(name, n, *totals[name], z, confidence)
            for name in names
        }
        return result
    check_reward_range(sums, reward_range)
    ranges = value_ranges(reward_range, sums.max_inverse_propensity, sums.has_reward_model)
    a, b = reward_range
    result = {}
    for name in names:
        if name == "snips":
            continue
        clip = (a - b, b - a) if name == "dr_minus_logging" else (a, b)
        result[name] = bounded_mean(name, n, *totals[name], ranges[name], confidence, clip=clip)
    snips = _snips(sums, z, confidence)
    ips = result["ips"]
    result["snips"] = dataclasses.replace(
        snips,
        lower=ips.lower,
        upper=ips.upper,
        interval=EMPIRICAL_BERNSTEIN,
        normal_lower=snips.lower,
        normal_upper=snips.upper,
    )
    return {name: result[name] for name in names}


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


def three_way_decision(
    lower: Any,
    upper: Any,
    tolerance: float = 0.0,
    effective_sample_size: Any = math.inf,
    min_effective_sample_size: float = 0.0,
) -> Any:
    """The gate's outcome from an interval on ``candidate - baseline`` (arrays welcome: one outcome each).

    ``refused`` when the whole interval lies below ``-tolerance`` (confidently worse by more than the
    tolerance), ``accepted`` when it lies at or above ``-tolerance`` (confidently not worse by more than
    it), otherwise, or when the effective sample size is below the floor or the interval is NaN,
    ``not_enough_evidence``. General: the bandit gate and any other candidate-versus-baseline comparison
    use it alike.
    """
    if tolerance < 0.0:
        raise ValueError(f"tolerance must be non-negative, got {tolerance}")
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    enough = np.asarray(effective_sample_size, dtype=np.float64) >= min_effective_sample_size
    outcome = np.where(
        enough & (upper < -tolerance),
        REFUSED,
        np.where(enough & (lower >= -tolerance), ACCEPTED, NOT_ENOUGH_EVIDENCE),
    )
    return str(outcome) if outcome.ndim == 0 else outcome


def deployment_gate(
    estimates: Mapping[str, Estimate],
    *,
    tolerance: float = 0.0,
    effective_sample_size: float = math.inf,
    min_effective_sample_size: float = 0.0,
) -> GateDecision:
    """Judges the candidate against the logging policy on the same rows, with three outcomes.

    Uses the paired ``dr_minus_logging`` estimate (see :func:`three_way_decision`). The upper bound of a
    two-sided 95% interval is a one-sided 97.5% test, so a candidate equal to the logging policy is
    refused at most 2.5% of the time when the interval is valid. Without a usable estimate (fewer than two
    rows, so NaN) there is not enough evidence, because nothing was checked.
    """
    difference = estimates["dr_minus_logging"]
    outcome = three_way_decision(
        difference.lower, difference.upper, tolerance, effective_sample_size, min_effective_sample_size
    )
    method = "doubly-robust" if "dr" in estimates else "IPS (no reward model)"
    level = f"{difference.confidence:.0%}"
    interval = f"{level} CI {difference.lower:+.4g} to {difference.upper:+.4g}"
    if not all(math.isfinite(x) for x in (difference.value, difference.lower, difference.upper)):
        return GateDecision(
            NOT_ENOUGH_EVIDENCE,
            "Not enough evidence: the paired difference could not be estimated (fewer than two usable logged "
            "rows), so nothing says whether the candidate is worse than the logging policy.",
            difference,
        )
    change = (
        f"The {method} estimate says the candidate changes mean reward by {difference.value:+.4g} per row "
        f"versus the logging policy ({interval})"
    )
    if effective_sample_size < min_effective_sample_size:
        return GateDecision(
            outcome,
            f"{change}, but the effective sample size is {effective_sample_size:.1f}, below the floor of "
            f"{min_effective_sample_size:g}: not enough evidence either way.",
            difference,
        )
    if outcome == REFUSED:
        return GateDecision(
            outcome,
            f"{change}; the whole interval is below {-tolerance:+.4g}, so the candidate is confidently "
            "worse and is refused.",
            difference,
        )
    if outcome == ACCEPTED:
        return GateDecision(
            outcome,
            f"{change}; the whole interval is at or above {-tolerance:+.4g}, so the candidate is confidently "
            "not worse and is accepted.",
            difference,
        )
    return GateDecision(
        outcome,
        f"{change}; the interval straddles {-tolerance:+.4g}, so there is not enough evidence either way.",
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
    prediction_range: tuple[float, float] | None = None,
) -> list[Column]:
    """Aggregate expressions for one ``frame.agg(...)`` whose single row :meth:`OPESums.from_row` reads.

    Aliases are ``<prefix><field>`` for every :class:`OPESums` field plus ``<prefix>n_invalid``; give each
    target policy its own prefix to evaluate several in one pass (and the same prefix to ``from_row``).
    Rows with a null, NaN or infinite input, a logged propensity outside (0, 1] or a target probability
    outside [0, 1] are counted in ``n_invalid`` and contribute nothing to any sum; the arithmetic runs on
    masked columns, so even ANSI mode never divides by zero. ``prediction_range`` clips the reward model's
    predictions into the declared reward range, as in :meth:`OPESums.from_arrays`. pyspark is imported
    here only, so the rest of the module stays usable without Spark.
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
    if has_model and prediction_range is not None:
        low, high = F.lit(float(prediction_range[0])), F.lit(float(prediction_range[1]))
        q, v = F.least(F.greatest(q, low), high), F.least(F.greatest(v, low), high)
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
        alias(F.max(F.when(valid, 1.0 / p)), "max_inverse_propensity"),
        alias(F.min(F.when(valid, r)), "min_reward"),
        alias(F.max(F.when(valid, r)), "max_reward"),
        alias(F.min(F.when(valid, F.least(q, v))) if has_model else F.lit(None), "min_prediction"),
        alias(F.max(F.when(valid, F.greatest(q, v))) if has_model else F.lit(None), "max_prediction"),
    ]

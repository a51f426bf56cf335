"""The deployment gate on sparse rewards, by simulation: old (normal) and new (empirical-Bernstein) intervals.

The setting of issue 13: a uniform logging policy over K items, a click rate of about 0.4 %, and a
candidate that plays item 0 greedily with epsilon 0.1 (target probability 0.9 + 0.1 / K for item 0,
0.1 / K for each other item). Every logged row then falls into one of four cells (logged item 0 or
another, click or not) whose probabilities are known, so one repetition of a day of n rows is one
multinomial draw of the four cell counts, and every sufficient statistic of `OPESums` is a function
of those counts: exact for any n, fast at n = 1,000,000. The package's own `estimate` and
`deployment_gate` judge each repetition, exactly as `policy_evaluation` does.

- `false_refusal`: item 0 is exactly as good as the others (the candidate equals logging in value),
  n = 2,800, K = 34 / 46 / 80: how often is the harmless candidate refused? Target <= 5 %.
- `worse`: item 0's click rate is set so that the candidate is truly 30 % worse than logging; how
  often is it accepted (target <= 5 %) and how often refused (power), at n = 10^4, 10^5, 10^6.
- `coverage`: does each estimator's 95 % interval contain the true value, at effective sample
  sizes 10 .. 10,000 (n = ESS * E[w^2]) and click rates 0.4 % and 30 %? Target >= 93 %.

Each cell reports the paired check without a reward model (IPS minus logging) and with an
uninformative but calibrated constant model (q = the base click rate: DR), `old` = normal intervals
and the two-outcome gate (refuse when the interval lies below 0, else accept), `new` =
empirical-Bernstein intervals and the three-outcome gate with the asset's default floor on the
effective sample size.

Usage: `uv run python benchmarks/gate.py [--repetitions 2000] [--seed 13]`; the last line is JSON
(also written to benchmarks/results/gate.json with `--write`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from rl_bakery_dagster.evaluation.estimators import (
    ACCEPTED,
    NOT_ENOUGH_EVIDENCE,
    REFUSED,
    OPESums,
    deployment_gate,
    effective_sample_size,
    estimate,
)

EPSILON = 0.1
BASE_RATE = 0.004
REWARD_RANGE = (0.0, 1.0)
MIN_ESS = 100.0  # the asset's default min_effective_sample_size
RESULTS = Path(__file__).resolve().parent / "results" / "gate.json"


def weights(items: int) -> tuple[float, float]:
    """(w on a row that logged item 0, w on a row that logged another item) under uniform logging."""
    return items * (1 - EPSILON + EPSILON / items), EPSILON


def simulate(
    rng: np.random.Generator,
    items: int,
    rows: int,
    rate_item0: float,
    rate_other: float,
    repetitions: int,
    model: tuple[float, float] | None,
) -> list[OPESums]:
    """One `OPESums` per repetition, from multinomial cell counts (see the module docstring).

    ``model``: the reward model's prediction for (item 0, another item), or None for no model.
    """
    w1, w0 = weights(items)
    share0 = 1.0 / items
    cells = np.array(
        [
            share0 * rate_item0,
            share0 * (1 - rate_item0),
            (1 - share0) * rate_other,
            (1 - share0) * (1 - rate_other),
        ]
    )
    counts = rng.multinomial(rows, cells, size=repetitions).astype(np.float64)  # [reps, 4]
    w = np.array([w1, w1, w0, w0])
    r = np.array([1.0, 0.0, 1.0, 0.0])
    if model is None:
        q = v = np.zeros(4)
    else:
        m1, m0 = model
        q = np.array([m1, m1, m0, m0])
        target1 = 1 - EPSILON + EPSILON / items
        v = np.full(4, target1 * m1 + (1 - target1) * m0)
    dr = v + w * (r - q)
    d = dr - r

    def total(values: np.ndarray) -> np.ndarray:
        return counts @ values

    sums = {
        "sum_r": total(r),
        "sum_r_sq": total(r * r),
        "sum_w": total(w),
        "sum_w_sq": total(w * w),
        "sum_wr": total(w * r),
        "sum_wr_sq": total((w * r) ** 2),
        "sum_w_wr": total(w * w * r),
        "sum_dm": total(v),
        "sum_dm_sq": total(v * v),
        "sum_dr": total(dr),
        "sum_dr_sq": total(dr * dr),
        "sum_dr_minus_r_sq": total(d * d),
    }
    result = []
    for i in range(repetitions):
        present = counts[i] > 0
        result.append(
            OPESums(
                n=rows,
                **{name: float(value[i]) for name, value in sums.items()},
                max_weight=float(w[present].max()),
                has_reward_model=model is not None,
                max_inverse_propensity=float(items),
                min_reward=float(r[present].min()),
                max_reward=float(r[present].max()),
                min_prediction=float(min(q[present].min(), v[0])) if model else np.inf,
                max_prediction=float(max(q[present].max(), v[0])) if model else -np.inf,
            )
        )
    return result


def gate_rates(all_sums: list[OPESums]) -> dict[str, Any]:
    """Old and new gate outcomes over the repetitions."""
    old, new, ess = [], [], []
    for sums in all_sums:
        size = effective_sample_size(sums)
        ess.append(size)
        old.append(deployment_gate(estimate(sums)).outcome)
        new.append(
            deployment_gate(
                estimate(sums, reward_range=REWARD_RANGE),
                effective_sample_size=size,
                min_effective_sample_size=MIN_ESS,
            ).outcome
        )
    old_a, new_a = np.array(old), np.array(new)
    return {
        # the old gate had two outcomes: anything not refused was deployed
        "old": {"refused": float(np.mean(old_a == REFUSED)), "accepted": float(np.mean(old_a != REFUSED))},
        "new": {o: float(np.mean(new_a == o)) for o in (ACCEPTED, REFUSED, NOT_ENOUGH_EVIDENCE)},
        "mean_effective_sample_size": float(np.mean(ess)),
    }


def worse_rate_item0(items: int, factor: float) -> float:
    """Item 0's click rate that makes the candidate's value ``factor`` times logging's."""
    target1 = 1 - EPSILON + EPSILON / items
    # candidate: target1 p1 + (1 - target1) p0 ; logging: (p1 + (K - 1) p0) / K
    return BASE_RATE * (factor * (items - 1) / items - (1 - target1)) / (target1 - factor / items)


def values(items: int, rate_item0: float, rate_other: float) -> tuple[float, float]:
    """(candidate's true value, logging's true value)."""
    target1 = 1 - EPSILON + EPSILON / items
    return (
        target1 * rate_item0 + (1 - target1) * rate_other,
        (rate_item0 + (items - 1) * rate_other) / items,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--write", action="store_true", help=f"also write {RESULTS}")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    reps = args.repetitions
    started = time.monotonic()
    models = {"ips_minus_logging": None, "dr_constant_model": (BASE_RATE, BASE_RATE)}

    false_refusal = []
    for items in (34, 46, 80):
        for model_name, model in models.items():
            rates = gate_rates(simulate(rng, items, 2800, BASE_RATE, BASE_RATE, reps, model))
            false_refusal.append({"items": items, "rows": 2800, "check": model_name, **rates})
            print(json.dumps(false_refusal[-1]), flush=True)

    worse = []
    items = 34
    rate0 = worse_rate_item0(items, 0.7)
    candidate, logging = values(items, rate0, BASE_RATE)
    for rows in (10_000, 100_000, 1_000_000):
        for model_name, model in models.items():
            rates = gate_rates(simulate(rng, items, rows, rate0, BASE_RATE, reps, model))
            worse.append(
                {
                    "items": items,
                    "rows": rows,
                    "check": model_name,
                    "candidate_value": candidate,
                    "logging_value": logging,
                    **rates,
                }
            )
            print(json.dumps(worse[-1]), flush=True)

    coverage = []
    items = 34
    w1, w0 = weights(items)
    second_moment = (w1 * w1 + (items - 1) * w0 * w0) / items
    for base in (BASE_RATE, 0.3):
        rate0 = min(1.5 * base, 1.0)
        candidate, logging = values(items, rate0, base)
        truths = {
            "logging": logging,
            "ips": candidate,
            "snips": candidate,
            "dr": candidate,
            "dr_minus_logging": candidate - logging,
        }
        # a wrong but fixed model: says item 0 is worse than the others
        model = (0.5 * base, 1.2 * base)
        for ess_target in (10, 30, 100, 300, 1000, 3000, 10_000):
            rows = round(ess_target * second_moment)
            all_sums = simulate(rng, items, rows, rate0, base, reps, model)
            cell: dict[str, Any] = {"base_rate": base, "target_ess": ess_target, "rows": rows}
            cell["mean_effective_sample_size"] = float(np.mean([effective_sample_size(s) for s in all_sums]))
            for name, truth in truths.items():
                old_hits, new_hits, widths = [], [], []
                for sums in all_sums:
                    o = estimate(sums)[name]
                    e = estimate(sums, reward_range=REWARD_RANGE)[name]
                    old_hits.append(o.lower <= truth <= o.upper)
                    new_hits.append(e.lower <= truth <= e.upper)
                    widths.append(e.upper - e.lower)
                cell[name] = {
                    "old": float(np.mean(old_hits)),
                    "new": float(np.mean(new_hits)),
                    "new_mean_width": float(np.mean(widths)),
                }
            coverage.append(cell)
            print(json.dumps(cell), flush=True)

    summary = {
        "benchmark": "gate",
        "repetitions": reps,
        "seed": args.seed,
        "epsilon": EPSILON,
        "base_click_rate": BASE_RATE,
        "min_effective_sample_size": MIN_ESS,
        "seconds": round(time.monotonic() - started, 1),
        "false_refusal": false_refusal,
        "worse_by_30_percent": worse,
        "coverage": coverage,
        "min_new_coverage": min(
            c[n]["new"] for c in coverage for n in ("logging", "ips", "snips", "dr", "dr_minus_logging")
        ),
        "max_new_false_refusal": max(c["new"]["refused"] for c in false_refusal),
        "max_old_false_refusal": max(c["old"]["refused"] for c in false_refusal),
        "max_new_false_acceptance": max(c["new"]["accepted"] for c in worse),
    }
    if args.write:
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

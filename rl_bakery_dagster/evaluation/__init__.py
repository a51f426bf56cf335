"""Off-policy evaluation of a candidate policy on the logging policy's data (pure numpy, Spark optional)."""

from rl_bakery_dagster.evaluation.estimators import (
    ACCEPTED,
    ESTIMATOR_NAMES,
    NOT_ENOUGH_EVIDENCE,
    OUTCOMES,
    REFUSED,
    Estimate,
    GateDecision,
    OPESums,
    bounded_mean,
    deployment_gate,
    effective_sample_size,
    empirical_bernstein_half_width,
    estimate,
    is_confidently_worse,
    spark_aggregations,
    three_way_decision,
)

__all__ = [
    "ACCEPTED",
    "ESTIMATOR_NAMES",
    "NOT_ENOUGH_EVIDENCE",
    "OUTCOMES",
    "REFUSED",
    "Estimate",
    "GateDecision",
    "OPESums",
    "bounded_mean",
    "deployment_gate",
    "effective_sample_size",
    "empirical_bernstein_half_width",
    "estimate",
    "is_confidently_worse",
    "spark_aggregations",
    "three_way_decision",
]

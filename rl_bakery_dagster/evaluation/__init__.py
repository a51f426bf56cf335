"""Off-policy evaluation of a candidate policy on the logging policy's data (pure numpy, Spark optional)."""

from rl_bakery_dagster.evaluation.estimators import (
    ESTIMATOR_NAMES,
    Estimate,
    GateDecision,
    OPESums,
    deployment_gate,
    effective_sample_size,
    estimate,
    is_confidently_worse,
    spark_aggregations,
)

__all__ = [
    "ESTIMATOR_NAMES",
    "Estimate",
    "GateDecision",
    "OPESums",
    "deployment_gate",
    "effective_sample_size",
    "estimate",
    "is_confidently_worse",
    "spark_aggregations",
]

"""`policy_evaluation[d]` for RL applications: the candidate judged on day d's episodes before deployment.

Which logs: an RL application gets this asset when it trains with `lag_days >= 1`, so
`agent_checkpoint[d]` never saw day d, and it is judged on exactly the episodes the deployed policy
played that day (the freshest state distribution, and no training data is withheld). Held-out env ids
were the other choice; they would cost a share of every day's training data and a second filter in
the training path, for no gain in freshness.

The candidate, deployed as it would be (epsilon-greedy around its greedy policy, with its recorded
epsilon), is judged by per-decision weighted importance sampling and weighted doubly robust with its
own Q-network as the model (`rl_bakery_dagster.evaluation.sequential`), each with a Poisson bootstrap
interval over episodes, beside the logging policy's observed return. The gate uses the paired
bootstrap interval of `wdr - logging` (by default) and the same three outcomes and deployment rules
as the bandit gate (`three_way_decision`, `choose_deployment`): the logging policy of day d is the
policy deployed for day d, so "not worse than the logging policy" is "not worse than what is deployed".
"""

import math
from collections.abc import Iterator, Mapping

import dagster as dg
import numpy as np
from pydantic import Field
from pyspark.sql import DataFrame

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.assets.evaluation import (
    OffPolicyEvaluationConfig,
    choose_deployment,
    evaluation_asset_arguments,
    judge_days,
)
from rl_bakery_dagster.checkpoint_format import METRICS
from rl_bakery_dagster.checkpoint_settings import SETTINGS
from rl_bakery_dagster.resources.io_managers import read_json

GATE_ESTIMATORS = ("wdr", "pdwis")


class SequentialEvaluationConfig(OffPolicyEvaluationConfig):
    """The bandit gate's settings, plus what a sequential evaluation needs; units are returns per episode."""

    tolerance: float = Field(
        default=0.0,
        description="the return per episode the candidate may lose, on top of relative_tolerance",
    )
    relative_tolerance: float = Field(
        default=0.1,
        description="the share of the logging policy's observed return the candidate may lose: refused only "
        "if confidently worse by more, accepted only if confidently not worse by more",
    )
    min_effective_sample_size: float = Field(
        default=10.0,
        description="below this effective number of episodes (Kish, at the last step) the outcome is "
        "'not enough evidence'",
    )
    estimator: str = Field(default="wdr", description="what the gate judges: wdr or pdwis")
    replicates: int = Field(default=200, description="Poisson bootstrap replicates over episodes")
    seed: int = Field(default=0, description="seeds the bootstrap weights")
    discount: float | None = Field(
        default=None, description="discount of the evaluated return (default: the agent's gamma)"
    )
    max_horizon: int = Field(default=10_000, description="most decisions per episode evaluated")

    def validate_choices(self) -> None:
        super().validate_choices()
        if self.estimator not in GATE_ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(GATE_ESTIMATORS)}, got {self.estimator!r}")
        if self.relative_tolerance < 0.0 or self.replicates < 20:
            raise ValueError("relative_tolerance must be non-negative and replicates at least 20")


def _interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    from rl_bakery_dagster.evaluation.sequential import percentile_interval

    return percentile_interval(replicates, confidence)


def gate_sentence(
    outcome: str,
    name: str,
    value: float,
    low: float,
    high: float,
    tol: float,
    ess: float,
    floor: float,
    confidence: float,
) -> str:
    """Why the gate decided what it did, with the numbers."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, REFUSED

    if not all(math.isfinite(x) for x in (value, low, high)):
        return "Not enough evidence: no complete decision was logged on the day, so nothing was checked."
    change = (
        f"The {name} estimate says the candidate changes the return per episode by {value:+.4g} versus the "
        f"logging policy ({confidence:.0%} bootstrap CI {low:+.4g} to {high:+.4g})"
    )
    if ess < floor:
        return (
            f"{change}, but the effective number of episodes is {ess:.1f}, below the floor of {floor:g}: "
            "not enough evidence either way."
        )
    if outcome == REFUSED:
        return (
            f"{change}; the whole interval is below {-tol:+.4g}, so the candidate is confidently worse "
            "and is refused."
        )
    if outcome == ACCEPTED:
        return (
            f"{change}; the whole interval is at or above {-tol:+.4g}, so the candidate is confidently not "
            "worse and is accepted."
        )
    return f"{change}; the interval straddles {-tol:+.4g}, so there is not enough evidence either way."


def evaluate_rl_day(
    app: Application,
    logged: DataFrame,
    checkpoint_uri: str,
    epsilon: float,
    config: SequentialEvaluationConfig,
) -> dict:
    """Estimates, intervals and the gate's outcome for one candidate on one day of episodes."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, three_way_decision
    from rl_bakery_dagster.evaluation.sequential import (
        effective_episodes,
        estimates,
        logging_value,
        spark_episode_sums,
    )
    from rl_bakery_dagster.transforms.decisions import EPISODE, logged_decisions, score_decisions

    settings = read_json(f"{checkpoint_uri}/{METRICS}")[SETTINGS]
    gamma = float(config.discount if config.discount is not None else settings["gamma"])
    decisions = logged_decisions(logged, app.schema)
    scored = score_decisions(
        decisions,
        app.schema,
        checkpoint_uri,
        settings,
        app.action_space.num_actions,
        app.trajectory.n_step,
        epsilon,
    )
    sums = spark_episode_sums(
        scored,
        [*app.schema.env_id_columns, EPISODE],
        replicates=config.replicates,
        seed=config.seed,
        max_horizon=config.max_horizon,
    )
    values = estimates(sums, gamma)
    ess = float(effective_episodes(sums)[0])
    record_estimates = {}
    for name, replicates in values.items():
        low, high = _interval(replicates[1:], config.confidence)
        record_estimates[name] = {"value": float(replicates[0]), "lower": low, "upper": high}
    paired = values[config.estimator] - values["logging"]
    low, high = _interval(paired[1:], config.confidence)
    difference = float(paired[0])
    record_estimates[f"{config.estimator}_minus_logging"] = {"value": difference, "lower": low, "upper": high}
    observed = float(logging_value(sums, 1.0)[0])
    tolerance = config.tolerance + config.relative_tolerance * abs(float(values["logging"][0]))
    outcome = three_way_decision(low, high, tolerance, ess, config.min_effective_sample_size)
    reason = gate_sentence(
        outcome,
        config.estimator,
        difference,
        low,
        high,
        tolerance,
        ess,
        config.min_effective_sample_size,
        config.confidence,
    )
    if not config.gate:
        outcome, reason = ACCEPTED, "The deployment gate is switched off; the candidate is deployed."
    return {
        "episodes": int(sums.episodes[0]),
        "horizon": sums.horizon,
        "discount": gamma,
        "effective_episodes": ess,
        "logging_observed_return_per_episode": observed,
        "tolerance": tolerance,
        "estimator": config.estimator,
        "estimates": record_estimates,
        "confidence": config.confidence,
        "replicates": config.replicates,
        "outcome": outcome,
        "accepted": outcome == ACCEPTED,
        "reason": reason,
    }


def rl_day_metadata(record: Mapping) -> dict[str, object]:
    """What the UI shows for one day: the outcome, each estimate with its interval, ESS, observed return."""
    metadata: dict[str, object] = {
        "outcome": record["outcome"],
        "accepted": record["accepted"],
        "deployed": record["deployment"],
        "deployed_checkpoint": record["deployed_checkpoint"] or "none (uniform random)",
        "gate": record["reason"],
        "episodes": record["episodes"],
    }
    numbers = {
        "effective_sample_size": record["effective_episodes"],
        "logging_observed_return_per_episode": record["logging_observed_return_per_episode"],
    }
    for name, e in record["estimates"].items():
        numbers |= {name: e["value"], f"{name}_lower": e["lower"], f"{name}_upper": e["upper"]}
    for name, value in numbers.items():
        if value is not None and math.isfinite(value):
            metadata[name] = float(value)
    return metadata


def build_rl_policy_evaluation_asset(
    app: Application, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    arguments = evaluation_asset_arguments(app, partitions)
    key = arguments["key"]

    @dg.asset(**arguments)
    def policy_evaluation(
        context: dg.AssetExecutionContext,
        config: SequentialEvaluationConfig,
        agent_checkpoint: dict[str, str],
        timesteps: DataFrame,
        previous_evaluation: dict[str, str],
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Off-policy value of the candidate policy on the day's episodes (which it never trained on),
        and whether it may be deployed."""
        config.validate_choices()
        yield from judge_days(
            context,
            app,
            key,
            agent_checkpoint,
            timesteps,
            previous_evaluation,
            lambda logged, checkpoint, epsilon: evaluate_rl_day(app, logged, checkpoint, epsilon, config),
            lambda outcome, candidate, last: choose_deployment(outcome, candidate, last, config),
            rl_day_metadata,
        )

    return policy_evaluation


def has_sequential_evaluation(app: Application) -> bool:
    """RL applications with discrete actions, logged propensities and a lag get `policy_evaluation`."""
    return (
        not app.is_bandit
        and app.action_space.is_discrete
        and app.schema.action_prob_column is not None
        and app.trajectory.lag_days >= 1
    )

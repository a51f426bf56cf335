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
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from pydantic import Field
from pyspark.sql import DataFrame

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.assets.evaluation import (
    CANARY,
    ON_NOT_ENOUGH_EVIDENCE,
    CanaryPlan,
    OffPolicyEvaluationConfig,
    choose_deployment,
    evaluation_asset_arguments,
    judge_days,
)
from rl_bakery_dagster.checkpoint_format import METRICS
from rl_bakery_dagster.checkpoint_settings import SETTINGS
from rl_bakery_dagster.resources.io_managers import ParquetPartitions, read_json

if TYPE_CHECKING:
    from rl_bakery_dagster.evaluation.fqe import FQEResult, FQESettings
    from rl_bakery_dagster.transforms.decisions import Candidate

GATE_ESTIMATORS = ("fqe", "wdr", "pdwis")


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
    estimator: str = Field(
        default="fqe",
        description="what the gate judges: fqe (fitted Q evaluation of both policies, paired), wdr or pdwis "
        "(each against the logging policy's observed return)",
    )
    fqe_train_steps: int = Field(
        default=8000,
        description="gradient steps of fitted Q evaluation (0: no FQE, for wdr/pdwis gates); with "
        "fqe_target_update_period they make train_steps / period Bellman backups, which must reach the "
        "episodes' effective horizon (about 1 / (1 - discount) or the episode length, if shorter)",
    )
    fqe_batch_size: int = Field(default=256, description="transitions per FQE gradient step")
    fqe_learning_rate: float = Field(default=1e-3, description="Adam learning rate of FQE")
    fqe_target_update_period: int = Field(default=100, description="FQE steps between target-network copies")
    fqe_fc_layer_params: list[int] = Field(
        default=[64, 64], description="hidden layers of the FQE Q-networks (ReLU MLP)"
    )
    fqe_rare_propensity: float = Field(
        default=0.1,
        description="a state is poorly covered for FQE when the logging policy takes the candidate's greedy "
        "action there with less than this probability",
    )
    fqe_max_poorly_covered: float = Field(
        default=0.1,
        description="FQE is trusted only when at most this share of the day's states is poorly covered; "
        "otherwise its values are extrapolation and the outcome is 'not enough evidence'",
    )
    wdr_refuses_without_floor: bool = Field(
        default=True,
        description="also refuse when the wdr - logging interval lies wholly below the tolerance, whatever "
        "the effective sample size: where the importance weights run out, weighted doubly robust leans on "
        "the candidate's own Q-network, so a refusal means that even by its own account, with the logged "
        "rewards, the candidate is worse (benchmarks/LEARNING.md, 'Registered before seeds 10-19')",
    )
    on_not_enough_evidence: str = Field(
        default=CANARY,
        description="what action_batch deploys when there is not enough evidence: canary (the RL default: "
        "the last accepted checkpoint to most users and the candidate to canary_share of them, judged "
        "on-policy on the next day's logs; needs TimestepSchema.policy_version_column, without which it "
        "is keep_last_accepted), keep_last_accepted (a sequential policy nobody could check is not played "
        "to anyone), explore (the candidate with epsilon raised to exploration_when_unsure), or candidate "
        "(as trained)",
    )
    canary_share: float = Field(
        default=0.2,
        description="the share of users (a stable hash of their env ids and the day) that play a candidate "
        "with not enough evidence for a day (on_not_enough_evidence: canary)",
    )
    min_canary_episodes: float = Field(
        default=10.0,
        description="below this many episodes played whole by the canary (or by the other users) on its day, "
        "the canary's verdict is 'not enough evidence' and it is not deployed",
    )
    replicates: int = Field(default=200, description="Poisson bootstrap replicates over episodes")
    seed: int = Field(default=0, description="seeds the bootstrap weights")
    discount: float | None = Field(
        default=None, description="discount of the evaluated return (default: the agent's gamma)"
    )
    max_horizon: int = Field(default=10_000, description="most decisions per episode evaluated")

    def not_enough_evidence_choices(self) -> tuple[str, ...]:
        return (CANARY, *ON_NOT_ENOUGH_EVIDENCE)

    def validate_choices(self) -> None:
        super().validate_choices()
        if not 0.0 < self.canary_share <= 0.5 or self.min_canary_episodes < 0.0:
            raise ValueError(
                f"canary_share must lie in (0, 0.5] (a canary is the minority), got {self.canary_share}, and "
                f"min_canary_episodes must be non-negative, got {self.min_canary_episodes}"
            )
        if self.estimator not in GATE_ESTIMATORS:
            raise ValueError(f"estimator must be one of {', '.join(GATE_ESTIMATORS)}, got {self.estimator!r}")
        if self.relative_tolerance < 0.0 or self.replicates < 20:
            raise ValueError("relative_tolerance must be non-negative and replicates at least 20")
        if self.fqe_train_steps < 0 or (self.estimator == "fqe" and self.fqe_train_steps == 0):
            raise ValueError("fqe_train_steps must be positive when the gate's estimator is fqe")
        if not (0.0 < self.fqe_rare_propensity <= 1.0 and 0.0 <= self.fqe_max_poorly_covered <= 1.0):
            raise ValueError("fqe_rare_propensity must lie in (0, 1] and fqe_max_poorly_covered in [0, 1]")
        if self.fqe_batch_size < 1 or self.fqe_target_update_period < 1 or self.fqe_learning_rate <= 0.0:
            raise ValueError(
                "fqe_batch_size, fqe_target_update_period and fqe_learning_rate must be positive"
            )

    def fqe_settings(self) -> "FQESettings":
        from rl_bakery_dagster.evaluation.fqe import FQESettings

        return FQESettings(
            train_steps=self.fqe_train_steps,
            batch_size=self.fqe_batch_size,
            learning_rate=self.fqe_learning_rate,
            target_update_period=self.fqe_target_update_period,
            fc_layer_params=tuple(self.fqe_fc_layer_params),
            seed=self.seed,
        )


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
        # fitted Q evaluation weighs every episode alike: its evidence is the episodes themselves
        evidence = (
            f"the day has {ess:.0f} episodes"
            if name == "fqe"
            else f"the effective number of episodes is {ess:.1f}"
        )
        return f"{change}, but {evidence}, below the floor of {floor:g}: not enough evidence either way."
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


def wdr_refusal(
    verdict: Mapping, wdr_verdict: Mapping | None, difference: Mapping, ess: float, confidence: float
) -> dict | None:
    """The `wdr_refuses_without_floor` verdict (None: it does not refuse): the `wdr - logging` interval
    lies wholly below its tolerance, and the gate's own estimator has not already refused."""
    from rl_bakery_dagster.evaluation.estimators import REFUSED

    if wdr_verdict is None or verdict["outcome"] == REFUSED:
        return None
    low, high, tolerance = difference["lower"], difference["upper"], wdr_verdict["tolerance"]
    if not (math.isfinite(high) and high < -tolerance):
        return None
    return {
        "outcome": REFUSED,
        "tolerance": tolerance,
        "compared_with": "logging",
        "reason": (
            "The wdr estimate says the candidate changes the return per episode by "
            f"{difference['value']:+.4g} versus the logging policy ({confidence:.0%} bootstrap CI {low:+.4g} "
            f"to {high:+.4g}); the whole interval is below {-tolerance:+.4g}. With {ess:.1f} effective "
            "episodes that rests mostly on the candidate's own Q-network: even by its own account, with the "
            "logged rewards, it is worse, so it is refused (wdr_refuses_without_floor)."
        ),
    }


def canary_sentence(outcome: str, judged: Mapping, tolerance: float, floor: float, confidence: float) -> str:
    """Why the canary's verdict is what it is, with the numbers."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, REFUSED

    canary, other = judged["canary_episodes"], judged["other_episodes"]
    if min(canary, other) < floor or not math.isfinite(judged["difference"]["value"]):
        means = [
            f"{name} returned {judged[key]:.4g} per episode"
            for name, key in (("the canary", "canary_return"), ("the others", "other_return"))
            if math.isfinite(judged[key])
        ]
        return (
            f"The canary's day holds {canary:.0f} episodes played whole by the canary and {other:.0f} by "
            f"the other users{' (' + ', '.join(means) + ')' if means else ''}, below the floor of {floor:g} "
            "for either: not enough evidence, so it is not deployed."
        )
    d = judged["difference"]
    change = (
        f"Played to its canary, the candidate returned {judged['canary_return']:.4g} per episode over "
        f"{canary:.0f} episodes, the other users' policy {judged['other_return']:.4g} over {other:.0f}: a "
        f"difference of {d['value']:+.4g} ({confidence:.0%} bootstrap CI {d['lower']:+.4g} to "
        f"{d['upper']:+.4g})"
    )
    if outcome == REFUSED:
        return f"{change}; the whole interval is below {-tolerance:+.4g}: confidently worse, refused."
    if outcome == ACCEPTED:
        return (
            f"{change}; the whole interval is at or above {-tolerance:+.4g}: confidently not worse, accepted "
            "on-policy; it is now the last accepted checkpoint."
        )
    return f"{change}; the interval straddles {-tolerance:+.4g}: not enough evidence, so it is not deployed."


def evaluate_canary(
    app: Application, logged: DataFrame, canary_version: str, config: SequentialEvaluationConfig
) -> dict:
    """The on-policy verdict on a canary from the logs of the day it played (`evaluation.canary`): the
    bootstrap interval (each replicate resamples both arms' episodes) of its mean observed return per
    episode minus the other users', judged by the gate's three-way decision and tolerance (relative to
    the other users' return)."""
    from rl_bakery_dagster.evaluation.canary import canary_replicates
    from rl_bakery_dagster.evaluation.estimators import three_way_decision
    from rl_bakery_dagster.transforms.decisions import EPISODE, logged_decisions

    decisions = logged_decisions(logged, app.schema, with_policy_version=True)
    episode_columns = [*app.schema.env_id_columns, EPISODE]
    arms = canary_replicates(decisions, episode_columns, canary_version, config.replicates, config.seed)
    difference = arms["canary_mean"] - arms["other_mean"]
    low, high = _interval(difference[1:], config.confidence)
    other = float(arms["other_mean"][0])
    tolerance = config.tolerance + config.relative_tolerance * (abs(other) if math.isfinite(other) else 0.0)
    canary_episodes, other_episodes = float(arms["canary"][0]), float(arms["other"][0])
    outcome = three_way_decision(
        low, high, tolerance, min(canary_episodes, other_episodes), config.min_canary_episodes
    )
    judged = {
        "outcome": outcome,
        "canary_episodes": canary_episodes,
        "other_episodes": other_episodes,
        "canary_return": float(arms["canary_mean"][0]),
        "other_return": other,
        "difference": {"value": float(difference[0]), "lower": low, "upper": high},
        "tolerance": tolerance,
    }
    judged["reason"] = canary_sentence(
        outcome, judged, tolerance, config.min_canary_episodes, config.confidence
    )
    return judged


def fqe_support(scored: DataFrame, rare: float) -> dict[str, float]:
    """The day's reward range and the share of its states where the logging policy rarely takes the
    candidate's greedy action g(s), on Spark: ``P_s(pi_b(g(s)|s) < rare)`` is estimated without bias by
    the mean of ``1[a = g(s)] * 1[p < rare] / p`` over logged decisions (a, p), since the log takes
    g(s) with probability pi_b(g(s)|s). Uniform logs give 0; an epsilon-greedy log, the share of states
    where the candidate disagrees with the logging policy's greedy action."""
    from pyspark.sql import functions as F

    hit = (F.col("action") == F.col("greedy_action")) & (F.col("action_prob") < rare)
    row = scored.agg(
        F.avg(F.when(hit, 1.0 / F.col("action_prob")).otherwise(0.0)).alias("poorly_covered"),
        F.min("reward").alias("reward_min"),
        F.max("reward").alias("reward_max"),
    ).first()
    values = {
        key: (row[key] if row is not None else None) for key in ("poorly_covered", "reward_min", "reward_max")
    }
    return {key: float(value) if value is not None else math.nan for key, value in values.items()}


def possible_values(support: Mapping[str, float], gamma: float, max_horizon: int) -> tuple[float, float]:
    """The range every policy's value lies in, from the day's reward range: the discounted sum of
    ``1 / (1 - gamma)`` rewards (``max_horizon`` of them when undiscounted)."""
    steps = 1.0 / (1.0 - gamma) if gamma < 1.0 else float(max_horizon)
    return min(0.0, support["reward_min"]) * steps, max(0.0, support["reward_max"]) * steps


def fqe_distrust(
    values: Mapping[str, np.ndarray], support: Mapping[str, float], config: SequentialEvaluationConfig
) -> str | None:
    """Why FQE's estimate cannot be trusted on this day (None: it can): a value no policy can have
    (the regression diverged), or too many states where the candidate's action was rarely logged
    (its values there are the network's extrapolation, not evidence)."""
    low, high = support["possible_low"], support["possible_high"]
    slack = 1e-6 * max(1.0, abs(low), abs(high))
    for name in ("fqe", "fqe_logging"):
        value = float(values[name][0])
        if not (math.isfinite(value) and low - slack <= value <= high + slack):
            return (
                f"Not enough evidence: fitted Q evaluation diverged ({name} = {value:.4g}, but every "
                f"policy's value lies in [{low:.4g}, {high:.4g}] given the day's rewards)."
            )
    share, limit = support["poorly_covered"], config.fqe_max_poorly_covered
    if math.isfinite(share) and share > limit:
        return (
            f"Not enough evidence: in an estimated {share:.0%} of the day's states the logging policy rarely "
            f"took the candidate's action (probability below {config.fqe_rare_propensity:g}), more than "
            f"{limit:.0%}: fitted Q evaluation would extrapolate there. Logs played with more exploration "
            "(the agent's epsilon, or on_not_enough_evidence: explore) cover such candidates."
        )
    return None


def fit_day_fqe(
    app: Application,
    trajectory_uri: str | None,
    candidate: "Candidate",
    gamma: float,
    config: SequentialEvaluationConfig,
    log: Callable[[str], None] | None,
) -> "FQEResult | None":
    """FQE of the candidate and of the logging policy on the day's stored transitions (None: none)."""
    from rl_bakery_dagster.evaluation.fqe import fit_q_evaluation
    from rl_bakery_dagster.training.daily import transition_layout
    from rl_bakery_dagster.training.dataset import transition_dataset
    from rl_bakery_dagster.training.trainer import count_rows
    from rl_bakery_dagster.transforms.decisions import candidate_q_function

    if trajectory_uri is None or config.fqe_train_steps == 0:
        return None
    filesystem, files = ParquetPartitions({"day": trajectory_uri}).files()
    transitions = count_rows(filesystem, files)
    if transitions == 0:
        return None
    if log:
        log(f"fitted Q evaluation: {config.fqe_train_steps} steps on {transitions} transitions")
    dataset = transition_dataset(
        filesystem,
        files,
        transition_layout(app),
        config.fqe_batch_size,
        int(dict(candidate.settings).get("shuffle_buffer_rows", 100_000)),
        config.seed,
    )
    candidate_q = candidate_q_function(
        candidate.checkpoint_uri,
        candidate.settings,
        candidate.observation_size,
        candidate.num_actions,
        candidate.n_step,
    )
    return fit_q_evaluation(
        dataset,
        candidate_q,
        candidate.epsilon,
        gamma,
        candidate.observation_size,
        candidate.num_actions,
        config.fqe_settings(),
        log,
    )


def evaluate_rl_day(
    app: Application,
    logged: DataFrame,
    trajectory_uri: str | None,
    checkpoint_uri: str,
    epsilon: float,
    config: SequentialEvaluationConfig,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Estimates, intervals and the gate's outcome for one candidate on one day of episodes.

    `trajectory_uri`: the day's stored transitions, which fitted Q evaluation trains on.
    """
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, NOT_ENOUGH_EVIDENCE, three_way_decision
    from rl_bakery_dagster.evaluation.sequential import (
        discounted_effective_episodes,
        effective_episodes,
        estimates,
        logging_value,
        spark_episode_sums,
        spark_start_sums,
    )
    from rl_bakery_dagster.transforms.decisions import (
        EPISODE,
        Candidate,
        frozen_settings,
        logged_decisions,
        score_decisions,
        score_episode_starts,
    )

    settings = read_json(f"{checkpoint_uri}/{METRICS}")[SETTINGS]
    gamma = float(config.discount if config.discount is not None else settings["gamma"])
    num_actions, n_step = app.action_space.num_actions, app.trajectory.n_step
    episode_columns = [*app.schema.env_id_columns, EPISODE]
    decisions = logged_decisions(logged, app.schema)
    candidate = Candidate(
        checkpoint_uri, frozen_settings(settings), app.schema.observation_size, num_actions, n_step, epsilon
    )
    # two aggregations read the scores: score each decision (a Q-network forward pass) once
    scored = score_decisions(decisions, app.schema, candidate).persist()
    try:
        sums = spark_episode_sums(
            scored,
            episode_columns,
            replicates=config.replicates,
            seed=config.seed,
            max_horizon=config.max_horizon,
        )
        support = fqe_support(scored, config.fqe_rare_propensity)
    finally:
        scored.unpersist()
    values = estimates(sums, gamma)
    baseline = {name: "logging" for name in values}
    fitted = fit_day_fqe(app, trajectory_uri, candidate, gamma, config, log)
    if fitted is not None:
        starts = score_episode_starts(decisions, app.schema, candidate, fitted)
        episodes, totals = spark_start_sums(
            starts, episode_columns, ["fqe_candidate", "fqe_logging"], config.replicates, config.seed
        )
        safe = np.where(episodes > 0, episodes, np.nan)
        values["fqe"] = totals["fqe_candidate"] / safe
        values["fqe_logging"] = totals["fqe_logging"] / safe
        baseline["fqe"] = "fqe_logging"
        low_bound, high_bound = possible_values(support, gamma, config.max_horizon)
        support |= {"possible_low": low_bound, "possible_high": high_bound}
    ess = float(effective_episodes(sums)[0])
    record_estimates = {}
    for name, replicates in values.items():
        low, high = _interval(replicates[1:], config.confidence)
        record_estimates[name] = {"value": float(replicates[0]), "lower": low, "upper": high}
    verdicts: dict[str, dict] = {}
    for name, compared_with in baseline.items():
        if name == compared_with:
            continue
        paired = values[name] - values[compared_with]
        low, high = _interval(paired[1:], config.confidence)
        record_estimates[f"{name}_minus_{compared_with}"] = {
            "value": float(paired[0]),
            "lower": low,
            "upper": high,
        }
        reference = abs(float(values[compared_with][0]))
        tolerance = config.tolerance + config.relative_tolerance * (
            reference if math.isfinite(reference) else 0.0
        )
        # FQE needs no importance weights: its evidence is the number of episodes, not Kish's ESS
        evidence = float(sums.episodes[0]) if name == "fqe" else ess
        outcome = three_way_decision(low, high, tolerance, evidence, config.min_effective_sample_size)
        distrust = fqe_distrust(values, support, config) if name == "fqe" else None
        verdicts[name] = {
            "outcome": outcome,
            "tolerance": tolerance,
            "compared_with": compared_with,
            "reason": gate_sentence(
                outcome,
                name,
                float(paired[0]),
                low,
                high,
                tolerance,
                evidence,
                config.min_effective_sample_size,
                config.confidence,
            ),
        }
        if distrust is not None:
            verdicts[name] |= {"outcome": NOT_ENOUGH_EVIDENCE, "reason": distrust}
    observed = float(logging_value(sums, 1.0)[0])
    verdict = verdicts.get(config.estimator)
    if verdict is None:  # FQE had no transitions to learn from
        verdict = {
            "outcome": NOT_ENOUGH_EVIDENCE,
            "tolerance": math.nan,
            "compared_with": "fqe_logging",
            "reason": "Not enough evidence: the day has no stored transitions for fitted Q evaluation.",
        }
    if config.wdr_refuses_without_floor and "wdr_minus_logging" in record_estimates:
        verdict = (
            wdr_refusal(
                verdict, verdicts.get("wdr"), record_estimates["wdr_minus_logging"], ess, config.confidence
            )
            or verdict
        )
    outcome, reason, tolerance = verdict["outcome"], verdict["reason"], verdict["tolerance"]
    compared_with = verdict["compared_with"]
    if not config.gate:
        outcome, reason = ACCEPTED, "The deployment gate is switched off; the candidate is deployed."
    return {
        "episodes": int(sums.episodes[0]),
        "horizon": sums.horizon,
        "discount": gamma,
        "effective_episodes": ess,
        "discounted_effective_episodes": float(discounted_effective_episodes(sums, gamma)[0]),
        "logging_observed_return_per_episode": observed,
        "tolerance": tolerance,
        "estimator": config.estimator,
        "compared_with": compared_with,
        "estimates": record_estimates,
        "outcome_by_estimator": {name: v["outcome"] for name, v in verdicts.items()},
        "fqe_final_loss": fitted.final_loss if fitted else None,
        "poorly_covered_share": support["poorly_covered"],
        "fqe_train_steps": fitted.train_steps if fitted else 0,
        "confidence": config.confidence,
        "replicates": config.replicates,
        "outcome": outcome,
        "accepted": outcome == ACCEPTED,
        "reason": reason,
    }


def rl_day_metadata(record: Mapping) -> dict[str, object]:
    """What the UI shows for one day: the outcome, each estimate with its interval, ESS, observed return,
    and the verdict on the canary judged that day."""
    metadata: dict[str, object] = {
        "outcome": record["outcome"],
        "accepted": record["accepted"],
        "deployed": record["deployment"],
        "deployed_checkpoint": record["deployed_checkpoint"] or "none (uniform random)",
        "gate": record["reason"],
        "episodes": record["episodes"],
    }
    if record.get("canary"):
        metadata["canary_next_day"] = (
            f"agent_checkpoint[{record['canary']['checkpoint']}] to {record['canary']['share']:.0%} of users"
        )
    judged = record.get("canary_judged")
    if judged:
        metadata |= {
            "canary_judged": f"agent_checkpoint[{judged['checkpoint']}]",
            "canary_outcome": judged["outcome"],
            "canary_verdict": judged["reason"],
        }
    numbers = {
        "effective_sample_size": record["effective_episodes"],
        "discounted_effective_sample_size": record.get("discounted_effective_episodes"),
        "logging_observed_return_per_episode": record["logging_observed_return_per_episode"],
        "fqe_final_loss": record.get("fqe_final_loss"),
        "poorly_covered_share": record.get("poorly_covered_share"),
    }
    for name, e in record["estimates"].items():
        numbers |= {name: e["value"], f"{name}_lower": e["lower"], f"{name}_upper": e["upper"]}
    if judged:
        d = judged["difference"]
        numbers |= {
            "canary_return": judged["canary_return"],
            "canary_other_return": judged["other_return"],
            "canary_episodes": judged["canary_episodes"],
            "canary_minus_other": d["value"],
            "canary_minus_other_lower": d["lower"],
            "canary_minus_other_upper": d["upper"],
        }
    for name, value in numbers.items():
        if value is not None and math.isfinite(value):
            metadata[name] = float(value)
    return metadata


def build_rl_policy_evaluation_asset(
    app: Application, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    arguments = evaluation_asset_arguments(app, partitions)
    key = arguments["key"]
    arguments["ins"] = {**arguments["ins"], "trajectories": dg.AssetIn(key=[app.name, "trajectories"])}

    @dg.asset(**arguments)
    def policy_evaluation(
        context: dg.AssetExecutionContext,
        config: SequentialEvaluationConfig,
        agent_checkpoint: dict[str, str],
        timesteps: DataFrame,
        trajectories: ParquetPartitions,
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
            lambda day, logged, checkpoint, epsilon: evaluate_rl_day(
                app, logged, trajectories.uris.get(day), checkpoint, epsilon, config, context.log.info
            ),
            lambda outcome, candidate, last: choose_deployment(outcome, candidate, last, config),
            rl_day_metadata,
            canary_plan(app, config, context.log.warning),
        )

    return policy_evaluation


def canary_plan(
    app: Application, config: SequentialEvaluationConfig, warn: Callable[[str], None] | None = None
) -> CanaryPlan | None:
    """Canaries for an application whose logs name the policy of each row (None otherwise: a canary's
    users could not be told apart, so with on_not_enough_evidence: canary the last accepted stays)."""
    if not app.schema.policy_version_column:
        if warn is not None and config.on_not_enough_evidence == CANARY:
            warn(
                f"{app.name}: on_not_enough_evidence is canary, but the timestep schema has no "
                "policy_version_column: no canary can be judged, so a candidate with not enough evidence is "
                "not played to anyone (keep_last_accepted)"
            )
        return None
    return CanaryPlan(
        share=config.canary_share,
        start=config.on_not_enough_evidence == CANARY and config.gate,
        judge=lambda _day, logged, canary: evaluate_canary(app, logged, canary["policy_version"], config),
    )


def has_sequential_evaluation(app: Application) -> bool:
    """RL applications with discrete actions, logged propensities and a lag get `policy_evaluation`."""
    return (
        not app.is_bandit
        and app.action_space.is_discrete
        and app.schema.action_prob_column is not None
        and app.trajectory.lag_days >= 1
    )

"""`policy_evaluation[d]`: the candidate `agent_checkpoint[d]` judged on day d's logs, before deployment.

A bandit application trains with `lag_days >= 1`, so day d's logs are data the candidate never
saw. They were collected by the logging policy (the product's, or yesterday's deployed batch) with
logged propensities, so the candidate's value is estimated off-policy (IPS, SNIPS, the direct
method and doubly robust, `rl_bakery_dagster.evaluation.estimators`) with one Spark aggregation.

The deployment gate compares the candidate with the logging policy on the same rows, with
empirical-Bernstein intervals that hold at any sample size for rewards in the application's
`reward_range`, and has three outcomes (`DEPLOYMENT_RULES` says what each deploys):

- accepted: not worse than the logging policy by more than `tolerance`, with confidence → the candidate;
- refused: confidently worse by more than `tolerance` → the last accepted checkpoint (`on_refused`);
- not enough evidence: the interval straddles `-tolerance`, or the effective sample size is below
  `min_effective_sample_size` → by default the candidate with more exploration
  (`on_not_enough_evidence`, `exploration_when_unsure`), so tomorrow's logs say more.

A candidate that is not deployed stays on disk, and the `deployment_gate` check says what happened.
"""

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY, METRICS
from rl_bakery_dagster.checkpoint_settings import (
    CheckpointMismatch,
    DeployedCheckpoint,
    deployed_checkpoint_record,
)
from rl_bakery_dagster.concurrency import application_pool
from rl_bakery_dagster.metadata import readable
from rl_bakery_dagster.partitions import previous_day, shift_day, single_run
from rl_bakery_dagster.resources.io_managers import AgentArtifacts, read_json
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN

EVALUATION_RECORD = "evaluation.json"
GATE_CHECK = "deployment_gate"
MAX_LOGGING_POLICIES = 20
"""Observed values are reported for at most this many logging policy versions per day."""
KEEP_LAST_ACCEPTED, EXPLORE, CANDIDATE, UNIFORM_RANDOM, CANARY = (
    "keep_last_accepted",
    "explore",
    "candidate",
    "uniform_random",
    "canary",
)
ON_REFUSED = (KEEP_LAST_ACCEPTED, UNIFORM_RANDOM)
ON_NOT_ENOUGH_EVIDENCE = (EXPLORE, KEEP_LAST_ACCEPTED, CANDIDATE)
GATE_DESCRIPTION = (
    "Whether the candidate policy may be deployed, judged on the day's unseen logs with intervals that hold "
    "at any sample size. accepted: not worse than the logging policy by more than the tolerance, with "
    "confidence; the candidate is deployed. refused: confidently worse by more than the tolerance; "
    "action_batch deploys the last accepted policy (on_refused). not enough evidence: the interval is too "
    "wide or the effective sample size is below the floor; action_batch deploys what on_not_enough_evidence "
    "says (by default the candidate with more exploration). The check passes only when every day is "
    "accepted; otherwise it warns (a WARN does not block action_batch, which deploys as described)."
)
RL_GATE_DESCRIPTION = (
    "Whether the candidate agent may be deployed, judged on the day's episodes, which it never trained on "
    "(lag_days >= 1), by the paired difference between its estimated return per episode and the logging "
    "policy's (the estimator in the config: fitted Q evaluation by default), with a bootstrap interval "
    "over episodes. accepted: not worse by more than the tolerance, with confidence; the candidate is "
    "deployed. refused: confidently worse by more than the tolerance, or (wdr_refuses_without_floor) "
    "weighted doubly robust's interval lies wholly below it however few effective episodes the day holds; "
    "the last accepted checkpoint stays deployed (on_refused). not enough evidence: the interval "
    "straddles the tolerance, the evidence is below the floor, or fitted Q evaluation is not trusted (it "
    "diverged, or the logs rarely take the candidate's actions); what on_not_enough_evidence says is "
    "deployed (by default the last accepted checkpoint, and the candidate to a canary of canary_share of "
    "users for one day, judged on-policy on the next day's logs: accepted there, it becomes the last "
    "accepted checkpoint). The check passes only when every day is accepted; otherwise it warns (a WARN "
    "does not block action_batch, which deploys as described)."
)


class OffPolicyEvaluationConfig(dg.Config):
    confidence: float = Field(default=0.95, description="level of every confidence interval")
    gate: bool = Field(
        default=True, description="judge candidates before deployment (off: every candidate is deployed)"
    )
    model_free_check: bool = Field(
        default=False,
        description="also judge the paired IPS-minus-logging difference, which needs no reward model: "
        "the candidate is refused if either check refuses it and accepted only if both accept it",
    )
    tolerance: float = Field(
        default=0.0,
        description="the reward per row the candidate may lose: refused only if confidently worse by more, "
        "accepted only if confidently not worse by more",
    )
    min_effective_sample_size: float = Field(
        default=100.0,
        description="below this effective sample size (Kish) the outcome is 'not enough evidence'",
    )
    on_refused: str = Field(
        default=KEEP_LAST_ACCEPTED,
        description="what action_batch deploys when the candidate is refused: keep_last_accepted (uniformly "
        "random before any was accepted) or uniform_random",
    )
    on_not_enough_evidence: str = Field(
        default=EXPLORE,
        description="what action_batch deploys when there is not enough evidence: explore (the candidate "
        "with epsilon raised to exploration_when_unsure), keep_last_accepted, or candidate (as trained)",
    )
    exploration_when_unsure: float = Field(
        default=0.3,
        description="epsilon of the candidate deployed with on_not_enough_evidence=explore "
        "(at least its own)",
    )
    calibrate_reward_model: bool = Field(
        default=True,
        description="shift the reward model's predictions so that their mean on the day's logs equals the "
        "observed reward, then clip them into the reward range, before DM and DR",
    )

    def not_enough_evidence_choices(self) -> tuple[str, ...]:
        return ON_NOT_ENOUGH_EVIDENCE

    def validate_choices(self) -> None:
        """Raises a sentence for a value outside the documented choices (checked before any work)."""
        if self.on_refused not in ON_REFUSED:
            raise ValueError(f"on_refused must be one of {', '.join(ON_REFUSED)}, got {self.on_refused!r}")
        choices = self.not_enough_evidence_choices()
        if self.on_not_enough_evidence not in choices:
            raise ValueError(
                f"on_not_enough_evidence must be one of {', '.join(choices)}, "
                f"got {self.on_not_enough_evidence!r}"
            )
        if not 0.0 <= self.exploration_when_unsure <= 1.0:
            raise ValueError(
                f"exploration_when_unsure must lie in [0, 1], got {self.exploration_when_unsure}"
            )
        if self.tolerance < 0.0 or self.min_effective_sample_size < 0.0:
            raise ValueError("tolerance and min_effective_sample_size must be non-negative")


def stored_checkpoint(app: Application, checkpoints: Mapping[str, str], day: str, needed_by: str) -> str:
    """The URI of `agent_checkpoint[day]`, or a failure saying which partition to materialise first."""
    if day not in checkpoints:
        raise dg.Failure(
            f"{needed_by}[{day}] needs {app.name}/agent_checkpoint[{day}], which is not materialised; "
            f"materialise agent_checkpoint for {day} first (for example the daily_training job for "
            f"that partition, or a backfill up to {day})."
        )
    return checkpoints[day]


def deployment_record(app: Application, checkpoint_uri: str, day: str) -> DeployedCheckpoint:
    """Train steps, epsilon and seed of a checkpoint, as the checkpoint recorded them."""
    metrics = read_json(f"{checkpoint_uri}/{METRICS}")
    try:
        return deployed_checkpoint_record(metrics, app.action_space.is_discrete, f"agent_checkpoint[{day}]")
    except CheckpointMismatch as error:
        raise dg.Failure(str(error)) from error


def policy_version(app_name: str, day: str, steps: int) -> str:
    """`app@day#stepN`: names a checkpoint by its day and its agent's total train steps."""
    return f"{app_name}@{day}#step{steps}"


def _estimates_record(estimates: Mapping) -> dict:
    return {
        name: {
            "value": e.value,
            "lower": e.lower,
            "upper": e.upper,
            "std_error": e.std_error,
            "interval": e.interval,
            "normal_lower": e.normal_lower,
            "normal_upper": e.normal_upper,
        }
        for name, e in estimates.items()
    }


def _combine(model_based: str, model_free: str) -> str:
    """The more cautious of two outcomes: refused if either refuses, accepted only if both accept."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, NOT_ENOUGH_EVIDENCE, REFUSED

    if REFUSED in (model_based, model_free):
        return REFUSED
    return ACCEPTED if model_based == model_free == ACCEPTED else NOT_ENOUGH_EVIDENCE


def evaluate_day(
    app: Application,
    logged: DataFrame,
    checkpoint_uri: str,
    epsilon: float,
    config: OffPolicyEvaluationConfig,
) -> dict:
    """Estimates and the gate's outcome for one candidate on one day of logs.

    Two bounded Spark aggregations over the scored rows (kept on the executors between them): the
    observed reward and the reward model's mean prediction, which calibrate the model's offset;
    then every sufficient statistic, for the estimators with the model and without it.
    """
    from pyspark import StorageLevel

    from rl_bakery_dagster.evaluation.estimators import (
        ACCEPTED,
        OPESums,
        deployment_gate,
        effective_sample_size,
        estimate,
        spark_aggregations,
    )
    from rl_bakery_dagster.transforms.scoring import score_logged

    low, high = (float(x) for x in app.reward_range)
    scored = score_logged(logged, app.schema, app.action_space, f"{checkpoint_uri}/{GREEDY_POLICY}", epsilon)
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        first = scored.agg(F.avg("reward").alias("observed"), F.avg("q_logged").alias("predicted")).first()
        observed, predicted = first["observed"], first["predicted"]
        offset = 0.0
        if config.calibrate_reward_model and observed is not None and predicted is not None:
            offset = float(observed) - float(predicted)
        calibrated = scored.withColumn("q_logged", F.col("q_logged") + F.lit(offset)).withColumn(
            "v_target", F.col("v_target") + F.lit(offset)
        )
        aggregations = spark_aggregations(
            "reward", "action_prob", "target_prob", "q_logged", "v_target", prediction_range=(low, high)
        ) + spark_aggregations("reward", "action_prob", "target_prob", prefix="free_")
        clipped_q = F.least(F.greatest(F.col("q_logged"), F.lit(low)), F.lit(high))
        values = (
            calibrated.agg(
                *aggregations,
                F.avg((F.col("action") == F.col("greedy_action")).cast("double")).alias("matches_greedy"),
                F.avg(clipped_q).alias("calibrated_prediction"),
            )
            .first()
            .asDict()
        )
    finally:
        scored.unpersist()
    sums = OPESums.from_row(values)
    estimates = estimate(sums, confidence=config.confidence, reward_range=(low, high))
    free_sums = OPESums.from_row(values, prefix="free_")
    free_estimates = estimate(free_sums, confidence=config.confidence, reward_range=(low, high))
    ess = effective_sample_size(sums)
    by_policy = {}
    if "policy_version" in logged.columns:
        groups = logged.groupBy("policy_version").agg(
            F.avg("reward").alias("value"), F.count("*").alias("rows")
        )
        for group in groups.orderBy(F.desc("rows")).limit(MAX_LOGGING_POLICIES).collect():
            by_policy[str(group["policy_version"])] = {"value": group["value"], "rows": group["rows"]}
    gate_options = {
        "tolerance": config.tolerance,
        "effective_sample_size": ess,
        "min_effective_sample_size": config.min_effective_sample_size,
    }
    decision = deployment_gate(estimates, **gate_options)
    free_decision = deployment_gate(free_estimates, **gate_options)
    outcome, reason = decision.outcome, decision.reason
    if config.model_free_check:
        outcome = _combine(decision.outcome, free_decision.outcome)
        if outcome != decision.outcome:
            reason = (
                f"{free_decision.reason} (The model-free check decides: the doubly robust check alone "
                f"would say {decision.outcome.replace('_', ' ')}: {decision.reason})"
            )
    if not config.gate:
        outcome, reason = ACCEPTED, "The deployment gate is switched off; the candidate is deployed."
    return {
        "rows": sums.n,
        "share_logged_actions_greedy": values["matches_greedy"],
        "effective_sample_size": ess,
        "max_weight": sums.max_weight,
        "max_inverse_propensity": sums.max_inverse_propensity,
        "reward_range": [low, high],
        "estimates": _estimates_record(estimates),
        "model_free": {
            "outcome": free_decision.outcome,
            "reason": free_decision.reason,
            "estimates": _estimates_record(free_estimates),
        },
        "reward_model": {
            "observed_mean_reward": observed,
            "mean_prediction": predicted,
            "calibration_offset": offset,
            "mean_prediction_calibrated": values["calibrated_prediction"],
        },
        "logging_policies": by_policy,
        "confidence": config.confidence,
        "outcome": outcome,
        "accepted": outcome == ACCEPTED,
        "reason": reason,
    }


def choose_deployment(
    outcome: str,
    candidate: tuple[str, str],
    last_accepted: tuple[str, str] | None,
    config: OffPolicyEvaluationConfig,
) -> tuple[tuple[str, str] | None, float | None, str]:
    """What `action_batch` deploys for an outcome: (day, uri) or None for uniformly random actions,
    the epsilon to deploy it with (None: the checkpoint's own) and a sentence saying so."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, REFUSED

    fallback = (
        (last_accepted, None, f"the last accepted agent_checkpoint[{last_accepted[0]}]")
        if last_accepted
        else (None, None, "uniformly random actions (no policy was accepted yet)")
    )
    if outcome == ACCEPTED:
        return candidate, None, f"the candidate agent_checkpoint[{candidate[0]}]"
    if outcome == REFUSED:
        if config.on_refused == UNIFORM_RANDOM:
            return None, None, "uniformly random actions (on_refused: uniform_random)"
        return fallback
    if config.on_not_enough_evidence == EXPLORE:
        return (
            candidate,
            config.exploration_when_unsure,
            f"the candidate agent_checkpoint[{candidate[0]}] with epsilon at least "
            f"{config.exploration_when_unsure:g} (on_not_enough_evidence: explore)",
        )
    if config.on_not_enough_evidence == CANDIDATE:
        return (
            candidate,
            None,
            f"the candidate agent_checkpoint[{candidate[0]}] (on_not_enough_evidence: candidate)",
        )
    return fallback


def day_metadata(record: Mapping) -> dict[str, object]:
    """Numbers the UI plots across days; NaN (an empty day) is left out rather than shown as 0."""
    metadata: dict[str, object] = {
        "rows": record["rows"],
        "outcome": record["outcome"],
        "accepted": record["accepted"],
        "deployed": record["deployment"],
        "deployed_checkpoint": record["deployed_checkpoint"] or "none (uniform random)",
        "gate": record["reason"],
    }
    numbers = {
        "effective_sample_size": record["effective_sample_size"],
        "max_weight": record["max_weight"],
        "share_logged_actions_greedy": record["share_logged_actions_greedy"],
        "reward_model_mean_prediction": record["reward_model"]["mean_prediction"],
        "reward_model_mean_prediction_calibrated": record["reward_model"]["mean_prediction_calibrated"],
        "observed_mean_reward": record["reward_model"]["observed_mean_reward"],
    }
    for name, e in record["estimates"].items():
        numbers |= {
            name: e["value"],
            f"{name}_lower": e["lower"],
            f"{name}_upper": e["upper"],
            f"{name}_normal_lower": e["normal_lower"],
            f"{name}_normal_upper": e["normal_upper"],
        }
    for version, observed in record.get("logging_policies", {}).items():
        numbers[f"logging_{version}"] = observed["value"]
    for name, value in numbers.items():
        if value is not None and math.isfinite(value):
            metadata[name] = float(value)
    return metadata


def evaluation_asset_arguments(app: Application, partitions: dg.PartitionsDefinition) -> dict[str, Any]:
    """What `policy_evaluation` is in the graph, for bandit and RL applications alike."""
    key = dg.AssetKey([app.name, "policy_evaluation"])
    return {
        "key": key,
        "ins": {
            "agent_checkpoint": dg.AssetIn(key=[app.name, "agent_checkpoint"]),
            "timesteps": dg.AssetIn(key=[app.name, "timesteps"]),
            "previous_evaluation": dg.AssetIn(key=key, partition_mapping=previous_day),
        },
        "partitions_def": partitions,
        "backfill_policy": single_run,
        "io_manager_key": "checkpoint_io_manager",
        "group_name": app.name,
        "kinds": {"spark", "tensorflow"},
        "pool": application_pool(app.name),
        "check_specs": [
            dg.AssetCheckSpec(
                GATE_CHECK,
                asset=key,
                blocking=True,
                description=GATE_DESCRIPTION if app.is_bandit else RL_GATE_DESCRIPTION,
            )
        ],
    }


def build_policy_evaluation_asset(
    app: Application, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    arguments = evaluation_asset_arguments(app, partitions)
    key = arguments["key"]

    @dg.asset(**arguments)
    def policy_evaluation(
        context: dg.AssetExecutionContext,
        config: OffPolicyEvaluationConfig,
        agent_checkpoint: dict[str, str],
        timesteps: DataFrame,
        previous_evaluation: dict[str, str],
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Off-policy value of the candidate policy on unseen logs, and whether it may be deployed."""
        config.validate_choices()
        yield from judge_days(
            context,
            app,
            key,
            agent_checkpoint,
            timesteps,
            previous_evaluation,
            lambda _day, logged, checkpoint, epsilon: evaluate_day(app, logged, checkpoint, epsilon, config),
            lambda outcome, candidate, last: choose_deployment(outcome, candidate, last, config),
            day_metadata,
        )

    return policy_evaluation


@dataclass(frozen=True)
class CanaryPlan:
    """How a gate gets on-policy evidence (`rl_bakery_dagster.evaluation.canary`): `judge(day, logged,
    canary)` decides on day d's logs the canary that day d-1 started; with `start`, a candidate with not
    enough evidence is played the next day to `share` of users (the last accepted policy to the rest)."""

    share: float
    start: bool
    judge: Callable[[str, DataFrame, Mapping[str, Any]], dict]

    def started(
        self, outcome: str, day: str, checkpoint: str, version: str, epsilon: float | None
    ) -> dict[str, Any] | None:
        """The canary this outcome starts the next day (the record `judge` reads back), if any."""
        from rl_bakery_dagster.evaluation.estimators import NOT_ENOUGH_EVIDENCE

        if not self.start or outcome != NOT_ENOUGH_EVIDENCE:
            return None
        return {
            "checkpoint": day,
            "checkpoint_uri": checkpoint,
            "policy_version": version,
            "share": self.share,
            "epsilon": epsilon,
        }


Judge = Callable[[str, DataFrame, str, float], dict]
"""(day, the day's logged timesteps, the candidate's checkpoint URI, its epsilon) → the day's record
with an `outcome`, `accepted` and `reason`."""
Choose = Callable[
    [str, tuple[str, str], "tuple[str, str] | None"], "tuple[tuple[str, str] | None, float | None, str]"
]


def judge_days(
    context: dg.AssetExecutionContext,
    app: Application,
    key: dg.AssetKey,
    agent_checkpoint: dict[str, str],
    timesteps: DataFrame,
    previous_evaluation: dict[str, str],
    judge: Judge,
    choose: Choose,
    metadata_of: Callable[[Mapping], dict[str, object]],
    canary: CanaryPlan | None = None,
) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """The day loop both evaluation assets share (bandit and sequential): judge each day's candidate,
    choose what to deploy from the outcome and the last accepted checkpoint, write the records and the
    gate check. `judge`, `choose` and `metadata_of` are what differs between the two; with `canary`,
    the previous day's canary is judged first (accepted, it becomes the last accepted checkpoint) and
    the candidate is judged on the other users' logs."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED

    days = sorted(context.partition_keys)
    before = previous_evaluation.get(shift_day(days[0], -1))
    last_accepted: tuple[str, str] | None = None
    pending: Mapping[str, Any] | None = None
    if before is not None:
        previous = read_json(f"{before}/{EVALUATION_RECORD}")
        pending = previous.get("canary")
        # records written before the three outcomes only knew the deployed checkpoint
        day_key = (
            "last_accepted_checkpoint" if "last_accepted_checkpoint" in previous else "deployed_checkpoint"
        )
        if previous[day_key]:
            last_accepted = (previous[day_key], previous[f"{day_key}_uri"])
    elif days[0] > app.start_date:
        context.log.warning(
            f"policy_evaluation[{shift_day(days[0], -1)}] is not materialised: no earlier accepted "
            "policy is known to fall back on"
        )
    scratch = tempfile.mkdtemp(prefix=f"rl_bakery_{app.name}_evaluation_")
    outputs: dict[str, AgentArtifacts] = {}
    outcomes: dict[str, str] = {}
    canary_outcomes: dict[str, str] = {}
    try:
        for day in days:
            checkpoint = stored_checkpoint(app, agent_checkpoint, day, "policy_evaluation")
            candidate = deployment_record(app, checkpoint, day)
            version = policy_version(app.name, day, candidate.total_train_steps)
            context.log.info(f"{day}: evaluating {version} on the day's logs")
            logged = timesteps.filter(F.col(PARTITION_COLUMN) == day)
            judged: dict | None = None
            if pending is not None and canary is not None:
                judged = judge_canary(context, canary, day, logged, pending)
                canary_outcomes[day] = (
                    f"agent_checkpoint[{pending['checkpoint']}] {judged['outcome'].replace('_', ' ')}"
                )
                if judged["outcome"] == ACCEPTED:
                    last_accepted = (pending["checkpoint"], pending["checkpoint_uri"])
                # the candidate is judged against the deployed policy: on the users outside the canary
                logged = logged.filter(~F.col("policy_version").eqNullSafe(F.lit(pending["policy_version"])))
            elif pending is not None:
                context.log.warning(
                    f"{day}: agent_checkpoint[{pending['checkpoint']}] played to a canary, but the logs "
                    "carry no policy version to tell its users apart: it is not judged"
                )
            record = judge(day, logged, checkpoint, candidate.epsilon)
            outcomes[day] = record["outcome"]
            deployed, deployed_epsilon, deployment = choose(
                record["outcome"], (day, checkpoint), last_accepted
            )
            if record["accepted"]:
                last_accepted = (day, checkpoint)
            pending = (
                canary.started(record["outcome"], day, checkpoint, version, candidate.epsilon)
                if canary is not None
                else None
            )
            if pending is not None:
                deployment = (
                    f"{deployment}; and to a canary of {pending['share']:.0%} of users the candidate "
                    f"agent_checkpoint[{day}], judged on-policy on {shift_day(day, 1)}'s logs"
                )
            record |= {
                "canary_judged": judged,
                "canary": pending,
                "day": day,
                "candidate": version,
                "candidate_checkpoint_uri": checkpoint,
                "deployment": deployment,
                "deployed_checkpoint": deployed[0] if deployed else None,
                "deployed_checkpoint_uri": deployed[1] if deployed else None,
                "deployed_epsilon": deployed_epsilon,
                "last_accepted_checkpoint": last_accepted[0] if last_accepted else None,
                "last_accepted_checkpoint_uri": last_accepted[1] if last_accepted else None,
            }
            context.log.info(f"{day}: {record['reason']}")
            if not record["accepted"]:
                context.log.warning(
                    f"{day}: candidate {version}: {record['outcome'].replace('_', ' ').upper()}; "
                    f"action_batch[{day}] deploys {deployment}. The checkpoint stays at {checkpoint}."
                )
            folder = os.path.join(scratch, day)
            os.makedirs(folder)
            with open(os.path.join(folder, EVALUATION_RECORD), "w") as handle:
                json.dump(record, handle, indent=2, sort_keys=True)
            outputs[day] = AgentArtifacts(folder)
            metadata = readable(metadata_of(record))
            if len(days) > 1:
                context.add_asset_metadata(metadata, partition_key=day)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    yield dg.Output(outputs, metadata=metadata if len(days) == 1 else {})
    yield gate_check_result(key, outcomes, metadata, canary_outcomes)


def judge_canary(
    context: dg.AssetExecutionContext,
    canary: CanaryPlan,
    day: str,
    logged: DataFrame,
    pending: Mapping[str, Any],
) -> dict:
    """The verdict on the canary that the previous day started, judged on `day`'s logs, with its numbers."""
    context.log.info(
        f"{day}: judging the canary agent_checkpoint[{pending['checkpoint']}] ({pending['policy_version']}, "
        f"{pending['share']:.0%} of users) on-policy against the other users"
    )
    judged = canary.judge(day, logged, pending) | {
        "checkpoint": pending["checkpoint"],
        "checkpoint_uri": pending["checkpoint_uri"],
        "policy_version": pending["policy_version"],
    }
    context.log.info(f"{day}: canary: {judged['reason']}")
    return judged


def gate_check_result(
    key: dg.AssetKey,
    outcomes: Mapping[str, str],
    last_metadata: Mapping[str, object],
    canary_outcomes: Mapping[str, str] | None = None,
) -> dg.AssetCheckResult:
    """Passes when every day's candidate was accepted; otherwise a WARN naming each day's outcome (and the
    verdicts on canaries judged on these days)."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, OUTCOMES

    by_outcome = {o: [d for d, got in outcomes.items() if got == o] for o in OUTCOMES}
    summary = "; ".join(
        f"{o.replace('_', ' ')} on {', '.join(days)}" for o, days in by_outcome.items() if days
    )
    metadata: dict[str, object] = {
        "outcome": ", ".join(f"{d}: {o}" for d, o in outcomes.items()),
        **{f"{o}_days": ", ".join(days) or "none" for o, days in by_outcome.items()},
        "evaluated_days": ", ".join(outcomes),
    }
    if canary_outcomes:
        metadata["canary_verdicts"] = "; ".join(f"{d}: {v}" for d, v in canary_outcomes.items())
        summary += f"; canaries judged: {metadata['canary_verdicts']}"
    for name in ("effective_sample_size", "max_weight", "gate", "deployed"):
        if name in last_metadata:
            metadata[name if len(outcomes) == 1 else f"last_day_{name}"] = last_metadata[name]
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=GATE_CHECK,
        passed=all(o == ACCEPTED for o in outcomes.values()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
        description=summary,
    )


def deployed_checkpoint(evaluation_uri: str) -> tuple[str | None, str | None]:
    """(day, uri) of the checkpoint that `policy_evaluation` chose to deploy; (None, None): random."""
    record = read_json(f"{evaluation_uri}/{EVALUATION_RECORD}")
    return record["deployed_checkpoint"], record["deployed_checkpoint_uri"]


def deployed_exploration(evaluation_uri: str) -> float | None:
    """The least epsilon `policy_evaluation` asks the deployed policy to explore with (None: its own)."""
    return read_json(f"{evaluation_uri}/{EVALUATION_RECORD}").get("deployed_epsilon")


def deployed_canary(evaluation_uri: str) -> dict[str, Any] | None:
    """The canary `policy_evaluation` started for the next day (checkpoint, its URI, policy version,
    share of users, epsilon), or None."""
    return read_json(f"{evaluation_uri}/{EVALUATION_RECORD}").get("canary")

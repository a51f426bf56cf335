"""`policy_evaluation[d]`: the candidate `agent_checkpoint[d]` judged on day d's logs, before deployment.

A bandit application trains with `lag_days >= 1`, so day d's logs are data the candidate never
saw. They were collected by the logging policy (the product's, or yesterday's deployed batch) with
logged propensities, so the candidate's value is estimated off-policy (IPS, SNIPS, the direct
method and doubly robust, `rl_bakery_dagster.evaluation.estimators`) with one Spark aggregation.

The deployment gate refuses a candidate that is confidently worse than the logging policy on the
same rows. A refused candidate stays on disk; `action_batch[d]` then deploys the last accepted
checkpoint (or, before any was accepted, uniformly random actions), and the `deployment_gate`
check says so in the UI.
"""

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping

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
from rl_bakery_dagster.partitions import previous_day, shift_day, single_run
from rl_bakery_dagster.resources.io_managers import AgentArtifacts, read_json
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN

EVALUATION_RECORD = "evaluation.json"
GATE_CHECK = "deployment_gate"
MAX_LOGGING_POLICIES = 20
"""Observed values are reported for at most this many logging policy versions per day."""


class OffPolicyEvaluationConfig(dg.Config):
    confidence: float = Field(default=0.95, description="level of every confidence interval")
    gate: bool = Field(
        default=True, description="refuse candidates confidently worse than the logging policy"
    )
    model_free_check: bool = Field(
        default=False,
        description="also refuse when IPS, which needs no reward model, puts the candidate's whole "
        "interval below the logging policy's observed value; for logs of a broadly exploring logging "
        "policy (with a near-greedy one, rare huge importance weights make IPS intervals too low)",
    )
    tolerance: float = Field(
        default=0.0,
        description="refuse only if the candidate loses more than this much reward per row (with confidence)",
    )


def trained_steps(checkpoint_uri: str) -> int:
    """How many train steps the checkpoint's agent has taken, over all its days."""
    return int(read_json(f"{checkpoint_uri}/{METRICS}")["total_train_steps"])


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


def evaluate_day(
    app: Application,
    logged: DataFrame,
    checkpoint_uri: str,
    epsilon: float,
    config: OffPolicyEvaluationConfig,
) -> dict:
    """Estimates and the gate's decision for one candidate on one day of logs (one Spark pass)."""
    from rl_bakery_dagster.evaluation.estimators import (
        OPESums,
        deployment_gate,
        effective_sample_size,
        estimate,
        is_confidently_worse,
        spark_aggregations,
    )
    from rl_bakery_dagster.transforms.scoring import score_logged

    scored = score_logged(logged, app.schema, app.action_space, f"{checkpoint_uri}/{GREEDY_POLICY}", epsilon)
    aggregations = spark_aggregations("reward", "action_prob", "target_prob", "q_logged", "v_target")
    matches = F.avg((F.col("action") == F.col("greedy_action")).cast("double")).alias("matches_greedy")
    values = scored.agg(*aggregations, matches).first().asDict()
    sums = OPESums.from_row(values)
    estimates = estimate(sums, confidence=config.confidence)
    by_policy = {}
    if "policy_version" in logged.columns:
        groups = logged.groupBy("policy_version").agg(
            F.avg("reward").alias("value"), F.count("*").alias("rows")
        )
        for group in groups.orderBy(F.desc("rows")).limit(MAX_LOGGING_POLICIES).collect():
            by_policy[str(group["policy_version"])] = {"value": group["value"], "rows": group["rows"]}
    if config.gate:
        decision = deployment_gate(estimates, tolerance=config.tolerance)
        accepted, reason = decision.accept, decision.reason
        ips, observed = estimates["ips"], estimates["logging"]
        if accepted and config.model_free_check and is_confidently_worse(ips, observed):
            accepted = False
            reason = (
                f"Refused: IPS, which needs no reward model, puts the candidate at {ips.describe()}, "
                f"entirely below the logging policy's observed {observed.value:.4g}. (The doubly robust "
                f"check alone would accept it: {reason})"
            )
    else:
        accepted, reason = True, "The deployment gate is switched off; the candidate is deployed."
    return {
        "rows": sums.n,
        "share_logged_actions_greedy": values["matches_greedy"],
        "effective_sample_size": effective_sample_size(sums),
        "estimates": {
            name: {"value": e.value, "lower": e.lower, "upper": e.upper, "std_error": e.std_error}
            for name, e in estimates.items()
        },
        "logging_policies": by_policy,
        "confidence": config.confidence,
        "accepted": accepted,
        "reason": reason,
    }


def day_metadata(record: Mapping) -> dict[str, object]:
    """Numbers the UI plots across days; NaN (an empty day) is left out rather than shown as 0."""
    metadata: dict[str, object] = {
        "rows": record["rows"],
        "accepted": record["accepted"],
        "deployed_checkpoint": record["deployed_checkpoint"] or "none (uniform random)",
        "gate": record["reason"],
    }
    numbers = {
        "effective_sample_size": record["effective_sample_size"],
        "share_logged_actions_greedy": record["share_logged_actions_greedy"],
    }
    for name, e in record["estimates"].items():
        numbers |= {name: e["value"], f"{name}_lower": e["lower"], f"{name}_upper": e["upper"]}
    for version, observed in record.get("logging_policies", {}).items():
        numbers[f"logging_{version}"] = observed["value"]
    for name, value in numbers.items():
        if value is not None and math.isfinite(value):
            metadata[name] = float(value)
    return metadata


def build_policy_evaluation_asset(
    app: Application, partitions: dg.PartitionsDefinition
) -> dg.AssetsDefinition:
    key = dg.AssetKey([app.name, "policy_evaluation"])

    @dg.asset(
        key=key,
        ins={
            "agent_checkpoint": dg.AssetIn(key=[app.name, "agent_checkpoint"]),
            "timesteps": dg.AssetIn(key=[app.name, "timesteps"]),
            "previous_evaluation": dg.AssetIn(key=key, partition_mapping=previous_day),
        },
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="checkpoint_io_manager",
        group_name=app.name,
        kinds={"spark", "tensorflow"},
        pool=application_pool(app.name),
        check_specs=[
            dg.AssetCheckSpec(
                GATE_CHECK,
                asset=key,
                blocking=True,
                description="the candidate is not confidently worse than the logging policy; a WARN "
                "means action_batch deploys the last accepted policy instead",
            )
        ],
    )
    def policy_evaluation(
        context: dg.AssetExecutionContext,
        config: OffPolicyEvaluationConfig,
        agent_checkpoint: dict[str, str],
        timesteps: DataFrame,
        previous_evaluation: dict[str, str],
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Off-policy value of the candidate policy on unseen logs, and whether it may be deployed."""
        days = sorted(context.partition_keys)
        before = previous_evaluation.get(shift_day(days[0], -1))
        last_accepted: tuple[str, str] | None = None
        if before is not None:
            previous = read_json(f"{before}/{EVALUATION_RECORD}")
            if previous["deployed_checkpoint"]:
                last_accepted = (previous["deployed_checkpoint"], previous["deployed_checkpoint_uri"])
        elif days[0] > app.start_date:
            context.log.warning(
                f"policy_evaluation[{shift_day(days[0], -1)}] is not materialised: no earlier accepted "
                "policy is known to fall back on"
            )
        scratch = tempfile.mkdtemp(prefix=f"rl_bakery_{app.name}_evaluation_")
        outputs: dict[str, AgentArtifacts] = {}
        refused: list[str] = []
        try:
            for day in days:
                checkpoint = stored_checkpoint(app, agent_checkpoint, day, "policy_evaluation")
                deployed = deployment_record(app, checkpoint, day)
                version = policy_version(app.name, day, deployed.total_train_steps)
                context.log.info(f"{day}: evaluating {version} on the day's logs")
                logged = timesteps.filter(F.col(PARTITION_COLUMN) == day)
                record = evaluate_day(app, logged, checkpoint, deployed.epsilon, config)
                if record["accepted"]:
                    last_accepted = (day, checkpoint)
                else:
                    refused.append(day)
                record |= {
                    "day": day,
                    "candidate": version,
                    "candidate_checkpoint_uri": checkpoint,
                    "deployed_checkpoint": last_accepted[0] if last_accepted else None,
                    "deployed_checkpoint_uri": last_accepted[1] if last_accepted else None,
                }
                context.log.info(f"{day}: {record['reason']}")
                if not record["accepted"]:
                    fallback = (
                        f"agent_checkpoint[{last_accepted[0]}]"
                        if last_accepted
                        else "uniformly random actions"
                    )
                    context.log.warning(
                        f"{day}: candidate {version} REFUSED; action_batch[{day}] deploys {fallback} "
                        f"instead. The refused checkpoint stays at {checkpoint}."
                    )
                folder = os.path.join(scratch, day)
                os.makedirs(folder)
                with open(os.path.join(folder, EVALUATION_RECORD), "w") as handle:
                    json.dump(record, handle, indent=2, sort_keys=True)
                outputs[day] = AgentArtifacts(folder)
                metadata = day_metadata(record)
                if len(days) > 1:
                    context.add_asset_metadata(metadata, partition_key=day)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        yield dg.Output(outputs, metadata=metadata if len(days) == 1 else {})
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=GATE_CHECK,
            passed=not refused,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"refused_days": ", ".join(refused) or "none", "evaluated_days": ", ".join(days)},
            description="candidate refused on " + ", ".join(refused)
            if refused
            else "every candidate accepted",
        )

    return policy_evaluation


def deployed_checkpoint(evaluation_uri: str) -> tuple[str | None, str | None]:
    """(day, uri) of the checkpoint that `policy_evaluation` chose to deploy; (None, None): random."""
    record = read_json(f"{evaluation_uri}/{EVALUATION_RECORD}")
    return record["deployed_checkpoint"], record["deployed_checkpoint_uri"]

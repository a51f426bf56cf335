"""`action_batch[d]`: one action per user of the population, for the product to use on day d+1."""

import dataclasses

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import functions as F

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.assets.evaluation import (
    EVALUATION_RECORD,
    deployed_canary,
    deployed_checkpoint,
    deployed_exploration,
    deployment_record,
    policy_version,
    stored_checkpoint,
)
from rl_bakery_dagster.assets.rl_evaluation import has_sequential_evaluation
from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY
from rl_bakery_dagster.concurrency import application_pool
from rl_bakery_dagster.evaluation.canary import canary_users
from rl_bakery_dagster.partitions import days_between, single_run
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import Metric, SparkOutput, read_json
from rl_bakery_dagster.transforms.scoring import Deployment, score_population


def build_action_batch_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    population_table = app.population
    if population_table is None:
        raise ValueError(f"{app.name} has no population to score")
    gated = app.is_bandit or has_sequential_evaluation(app)

    def score_days(
        context: dg.AssetExecutionContext,
        pyspark: PySparkResource,
        agent: TFAgentsResource,
        agent_checkpoint: dict[str, str],
        policy_evaluation: dict[str, str] | None,
    ) -> SparkOutput:
        spark = pyspark.spark_session
        frames = []
        canary_versions: list[str] = []
        for day in context.partition_keys:
            deployed_day: str | None = day
            checkpoint: str | None = None
            if policy_evaluation is None:
                checkpoint = stored_checkpoint(app, agent_checkpoint, day, "action_batch")
            else:
                if day not in policy_evaluation:
                    raise dg.Failure(
                        f"action_batch[{day}] needs {app.name}/policy_evaluation[{day}], which is not "
                        f"materialised; materialise it (and agent_checkpoint[{day}]) first."
                    )
                deployed_day, checkpoint = deployed_checkpoint(policy_evaluation[day])
                if deployed_day != day:
                    chosen = (
                        f"agent_checkpoint[{deployed_day}]" if deployed_day else "uniformly random actions"
                    )
                    outcome = read_json(f"{policy_evaluation[day]}/{EVALUATION_RECORD}")["outcome"]
                    context.log.warning(
                        f"{day}: the deployment gate did not accept the candidate agent_checkpoint[{day}] "
                        f"({outcome.replace('_', ' ')}); deploying {chosen} instead"
                    )
                    context.add_output_metadata({"deployed_instead_of_candidate": chosen})
            record = deployment_record(app, checkpoint, deployed_day) if checkpoint and deployed_day else None
            seed = record.seed if record and record.seed is not None else agent.seed
            deployment = Deployment(
                policy_uri=f"{checkpoint}/{GREEDY_POLICY}" if checkpoint else None,
                policy_version=policy_version(app.name, deployed_day, record.total_train_steps)
                if deployed_day and record
                else f"{app.name}@uniform_random",
                epsilon=record.epsilon if record else 0.0,
                seed=seed + days_between(app.start_date, day),
            )
            unsure = deployed_exploration(policy_evaluation[day]) if policy_evaluation is not None else None
            if unsure is not None and app.action_space.is_discrete:  # the gate asked for more exploration
                deployment = dataclasses.replace(deployment, epsilon=max(deployment.epsilon, unsure))
            context.log.info(
                f"{day}: scoring the population with {deployment.policy_version}, "
                f"epsilon {deployment.epsilon:g}"
            )
            population = population_table.read(spark, day)
            canary = deployed_canary(policy_evaluation[day]) if policy_evaluation is not None else None
            if canary is None:
                frames.append(score_population(population, app.schema, app.action_space, deployment, day))
                continue
            canary_record = deployment_record(app, canary["checkpoint_uri"], canary["checkpoint"])
            canary_deployment = Deployment(
                policy_uri=f"{canary['checkpoint_uri']}/{GREEDY_POLICY}",
                policy_version=canary["policy_version"],
                epsilon=canary_record.epsilon,
                seed=deployment.seed + 1,
            )
            in_canary = canary_users(app.schema.env_id_columns, canary["share"], day)
            context.log.info(
                f"{day}: a canary of {canary['share']:.0%} of users plays {canary['policy_version']}, "
                f"epsilon {canary_deployment.epsilon:g}; the others {deployment.policy_version}"
            )
            canary_versions.append(canary["policy_version"])
            for users, chosen in ((~in_canary, deployment), (in_canary, canary_deployment)):
                frames.append(
                    score_population(population.filter(users), app.schema, app.action_space, chosen, day)
                )
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other)
        metrics = {"mean_propensity": Metric("mean", F.col("action_prob"))}
        if canary_versions:
            in_a_canary = F.col("policy_version").isin(canary_versions).cast("long")
            metrics["canary_users"] = Metric("sum", in_a_canary)
        if app.action_space.is_discrete:
            explored = (F.col("action") != F.col("greedy_action")).cast("int")
            metrics["share_not_greedy"] = Metric("mean", explored)
        return SparkOutput(frame, metrics=metrics)

    spec = {
        "key": [app.name, "action_batch"],
        "partitions_def": partitions,
        "backfill_policy": single_run,
        "io_manager_key": "parquet_io_manager",
        "group_name": app.name,
        "kinds": {"spark", "tensorflow", "parquet"},
        "pool": application_pool(app.name),
    }
    description = (
        "An action, its propensity and the policy version for every user, scored on Spark executors."
    )
    if not gated:

        @dg.asset(
            **spec,
            ins={"agent_checkpoint": dg.AssetIn(key=[app.name, "agent_checkpoint"])},
            description=description,
        )
        def action_batch(
            context: dg.AssetExecutionContext,
            pyspark: PySparkResource,
            agent: TFAgentsResource,
            agent_checkpoint: dict[str, str],
        ) -> SparkOutput:
            return score_days(context, pyspark, agent, agent_checkpoint, None)

        return action_batch

    @dg.asset(
        **spec,
        ins={
            "agent_checkpoint": dg.AssetIn(key=[app.name, "agent_checkpoint"]),
            "policy_evaluation": dg.AssetIn(key=[app.name, "policy_evaluation"]),
        },
        description=description + " Deploys the policy that policy_evaluation[d] accepted: the day's "
        "candidate, or the last accepted one when the deployment gate refused it; when the gate started a "
        "canary, its share of users (a stable hash of their ids and the day) gets the candidate instead.",
    )
    def gated_action_batch(
        context: dg.AssetExecutionContext,
        pyspark: PySparkResource,
        agent: TFAgentsResource,
        agent_checkpoint: dict[str, str],
        policy_evaluation: dict[str, str],
    ) -> SparkOutput:
        return score_days(context, pyspark, agent, agent_checkpoint, policy_evaluation)

    return gated_action_batch

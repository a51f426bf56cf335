"""`action_batch[d]`: one action per user of the population, for the product to use on day d+1."""

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.sql import functions as F

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY, METRICS
from rl_bakery_dagster.partitions import single_run
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import Metric, SparkOutput, read_json
from rl_bakery_dagster.transforms.scoring import Deployment, score_population


def build_action_batch_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    population_table = app.population
    if population_table is None:
        raise ValueError(f"{app.name} has no population to score")

    @dg.asset(
        key=[app.name, "action_batch"],
        ins={"agent_checkpoint": dg.AssetIn(key=[app.name, "agent_checkpoint"])},
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="parquet_io_manager",
        group_name=app.name,
        kinds={"spark", "tensorflow", "parquet"},
    )
    def action_batch(
        context: dg.AssetExecutionContext,
        pyspark: PySparkResource,
        agent: TFAgentsResource,
        agent_checkpoint: dict[str, str],
    ) -> SparkOutput:
        """An action, its propensity and the policy version for every user, scored on Spark executors."""
        spark = pyspark.spark_session
        frames = []
        for day in context.partition_keys:
            checkpoint = agent_checkpoint[day]
            trained = read_json(f"{checkpoint}/{METRICS}")
            deployment = Deployment(
                policy_uri=f"{checkpoint}/{GREEDY_POLICY}",
                policy_version=f"{app.name}@{day}#step{trained['total_train_steps']}",
                epsilon=agent.epsilon_greedy if app.action_space.is_discrete else 0.0,
                seed=agent.seed,
            )
            context.log.info(f"{day}: scoring the population with {deployment.policy_version}")
            population = population_table.read(spark, day)
            frames.append(score_population(population, app.schema, app.action_space, deployment, day))
        frame = frames[0]
        for other in frames[1:]:
            frame = frame.unionByName(other)
        metrics = {"mean_propensity": Metric("mean", F.col("action_prob"))}
        if app.action_space.is_discrete:
            explored = (F.col("action") != F.col("greedy_action")).cast("int")
            metrics["share_not_greedy"] = Metric("mean", explored)
        return SparkOutput(frame, metrics=metrics)

    return action_batch

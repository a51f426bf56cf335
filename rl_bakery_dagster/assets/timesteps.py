"""`timesteps[d]`: the warehouse logs of day d, validated against the timestep contract."""

from functools import reduce

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rl_bakery_dagster.application import FIRST, Application
from rl_bakery_dagster.partitions import single_run
from rl_bakery_dagster.resources.io_managers import Metric, SparkOutput
from rl_bakery_dagster.transforms.timesteps import to_contract
from rl_bakery_dagster.transforms.validation import TimestepContractError, find_violations


def contract_failure(error: TimestepContractError) -> dg.Failure:
    return dg.Failure(
        description=str(error),
        metadata={
            f"{v.rule} ({', '.join(v.columns)})": dg.MetadataValue.json(
                {"rows": v.rows, "rule": v.description, "samples": v.samples}
            )
            for v in error.violations
        },
    )


def build_timesteps_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        key=[app.name, "timesteps"],
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="parquet_io_manager",
        group_name=app.name,
        kinds={"spark", "parquet"},
    )
    def timesteps(context: dg.AssetExecutionContext, pyspark: PySparkResource) -> SparkOutput:
        """Validated warehouse logs of the day, in the timestep contract."""
        spark = pyspark.spark_session
        days = context.partition_keys
        frames = []
        for day in days:
            try:
                raw = app.warehouse.read(spark, day)
                frames.append(to_contract(raw, app.schema, app.action_space, day))
            except AnalysisException as error:
                raise dg.Failure(f"the warehouse has no readable logs for {day}: {error}") from error
            except TimestepContractError as error:
                raise contract_failure(error) from error
        frame = reduce(DataFrame.unionByName, frames)
        violations = find_violations(frame, app.schema, app.action_space)
        if violations:
            raise contract_failure(TimestepContractError(", ".join(days), violations))
        return SparkOutput(
            frame,
            metrics={
                "episodes_started": Metric("sum", (F.col("step_type") == FIRST).cast("int")),
                "mean_reward": Metric("mean", F.when(F.col("step_type") != FIRST, F.col("reward"))),
            },
        )

    return timesteps

"""`timesteps[d]`: the warehouse logs of day d, validated against the timestep contract."""

from collections.abc import Iterator
from functools import reduce

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rl_bakery_dagster.application import FIRST, Application
from rl_bakery_dagster.completeness import refuse_incomplete_days
from rl_bakery_dagster.concurrency import application_pool
from rl_bakery_dagster.partitions import single_run
from rl_bakery_dagster.resources.io_managers import Metric, SparkOutput
from rl_bakery_dagster.transforms.timesteps import to_contract
from rl_bakery_dagster.transforms.validation import (
    TimestepContractError,
    Violation,
    find_violations,
    rule_names,
)


def check_results(
    key: dg.AssetKey, names: list[str], violations: list[Violation]
) -> Iterator[dg.AssetCheckResult]:
    """One result per contract rule: failed with the columns, counts and sample rows, or passed."""
    for name in names:
        broken = [v for v in violations if v.rule == name]
        metadata: dict[str, dg.RawMetadataValue] = {"offending_rows": sum(v.rows for v in broken)}
        if broken:
            metadata["columns"] = ", ".join(c for v in broken for c in v.columns)
            metadata["rule"] = broken[0].description
            metadata["samples"] = dg.MetadataValue.json({", ".join(v.columns): v.samples for v in broken})
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=name,
            passed=not broken,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
        )


def build_timesteps_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey([app.name, "timesteps"])
    names = rule_names(app.schema)

    @dg.asset(
        key=key,
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="parquet_io_manager",
        group_name=app.name,
        kinds={"spark", "parquet"},
        pool=application_pool(app.name),
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, blocking=True, description=f"timestep contract: {name}")
            for name in names
        ],
    )
    def timesteps(
        context: dg.AssetExecutionContext, pyspark: PySparkResource
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Validated warehouse logs of the day, in the timestep contract.

        A day that breaks a rule fails its checks and writes nothing; so does a day whose logs
        the warehouse does not yet list as complete.
        """
        days = context.partition_keys
        refuse_incomplete_days(app, days)
        spark = pyspark.spark_session
        frames, violations = [], []
        for day in days:
            try:
                raw = app.warehouse.read(spark, day)
            except AnalysisException as error:
                raise dg.Failure(f"the warehouse has no readable logs for {day}: {error}") from error
            try:
                frames.append(to_contract(raw, app.schema, app.action_space, day))
            except TimestepContractError as error:
                violations += error.violations
        if not violations:
            frame = reduce(DataFrame.unionByName, frames)
            violations = find_violations(frame, app.schema, app.action_space)
        if violations:
            yield from check_results(key, names, violations)
            error = TimestepContractError(", ".join(days), violations)
            raise dg.Failure(
                description=str(error), metadata={"failed_rules": sorted({v.rule for v in violations})}
            )
        yield dg.Output(
            SparkOutput(
                frame,
                metrics={
                    "episodes_started": Metric("sum", (F.col("step_type") == FIRST).cast("int")),
                    "mean_reward": Metric("mean", F.when(F.col("step_type") != FIRST, F.col("reward"))),
                },
            )
        )
        yield from check_results(key, names, [])

    return timesteps

"""`timesteps[d]`: the warehouse logs of day d, validated against the timestep contract."""

import json
from collections.abc import Iterator
from functools import reduce

import dagster as dg
from dagster_pyspark import PySparkResource
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rl_bakery_dagster.application import FIRST, Application, VersionedWarehouse
from rl_bakery_dagster.assets.warehouse import warehouse_key
from rl_bakery_dagster.check_descriptions import contract_check_description
from rl_bakery_dagster.completeness import refuse_incomplete_days
from rl_bakery_dagster.concurrency import application_pool
from rl_bakery_dagster.partitions import earlier_days, shift_day, single_run
from rl_bakery_dagster.resources.io_managers import STORED_ONLY, Metric, ParquetPartitions, SparkOutput
from rl_bakery_dagster.transforms.day_window import DAY_WINDOW_RULE, day_window_violations
from rl_bakery_dagster.transforms.timesteps import to_contract
from rl_bakery_dagster.transforms.validation import (
    TimestepContractError,
    Violation,
    check_same_types,
    find_violations,
    refused_days,
    rule_names,
)
from rl_bakery_dagster.warehouse import WarehouseReadError


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
            samples = {", ".join(v.columns): v.samples for v in broken}
            # timestamps (and other non-JSON values) in sample rows are shown as text
            metadata["samples"] = dg.MetadataValue.json(json.loads(json.dumps(samples, default=str)))
        yield dg.AssetCheckResult(
            asset_key=key,
            check_name=name,
            passed=not broken,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
        )


def warehouse_metadata(read: dict[str, dict[str, int | str | bool]]) -> dict[str, object]:
    """What was read from the warehouse, per day: files, bytes, rows (footers) and fingerprint.

    The fingerprint is the data version a later observation of `warehouse[d]` compares with.
    """
    if not read:
        return {}
    metadata: dict[str, dg.RawMetadataValue] = {
        "warehouse_files": sum(int(r["files"]) for r in read.values()),
        "warehouse_bytes": sum(int(r["bytes"]) for r in read.values()),
        "warehouse_read": dg.MetadataValue.json(read),
    }
    if len(read) == 1:
        metadata["warehouse_fingerprint"] = str(next(iter(read.values()))["fingerprint"])
    return metadata


def warn_if_warehouse_never_observed(context: dg.AssetExecutionContext, app: Application) -> None:
    """Dagster tracks a change of warehouse[d] only relative to an observation made before the run."""
    observed = context.instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=warehouse_key(app)), limit=1
    ).records
    if not observed:
        context.log.warning(
            f"{app.name}/warehouse has never been observed: a later change to these days will not "
            "show as stale; run the observe_warehouse job once (its schedule runs hourly)"
        )


def earlier_days_checked(app: Application) -> int:
    """Days before its own that a day is validated against: the lookback, and at least one.

    With at least the previous day, ids that restart at midnight and a day folder that repeats
    yesterday's rows are refused even when no transition crosses midnight.
    """
    return max(1, app.trajectory.lookback_days)


def build_timesteps_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey([app.name, "timesteps"])
    names = [*rule_names(app.schema), DAY_WINDOW_RULE]
    checked_days = earlier_days_checked(app)

    @dg.asset(
        key=key,
        ins={
            "earlier": dg.AssetIn(
                key=key, partition_mapping=earlier_days(checked_days), metadata={STORED_ONLY: True}
            )
        },
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="parquet_io_manager",
        group_name=app.name,
        kinds={"spark", "parquet"},
        deps=[warehouse_key(app)],
        pool=application_pool(app.name),
        check_specs=[
            dg.AssetCheckSpec(name, asset=key, blocking=True, description=contract_check_description(name))
            for name in names
        ],
    )
    def timesteps(
        context: dg.AssetExecutionContext, pyspark: PySparkResource, earlier: ParquetPartitions
    ) -> Iterator[dg.Output | dg.AssetCheckResult]:
        """Validated warehouse logs of the day, in the timestep contract.

        Each day is checked on its own rows and against the days before it; a day that breaks a
        rule fails its checks and writes nothing; so does a day whose logs the warehouse does not
        yet list as complete.
        """
        days = sorted(context.partition_keys)
        refuse_incomplete_days(app, days)
        spark = pyspark.spark_session
        warn_if_warehouse_never_observed(context, app)
        stored = stored_days_before(earlier, days[0], checked_days, app.start_date, key)
        frames: dict[str, DataFrame] = {}
        violations: list[Violation] = []
        outside_day: list[Violation] = []
        read: dict[str, dict[str, int | str | bool]] = {}
        for day in days:
            try:
                if isinstance(app.warehouse, VersionedWarehouse):
                    recorded = app.warehouse.read_recorded(spark, day)
                    raw, read[day] = recorded.frame, recorded.record()
                else:
                    raw = app.warehouse.read(spark, day)
            except (WarehouseReadError, AnalysisException) as error:
                raise dg.Failure(f"the warehouse has no readable logs for {day}: {error}") from error
            try:
                frames[day] = to_contract(raw, app.schema, app.action_space, day)
                outside_day += day_window_violations(frames[day], app.schema, day)
            except TimestepContractError as error:
                violations += error.violations
        history = stored.read(spark)
        if not violations:
            try:
                earlier_frames = {} if history is None else {"the earlier days": history}
                check_same_types({**earlier_frames, **frames})
            except TimestepContractError as error:
                violations += error.violations
        if not violations:
            frame = reduce(DataFrame.unionByName, frames.values())
            violations = [
                *outside_day,
                *find_violations(frame, app.schema, app.action_space, history, checked_days),
            ]
        if violations:
            yield from check_results(key, names, violations)
            error = TimestepContractError(", ".join(refused_days(violations) or days), violations)
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
            ),
            metadata=warehouse_metadata(read),
        )
        yield from check_results(key, names, [])

    return timesteps


def stored_days_before(
    earlier: ParquetPartitions, first_day: str, days: int, start_date: str, key: dg.AssetKey
) -> ParquetPartitions:
    """The stored partitions of the `days` days before `first_day`; all of them must exist.

    Days of the run itself are validated in this run, so their stored versions are ignored.
    """
    wanted = [d for d in (shift_day(first_day, -offset) for offset in range(days, 0, -1)) if d >= start_date]
    missing = [d for d in wanted if d not in earlier.uris]
    if missing:
        raise dg.Failure(
            description=(
                f"{key.to_user_string()} is not materialised for {missing}; "
                "materialise (or backfill) those days first: each day is validated against them."
            ),
            metadata={"missing_partitions": missing},
        )
    return ParquetPartitions({d: earlier.uris[d] for d in wanted})

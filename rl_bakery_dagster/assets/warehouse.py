"""`warehouse`: the product's daily logs, outside Dagster, observed so that lineage starts there.

An observable source asset partitioned like every other asset. Each observation records, for
every *complete* day (the warehouse's `_SUCCESS` view), a data version that is the fingerprint
of the day's files. `timesteps[d]` depends on `warehouse[d]`, so Dagster stores the version it
was built from; when a later observation finds day d changed (late rows, a restatement), the UI
marks `timesteps[d]` and everything downstream of it stale. A day without an observation is not
complete yet.
"""

from collections.abc import Mapping, Sequence

import dagster as dg

from rl_bakery_dagster.application import Application, VersionedWarehouse

UNVERSIONED = "complete"
"""The data version of a complete day of a warehouse that cannot fingerprint its days."""


def warehouse_key(app: Application) -> dg.AssetKey:
    return dg.AssetKey([app.name, "warehouse"])


def observed_versions(app: Application, days: Sequence[str] | None) -> Mapping[str, str]:
    """Complete days (of `days`, or all) → their data version."""
    if isinstance(app.warehouse, VersionedWarehouse):
        return app.warehouse.day_versions(days)
    complete = app.warehouse.complete_days()
    return {d: UNVERSIONED for d in complete if days is None or d in days}


def build_warehouse_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=warehouse_key(app),
        partitions_def=partitions,
        group_name=app.name,
        description=(
            f"The logs {app.name}'s product writes, one folder per day (outside Dagster). An "
            "observation lists the complete days and fingerprints their files: a day observed with "
            "a new version after training makes its timesteps and everything downstream stale; "
            "repair by re-materialising from that day."
        ),
    )
    def warehouse(context: dg.OpExecutionContext) -> dg.DataVersionsByPartition:
        partitioned = context.has_partition_key or context.has_partition_key_range
        days = context.partition_keys if partitioned else None
        valid = set(partitions.get_partition_keys())
        versions = {d: v for d, v in observed_versions(app, days).items() if d in valid}
        context.log.info(f"{len(versions)} complete day(s) observed")
        return dg.DataVersionsByPartition(versions)

    return warehouse

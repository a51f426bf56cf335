"""`warehouse`: the product's daily logs, outside Dagster, observed so that lineage starts there.

An observable source asset partitioned like every other asset. Each observation records, for
every *complete* day (the warehouse's `_SUCCESS` view), a data version that is the fingerprint
of the day's files. `timesteps[d]` depends on `warehouse[d]`, so Dagster stores the version it
was built from; when a later observation finds day d changed (late rows, a restatement), the UI
marks `timesteps[d]` stale. Incomplete days are never observed.

A day is observed only when its version differs from the last one Dagster knows for it: its
last observation, or the fingerprint `timesteps[d]` recorded when it read the day, whichever is
newer. Dagster compares a day's newest observation with the one before the training run; a
first observation of an unchanged day that was trained before it was ever observed would
otherwise mark it stale for nothing.
"""

import warnings
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


def last_known_version(instance: dg.DagsterInstance, app: Application, day: str) -> str | None:
    """The newer of day's last observed version and the fingerprint timesteps[day] read."""
    observed = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=warehouse_key(app), asset_partitions=[day]), limit=1
    ).records
    built = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey([app.name, "timesteps"]), asset_partitions=[day]),
        limit=1,
    ).records
    candidates = []
    if observed and observed[0].asset_observation is not None:
        version = observed[0].asset_observation.tags.get("dagster/data_version")
        candidates.append((observed[0].storage_id, version))
    if built and built[0].asset_materialization is not None:
        read = built[0].asset_materialization.metadata.get("warehouse_read")
        day_read = read.value.get(day) if read is not None and isinstance(read.value, dict) else None
        if isinstance(day_read, dict) and "fingerprint" in day_read:
            candidates.append((built[0].storage_id, str(day_read["fingerprint"])))
    return max(candidates)[1] if candidates else None


def build_warehouse_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.SourceAsset:
    with warnings.catch_warnings():  # observable sources are beta in 1.13; the warning is noise to users
        warnings.simplefilter("ignore", dg.BetaWarning)
        return _observable_warehouse(app, partitions)


def _observable_warehouse(app: Application, partitions: dg.PartitionsDefinition) -> dg.SourceAsset:
    @dg.observable_source_asset(
        key=warehouse_key(app),
        partitions_def=partitions,
        group_name=app.name,
        description=(
            f"The logs {app.name}'s product writes, one folder per day (outside Dagster). An "
            "observation lists the complete days and fingerprints their files: a day observed with "
            "a new version after training makes its timesteps partition stale; "
            "repair by re-materialising from that day."
        ),
    )
    def warehouse(context: dg.OpExecutionContext) -> dg.DataVersionsByPartition:
        partitioned = context.has_partition_key or context.has_partition_key_range
        days = context.partition_keys if partitioned else None
        valid = set(partitions.get_partition_keys())
        versions = {d: v for d, v in observed_versions(app, days).items() if d in valid}
        changed = {d: v for d, v in versions.items() if last_known_version(context.instance, app, d) != v}
        context.log.info(
            f"{len(versions)} complete day(s); new or changed: {', '.join(sorted(changed)) or 'none'}"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.DataVersionsByPartition(changed)

    return warehouse

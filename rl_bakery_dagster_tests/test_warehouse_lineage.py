"""A warehouse day that changes after it was trained shows in Dagster, and is never read into a later day.

The `warehouse` observable source is upstream of `timesteps`; its observations carry each
complete day's file fingerprint as the data version. Staleness is read with the resolver the
UI's GraphQL `staleStatus` uses (Dagster has no public API for it), on the real instance.
"""

from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from rl_bakery_dagster.jobs import OBSERVE_JOB
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole

NEXT_DAY = "2024-01-02"
THIRD_DAY = "2024-01-03"
WAREHOUSE = dg.AssetKey(["cartpole", "warehouse"])
TIMESTEPS = dg.AssetKey(["cartpole", "timesteps"])
TRAJECTORIES = dg.AssetKey(["cartpole", "trajectories"])


def status(instance: dg.DagsterInstance, defs: dg.Definitions, key: dg.AssetKey, day: str) -> StaleStatus:
    resolver = CachingStaleStatusResolver(
        instance, defs.resolve_asset_graph(), LoadingContextForTest(instance)
    )
    return resolver.get_status(key, day)


def row_count(instance: dg.DagsterInstance, key: dg.AssetKey, day: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=1
    ).records
    return int(records[0].asset_materialization.metadata["dagster/row_count"].value)


def observed_days(instance: dg.DagsterInstance) -> dict[str, str]:
    records = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=WAREHOUSE), limit=100).records
    versions: dict[str, str] = {}
    for record in reversed(records):  # oldest first, so the newest version wins
        versions[record.partition_key] = record.asset_observation.tags["dagster/data_version"]
    return versions


def observation_count(instance: dg.DagsterInstance) -> int:
    return len(instance.fetch_observations(dg.AssetRecordsFilter(asset_key=WAREHOUSE), limit=100).records)


def test_a_day_changed_after_training_shows_stale_until_rematerialised(spark, home: Path) -> None:
    """Late rows in a trained day: observed, downstream stale, later days unaffected, repair clears it."""
    frames = log_random_days(home, 3)
    third = home / "warehouse" / f"dt={THIRD_DAY}"
    third.rename(home / "warehouse" / "_later")  # the third day arrives after the first observation
    defs = definitions(home, tiny_cartpole(home))
    instance = dg.DagsterInstance.ephemeral()
    observe = defs.resolve_job_def(OBSERVE_JOB)
    assets = defs.resolve_implicit_global_asset_job_def()

    def build(day: str, *keys: dg.AssetKey) -> None:
        result = assets.execute_in_process(
            partition_key=day, asset_selection=list(keys or (TIMESTEPS, TRAJECTORIES)), instance=instance
        )
        assert result.success

    assert observe.execute_in_process(instance=instance).success
    first = observed_days(instance)
    assert sorted(first) == [START, NEXT_DAY]  # only complete days are observed
    build(START)
    recorded = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TIMESTEPS, asset_partitions=[START]), limit=1
    ).records[0]
    assert recorded.asset_materialization.metadata["warehouse_fingerprint"].value == first[START]
    assert row_count(instance, TIMESTEPS, START) == len(frames[0])
    build(NEXT_DAY, TIMESTEPS)  # each day is validated against the stored day before it

    assert observe.execute_in_process(instance=instance).success  # nothing changed: nothing logged
    assert observation_count(instance) == 2
    assert status(instance, defs, TIMESTEPS, START) == StaleStatus.FRESH

    (home / "warehouse" / "_later").rename(third)  # trained before its first observation
    build(THIRD_DAY, TIMESTEPS)
    assert observe.execute_in_process(instance=instance).success
    assert status(instance, defs, TIMESTEPS, THIRD_DAY) == StaleStatus.FRESH

    late = frames[0][frames[0].ts == frames[0].ts.max()].assign(user_id=lambda f: f.user_id + 100)
    late_file = home / "warehouse" / f"dt={START}" / "late.parquet"
    pq.write_table(pa.Table.from_pandas(late, preserve_index=False), late_file)
    assert observe.execute_in_process(instance=instance).success
    assert observed_days(instance)[START] != first[START]
    assert observed_days(instance)[NEXT_DAY] == first[NEXT_DAY]
    assert status(instance, defs, TIMESTEPS, START) == StaleStatus.STALE
    # Dagster marks the direct dependant; what follows turns stale once timesteps[d] is rebuilt
    assert status(instance, defs, TRAJECTORIES, START) == StaleStatus.FRESH
    assert status(instance, defs, TIMESTEPS, THIRD_DAY) == StaleStatus.FRESH

    build(NEXT_DAY)  # the next day reads its own folder and the stored timesteps of START
    assert row_count(instance, TIMESTEPS, NEXT_DAY) == len(frames[1])
    assert row_count(instance, TIMESTEPS, START) == len(frames[0])  # not silently re-read
    assert status(instance, defs, TIMESTEPS, START) == StaleStatus.STALE

    build(START, TIMESTEPS)  # the repair: re-materialise from the changed day
    assert row_count(instance, TIMESTEPS, START) == len(frames[0]) + len(late)
    assert status(instance, defs, TIMESTEPS, START) == StaleStatus.FRESH
    assert status(instance, defs, TRAJECTORIES, START) == StaleStatus.STALE  # next in the repair
    assert status(instance, defs, TRAJECTORIES, NEXT_DAY) == StaleStatus.STALE  # its lookback changed

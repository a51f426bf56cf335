"""IO managers: Spark DataFrames as daily Parquet folders, agents as checkpoint folders.

Assets never build paths: these managers map an asset key and a day to
`<root>/<asset key path>/dt=<day>/`, write through a staging folder and commit a new version
atomically (`StorageRoot.commit`, see `storage.py`), and hand downstream assets the current
version of the partitions their mapping asks for. Both depend on the application's run guard
(`run_guard.py`): a step reads or writes nothing before its run has the application's turn.
"""

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Literal, NamedTuple

import dagster as dg
from dagster_pyspark import PySparkResource
from pyarrow import fs
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from rl_bakery_dagster.metadata import column_schema, count, readable, sentence
from rl_bakery_dagster.resources.storage import StorageRoot
from rl_bakery_dagster.run_guard import ApplicationRunGuard
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN


class Metric(NamedTuple):
    """A per-day aggregate computed while the frame is written: `sum` or `mean` of `value`."""

    kind: Literal["sum", "mean"]
    value: Column


@dataclass(frozen=True)
class SparkOutput:
    """A frame with a `dt` column to store, and the per-day numbers to report about it.

    The metrics ride on the write itself (`DataFrame.observe`), so reporting them costs no
    second pass over the data.
    """

    frame: DataFrame
    metrics: Mapping[str, Metric] = field(default_factory=dict)


@dataclass(frozen=True)
class ParquetPartitions:
    """Stored daily partitions of an asset, for readers that stream files instead of using Spark."""

    uris: Mapping[str, str]

    def files(self) -> tuple[fs.FileSystem, list[str]]:
        """The filesystem and the Parquet files of every partition, in day then name order."""
        filesystem: fs.FileSystem = fs.LocalFileSystem()
        found: list[str] = []
        for day in sorted(self.uris):
            filesystem, path = fs.FileSystem.from_uri(self.uris[day])
            infos = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
            found += sorted(
                i.path for i in infos if i.type == fs.FileType.File and i.path.endswith(".parquet")
            )
        return filesystem, found

    def read(self, spark: SparkSession) -> DataFrame | None:
        """The partitions as one Spark frame with its `dt` column (None when there are none)."""
        frames = [
            spark.read.parquet(uri).withColumn(PARTITION_COLUMN, F.lit(day))
            for day, uri in sorted(self.uris.items())
        ]
        return reduce(DataFrame.unionByName, frames) if frames else None


def partition_metadata(
    key: dg.AssetKey,
    per_day: Mapping[str, Mapping[str, object]],
    schema: dg.TableSchema,
    log_event: Callable[[dg.AssetObservation], None],
) -> dict[str, object]:
    """The output metadata of one write: the day's own numbers, or for a range a summary.

    Output metadata is copied to every partition of a range run, and Dagster has no public way
    for an IO manager to give each partition its own (dagster-io/dagster#18123). So a range run
    records each day's exact numbers as an observation of that partition, and its
    materialisations carry what is true of every day: the schema and a per-day table.
    """
    if len(per_day) == 1:
        return readable({**next(iter(per_day.values())), "dagster/column_schema": schema})
    for day, metadata in per_day.items():
        log_event(dg.AssetObservation(asset_key=key, partition=day, metadata=readable(metadata)))
    return readable(
        {
            "dagster/column_schema": schema,
            "days_in_run": len(per_day),
            "rows_in_run": sum(count(m["dagster/row_count"]) for m in per_day.values()),  # type: ignore[arg-type]
            "by_day": {d: {k: v for k, v in m.items() if k != "path"} for d, m in per_day.items()},
        }
    )


STORED_ONLY = "rl_bakery/stored_only"
"""Input metadata: load only the partitions that are stored, for a self-dependency whose other
partitions this run writes (the asset decides which missing days matter)."""


class SparkParquetIOManager(dg.ConfigurableIOManager):
    """Stores Spark DataFrames as one Parquet folder per day under `root_uri`."""

    root_uri: str
    pyspark: dg.ResourceDependency[PySparkResource]
    run_guard: dg.ResourceDependency[ApplicationRunGuard]

    @property
    def _root(self) -> StorageRoot:
        return StorageRoot(self.root_uri)

    def handle_output(self, context: dg.OutputContext, obj: SparkOutput | DataFrame) -> None:
        output = obj if isinstance(obj, SparkOutput) else SparkOutput(obj)
        days = list(context.asset_partition_keys)
        asset_path = list(context.asset_key.path)
        frame = output.frame
        day = F.col(PARTITION_COLUMN)
        expressions = [F.sum(F.when(day == d, 1).otherwise(0)).alias(f"{d}|rows") for d in days]
        for name, metric in output.metrics.items():
            aggregate = F.sum if metric.kind == "sum" else F.avg
            expressions += [aggregate(F.when(day == d, metric.value)).alias(f"{d}|{name}") for d in days]
        observation = Observation("rl_bakery_write")
        staging = self._root.staging_uri(asset_path)
        frame.observe(observation, *expressions).write.partitionBy(PARTITION_COLUMN).parquet(staging)
        observed = observation.get
        data_schema = frame.drop(PARTITION_COLUMN).schema
        spark = frame.sparkSession
        schema = column_schema([(f.name, f.dataType.simpleString()) for f in data_schema.fields])
        what = context.asset_key.to_user_string()
        per_day: dict[str, dict[str, object]] = {}
        for d in days:
            staged_day = f"{staging}/{PARTITION_COLUMN}={d}"
            if not self._root.exists(staged_day):
                spark.createDataFrame([], data_schema).write.parquet(staged_day)
            final = self._root.commit(staged_day, self._root.partition_uri(asset_path, d))
            metadata: dict[str, object] = {"dagster/row_count": count(observed[f"{d}|rows"])}
            for name, metric in output.metrics.items():
                value = observed[f"{d}|{name}"]
                if metric.kind == "sum":
                    metadata[name] = count(value)
                else:
                    metadata[name] = float(value) if value is not None else float("nan")
            metadata["path"] = final
            per_day[d] = metadata
            context.log.info(sentence(f"{what}[{d}]", metadata))
        context.add_output_metadata(partition_metadata(context.asset_key, per_day, schema, context.log_event))
        self._root.remove(staging)

    def load_input(self, context: dg.InputContext) -> DataFrame | ParquetPartitions:
        asset_path = list(context.asset_key.path)
        days = list(context.asset_partition_keys) if context.has_asset_partitions else []
        current = {d: self._root.current_uri(asset_path, d) for d in days}
        if context.definition_metadata.get(STORED_ONLY):
            current = {d: uri for d, uri in current.items() if uri is not None}
        missing = [d for d, uri in current.items() if uri is None]
        if missing:
            raise dg.Failure(
                description=(
                    f"{context.asset_key.to_user_string()} is not materialised for {missing}; "
                    "materialise (or backfill) those days first."
                ),
                metadata={"missing_partitions": missing},
            )
        uris = {d: uri for d, uri in current.items() if uri is not None}
        if context.dagster_type.typing_type is ParquetPartitions:
            return ParquetPartitions(uris)
        if not uris:
            raise dg.Failure(description=f"no partitions of {context.asset_key.to_user_string()} to read")
        spark = self.pyspark.spark_session
        base = self._root.asset_uri(asset_path)  # `dt` comes from `<base>/dt=<day>/<version>/`
        frame = spark.read.option("basePath", base).parquet(*uris.values())
        return frame.withColumn(PARTITION_COLUMN, F.col(PARTITION_COLUMN).cast("string"))


def write_json(uri: str, payload: Mapping[str, object]) -> None:
    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_output_stream(path) as stream:
        stream.write(json.dumps(payload, indent=2, sort_keys=True).encode())


def read_json(uri: str) -> dict:
    filesystem, path = fs.FileSystem.from_uri(uri)
    with filesystem.open_input_stream(path) as stream:
        return json.loads(stream.read().decode())


@dataclass(frozen=True)
class AgentArtifacts:
    """One trained day: a local folder with `checkpoint/`, `policies/{greedy,collect}/`, `metrics.json`."""

    local_dir: str


class CheckpointIOManager(dg.ConfigurableIOManager):
    """Stores each day's agent folder under `root_uri`; loads the uris of stored days."""

    root_uri: str
    run_guard: dg.ResourceDependency[ApplicationRunGuard]

    @property
    def _root(self) -> StorageRoot:
        return StorageRoot(self.root_uri)

    def handle_output(self, context: dg.OutputContext, obj: Mapping[str, AgentArtifacts]) -> None:
        asset_path = list(context.asset_key.path)
        for day, artifacts in sorted(obj.items()):
            staging = self._root.staging_uri(asset_path)
            filesystem, staging_path = fs.FileSystem.from_uri(staging)
            filesystem.create_dir(staging_path, recursive=True)
            fs.copy_files(artifacts.local_dir, staging, destination_filesystem=filesystem)
            final = self._root.commit(staging, self._root.partition_uri(asset_path, day))
            shutil.rmtree(artifacts.local_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(artifacts.local_dir))  # the run's scratch folder, once empty
            context.log.info(f"committed {context.asset_key.to_user_string()}[{day}] to {final}")

    def load_input(self, context: dg.InputContext) -> dict[str, str]:
        asset_path = list(context.asset_key.path)
        days = list(context.asset_partition_keys) if context.has_asset_partitions else []
        current = {d: self._root.current_uri(asset_path, d) for d in days}
        return {d: uri for d, uri in current.items() if uri is not None}

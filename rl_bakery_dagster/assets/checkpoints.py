"""`agent_checkpoint[d]`: the agent trained through day d, restored from day d-1's checkpoint."""

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import dagster as dg
from pyarrow import fs

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.checkpoint_settings import CheckpointMismatch
from rl_bakery_dagster.concurrency import application_pool
from rl_bakery_dagster.metadata import readable
from rl_bakery_dagster.partitions import (
    previous_day,
    shift_day,
    single_run,
    training_window,
    window_days,
)
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import AgentArtifacts, ParquetPartitions


@contextlib.contextmanager
def local_folder(uri: str) -> Iterator[str]:
    """A local path holding the folder at `uri` (a copy when it lives in an object store)."""
    filesystem, path = fs.FileSystem.from_uri(uri)
    if isinstance(filesystem, fs.LocalFileSystem):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="rl_bakery_restore_") as scratch:
        fs.copy_files(uri, scratch)
        yield scratch


def build_checkpoint_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    settings = app.trajectory
    key = dg.AssetKey([app.name, "agent_checkpoint"])

    @dg.asset(
        key=key,
        ins={
            "trajectories": dg.AssetIn(
                key=[app.name, "trajectories"],
                partition_mapping=training_window(settings.lag_days, settings.window_days),
            ),
            "previous_checkpoint": dg.AssetIn(key=key, partition_mapping=previous_day),
        },
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="checkpoint_io_manager",
        group_name=app.name,
        kinds={"tensorflow"},
        pool=application_pool(app.name),
    )
    def agent_checkpoint(
        context: dg.AssetExecutionContext,
        agent: TFAgentsResource,
        trajectories: ParquetPartitions,
        previous_checkpoint: dict[str, str],
    ) -> dict[str, AgentArtifacts]:
        """The agent after training on the day's window, with its exported greedy and collect policies."""
        from rl_bakery_dagster.training.daily import TrainingDivergedError, train_day

        days = sorted(context.partition_keys)
        first_previous = shift_day(days[0], -1)
        restore_from = previous_checkpoint.get(first_previous)
        if restore_from is None and first_previous >= app.start_date:
            raise dg.Failure(
                f"agent_checkpoint[{first_previous}] is not materialised, so {days[0]} has nothing "
                f"to continue from; backfill from {first_previous} (or earlier) first."
            )
        scratch = tempfile.mkdtemp(prefix=f"rl_bakery_{app.name}_")
        outputs: dict[str, AgentArtifacts] = {}
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: None if len(outputs) == len(days) else shutil.rmtree(scratch, True))
            previous_folder = stack.enter_context(local_folder(restore_from)) if restore_from else None
            previous = first_previous if previous_folder else None
            try:
                for day in days:
                    in_window = window_days(day, settings.lag_days, settings.window_days)
                    window = {d: uri for d, uri in trajectories.uris.items() if d in in_window}
                    folder = os.path.join(scratch, day)
                    try:
                        metadata = train_day(
                            app, agent, day, previous, previous_folder, window, folder, context.log
                        )
                    except TrainingDivergedError as error:
                        raise dg.Failure(description=str(error), metadata={"day": day}) from error
                    outputs[day] = AgentArtifacts(folder)
                    previous_folder, previous = folder, day
                    if len(days) == 1:
                        context.add_output_metadata(readable(metadata))
                    else:
                        context.add_asset_metadata(readable(metadata), partition_key=day)
            except CheckpointMismatch as mismatch:
                raise dg.Failure(description=str(mismatch), allow_retries=False) from mismatch
        return outputs

    return agent_checkpoint

"""`agent_checkpoint[d]`: the agent trained through day d, restored from day d-1's checkpoint."""

import contextlib
import os
import tempfile
from collections.abc import Iterator

import dagster as dg
from pyarrow import fs

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.partitions import (
    days_between,
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
        pool=f"{app.name}_training",
    )
    def agent_checkpoint(
        context: dg.AssetExecutionContext,
        agent: TFAgentsResource,
        trajectories: ParquetPartitions,
        previous_checkpoint: dict[str, str],
    ) -> dict[str, AgentArtifacts]:
        """The agent after training on the day's window, with its exported greedy and collect policies."""
        from rl_bakery_dagster.training.checkpoints import restore_agent, save_agent
        from rl_bakery_dagster.training.dataset import TransitionLayout
        from rl_bakery_dagster.training.trainer import train_on_transitions

        days = sorted(context.partition_keys)
        first_previous = shift_day(days[0], -1)
        restore_from = previous_checkpoint.get(first_previous)
        if restore_from is None and first_previous >= app.start_date:
            raise dg.Failure(
                f"agent_checkpoint[{first_previous}] is not materialised, so {days[0]} has nothing "
                f"to continue from; backfill from {first_previous} (or earlier) first."
            )
        layout = TransitionLayout(
            n_step=settings.n_step,
            observation_size=app.schema.observation_size,
            action_size=app.action_space.size,
            discrete_action=app.action_space.is_discrete,
        )
        scratch = tempfile.mkdtemp(prefix=f"rl_bakery_{app.name}_")
        outputs: dict[str, AgentArtifacts] = {}
        with contextlib.ExitStack() as stack:
            previous_folder = stack.enter_context(local_folder(restore_from)) if restore_from else None
            restored_from = first_previous if previous_folder else "fresh agent"
            for day in days:
                tf_agent = agent.build(
                    app.schema.observation_spec(), app.action_space.tensor_spec(), settings.n_step
                )
                if previous_folder:
                    restore_agent(tf_agent, previous_folder)
                    context.log.info(f"{day}: restored the agent of the previous day")
                else:
                    context.log.info(f"{day}: first day, starting from a fresh agent")
                in_window = window_days(day, settings.lag_days, settings.window_days)
                window = ParquetPartitions({d: u for d, u in trajectories.uris.items() if d in in_window})
                filesystem, files = window.files()
                stats = train_on_transitions(
                    tf_agent,
                    filesystem,
                    files,
                    layout,
                    train_steps=agent.train_steps_per_day,
                    batch_size=agent.batch_size,
                    shuffle_rows=agent.shuffle_buffer_rows,
                    seed=agent.seed * 100_003 + days_between(app.start_date, day),
                    log=context.log,
                )
                metadata: dict[str, float | int | str] = {
                    **stats.as_metadata(),
                    "restored_from": restored_from,
                    "training_days": ", ".join(sorted(window.uris)) or "none",
                }
                if app.evaluator is not None:
                    result = app.evaluator(tf_agent.policy, agent.seed)
                    metadata |= {
                        "eval_return_mean": result.mean_return,
                        "eval_return_std": result.std_return,
                        "eval_episodes": result.episodes,
                    }
                    context.log.info(
                        f"{day}: greedy policy returns {result.mean_return:.2f} ± {result.std_return:.2f}"
                    )
                folder = os.path.join(scratch, day)
                save_agent(tf_agent, folder, {"day": day, **metadata})
                outputs[day] = AgentArtifacts(folder)
                previous_folder, restored_from = folder, day
                if len(days) == 1:
                    context.add_output_metadata(metadata)
                else:
                    context.add_asset_metadata(metadata, partition_key=day)
        return outputs

    return agent_checkpoint

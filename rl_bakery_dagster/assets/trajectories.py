"""`trajectories[d]`: n-step transitions whose last timestep falls on day d."""

import dagster as dg
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from rl_bakery_dagster.application import LAST, Application
from rl_bakery_dagster.concurrency import application_pool
from rl_bakery_dagster.partitions import lookback, single_run
from rl_bakery_dagster.resources.io_managers import Metric, SparkOutput
from rl_bakery_dagster.trajectory_format import NEXT_STEP_TYPE, REWARD, STEP_TYPE
from rl_bakery_dagster.transforms.transitions import build_transitions


def build_trajectories_asset(app: Application, partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    settings = app.trajectory

    @dg.asset(
        key=[app.name, "trajectories"],
        ins={
            "timesteps": dg.AssetIn(
                key=[app.name, "timesteps"], partition_mapping=lookback(settings.lookback_days)
            )
        },
        partitions_def=partitions,
        backfill_policy=single_run,
        io_manager_key="parquet_io_manager",
        group_name=app.name,
        kinds={"spark", "parquet"},
        pool=application_pool(app.name),
    )
    def trajectories(context: dg.AssetExecutionContext, timesteps: DataFrame) -> SparkOutput:
        """n-step transitions, each stored once: in the day of its last timestep."""
        last_step = NEXT_STEP_TYPE if app.schema.single_step else STEP_TYPE
        frame = build_transitions(timesteps, app.schema, settings.n_step, context.partition_keys)
        return SparkOutput(
            frame,
            metrics={
                "episodes_ended": Metric("sum", (F.element_at(last_step, -1) == LAST).cast("int")),
                "mean_reward": Metric("mean", F.element_at(REWARD, 1)),
            },
        )

    return trajectories

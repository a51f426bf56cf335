"""`build_definitions(app)`: the whole Dagster project of one application."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.assets.actions import build_action_batch_asset
from rl_bakery_dagster.assets.checkpoints import build_checkpoint_asset
from rl_bakery_dagster.assets.evaluation import build_policy_evaluation_asset
from rl_bakery_dagster.assets.rl_evaluation import build_rl_policy_evaluation_asset, has_sequential_evaluation
from rl_bakery_dagster.assets.timesteps import build_timesteps_asset
from rl_bakery_dagster.assets.trajectories import build_trajectories_asset
from rl_bakery_dagster.assets.warehouse import build_warehouse_asset, warehouse_key
from rl_bakery_dagster.jobs import (
    build_daily_job,
    build_daily_schedule,
    build_observation_job,
    build_observation_schedule,
)
from rl_bakery_dagster.local_instance import ensure_dagster_home
from rl_bakery_dagster.partitions import daily_partitions
from rl_bakery_dagster.resources.agents import with_application_defaults
from rl_bakery_dagster.resources.io_managers import CheckpointIOManager, SparkParquetIOManager
from rl_bakery_dagster.resources.spark import spark_resource
from rl_bakery_dagster.run_guard import ApplicationRunGuard
from rl_bakery_dagster.sensors import build_warehouse_sensor


def bakery_home() -> Path:
    """Local state (storage, Spark scratch) lives under `RL_BAKERY_HOME`, default `./.rl_bakery`."""
    return Path(os.environ.get("RL_BAKERY_HOME", ".rl_bakery")).resolve()


def storage_uri(home: Path) -> str:
    """Root of every asset partition: `RL_BAKERY_STORAGE_URI`, default `<home>/storage`."""
    return os.environ.get("RL_BAKERY_STORAGE_URI", str(home / "storage"))


def build_definitions(
    app: Application, *, home: Path | None = None, storage: str | None = None
) -> dg.Definitions:
    """Assets, the daily job, its schedule and warehouse sensor, and resources for `app`.

    `home` and `storage` default to `bakery_home()` and `storage_uri(home)` (environment).
    """
    home = home or bakery_home()
    if "DAGSTER_HOME" not in os.environ:  # the Python API then finds the same instance as the scripts
        ensure_dagster_home(home)
    root = storage or storage_uri(home)
    partitions = daily_partitions(app.start_date)
    job = build_daily_job(app, partitions)
    observe = build_observation_job(warehouse_key(app))
    pyspark = spark_resource(home)
    run_guard = ApplicationRunGuard(application=app.name)
    assets = [
        build_warehouse_asset(app, partitions),
        build_timesteps_asset(app, partitions),
        build_trajectories_asset(app, partitions),
        build_checkpoint_asset(app, partitions),
    ]
    if app.is_bandit:
        assets.append(build_policy_evaluation_asset(app, partitions))
    elif has_sequential_evaluation(app):
        assets.append(build_rl_policy_evaluation_asset(app, partitions))
    if app.population is not None:
        assets.append(build_action_batch_asset(app, partitions))
    return dg.Definitions(
        assets=assets,
        jobs=[job, observe],
        schedules=[build_daily_schedule(app, job, partitions), build_observation_schedule(observe)],
        sensors=[build_warehouse_sensor(app, job, partitions)],
        resources={
            "pyspark": pyspark,
            "agent": with_application_defaults(app.agent),
            "run_guard": run_guard,
            "parquet_io_manager": SparkParquetIOManager(root_uri=root, pyspark=pyspark, run_guard=run_guard),
            "checkpoint_io_manager": CheckpointIOManager(root_uri=root, run_guard=run_guard),
        },
        executor=dg.in_process_executor,
    )

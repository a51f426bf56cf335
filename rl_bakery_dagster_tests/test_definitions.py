"""What `build_definitions` hands to Dagster: the graph, the job, the schedule and the sensor."""

import importlib
from pathlib import Path

import dagster as dg
import pytest

from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster_tests.apps import definitions, tiny_cartpole


def test_definitions_of_an_application(home: Path) -> None:
    defs = definitions(home, tiny_cartpole(home))
    defs.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "cartpole/warehouse",
        "cartpole/timesteps",
        "cartpole/trajectories",
        "cartpole/agent_checkpoint",
    }
    warehouse = dg.AssetKey(["cartpole", "warehouse"])
    assert graph.get(warehouse).is_observable and graph.get(warehouse).is_external
    timesteps = dg.AssetKey(["cartpole", "timesteps"])
    assert graph.get(timesteps).parent_keys == {
        warehouse,
        timesteps,
    }  # each day is judged against its predecessors
    checkpoint = dg.AssetKey(["cartpole", "agent_checkpoint"])
    assert graph.get(checkpoint).parent_keys == {dg.AssetKey(["cartpole", "trajectories"]), checkpoint}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def.start.date().isoformat() == "2024-01-01"
        if key != warehouse:  # the daily job's assets; the observation has its own job
            assert node.backfill_policy == dg.BackfillPolicy.single_run()

    checks = {key.name for key in graph.asset_check_keys if key.asset_key.path[-1] == "timesteps"}
    assert {
        "contract_columns",
        "finite_observation",
        "action_in_spec",
        "unique_timestep",
        "episode_order",
    } <= checks

    job = defs.resolve_job_def(DAILY_JOB)
    assert job.tags["rl_bakery/app"] == "cartpole"
    assert defs.resolve_schedule_def("daily_schedule").cron_schedule == "0 2 * * *"
    assert defs.resolve_sensor_def("cartpole_warehouse_sensor").job_name == DAILY_JOB
    assert warehouse not in {n.key for n in job.asset_layer.asset_graph.asset_nodes if n.is_executable}
    assert defs.resolve_schedule_def("warehouse_observation_schedule").job_name == "observe_warehouse"


def test_the_example_module_loads() -> None:
    from rl_bakery_dagster.examples.cartpole.definitions import defs

    assert DAILY_JOB in {job.name for job in defs.resolve_all_job_defs()}


@pytest.mark.parametrize("example", ["cartpole", "mountain_car", "obd", "notification_timing"])
def test_every_asset_of_an_application_is_in_its_pool(example: str) -> None:
    """One run per application relies on every asset carrying the pool (UI runs have no job tags)."""
    defs = importlib.import_module(f"rl_bakery_dagster.examples.{example}.definitions").defs
    assets = list(defs.assets or [])
    assert len(assets) >= 3
    for asset in assets:
        if isinstance(asset, dg.SourceAsset):
            continue  # the warehouse: observed by its own job, never materialised
        assert isinstance(asset, dg.AssetsDefinition)
        assert asset.op.pool == f"rl_bakery_{asset.key.path[0]}", asset.key


@pytest.mark.parametrize("example", ["cartpole", "obd"])  # an RL application and a bandit with a gate
def test_everything_an_operator_sees_is_described(example: str) -> None:
    """The UI shows these descriptions (issue 15): the sensor's docstring never reached it, checks
    said only "timestep contract: <rule>", and the schedule showed no partition set."""
    defs = importlib.import_module(f"rl_bakery_dagster.examples.{example}.definitions").defs
    for sensor in defs.sensors or []:
        assert len(sensor.description or "") > 100, sensor.name
    for job in defs.resolve_all_job_defs():
        if not job.name.startswith("__"):  # Dagster's implicit asset job
            assert len(job.description or "") > 60, job.name
    daily = defs.resolve_schedule_def("daily_schedule")
    assert "from " in daily.description and "days (UTC)" in daily.description
    assert daily.metadata["partition_set"].value == daily.description.split("partition of ")[1].split(".")[0]
    assert len(defs.resolve_schedule_def("warehouse_observation_schedule").description or "") > 60
    graph = defs.resolve_asset_graph()
    specs = [
        spec
        for asset in defs.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        for spec in asset.check_specs
    ]
    assert {dg.AssetCheckKey(s.asset_key, s.name) for s in specs} == set(graph.asset_check_keys)
    for spec in specs:
        description = spec.description or ""
        if spec.asset_key.path[-1] == "timesteps":  # the contract's rules
            assert f"rule {spec.name}: checks that" in description
            # its own sentence in check_descriptions.RULES, not the fallback made from the name
            assert spec.name.replace("_", " ") not in description.split("checks that ")[1], spec.name
            assert "re-materialise that day" in description  # what to do
        else:  # the bandit's deployment gate: what each outcome deploys
            assert "deploys" in description and "refused" in description, spec.name

"""The warehouse sensor asks for each complete day exactly once, in order, and never for an incomplete one."""

from pathlib import Path

import dagster as dg

from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster_tests.apps import definitions, log_random_days, tiny_cartpole

SENSOR = "cartpole_warehouse_sensor"


def evaluate(defs: dg.Definitions, cursor: str | None) -> dg.SensorResult:
    sensor = defs.resolve_sensor_def(SENSOR)
    context = dg.build_sensor_context(
        cursor=cursor, instance=dg.DagsterInstance.ephemeral(), definitions=defs
    )
    return sensor.evaluate_tick(context)


def test_requests_new_complete_days_once(home: Path) -> None:
    log_random_days(home, 2)
    defs = definitions(home, tiny_cartpole(home))

    first = evaluate(defs, cursor=None)
    assert [r.partition_key for r in first.run_requests] == ["2024-01-01", "2024-01-02"]
    assert [r.run_key for r in first.run_requests] == ["cartpole:2024-01-01", "cartpole:2024-01-02"]
    assert first.cursor == "2024-01-02"

    unchanged = evaluate(defs, cursor=first.cursor)
    assert unchanged.run_requests == []
    assert unchanged.cursor == "2024-01-02"


def test_waits_for_the_success_marker_and_for_gaps(home: Path) -> None:
    frames = log_random_days(home, 1)
    warehouse = home / "warehouse"
    write_day(frames[0], str(warehouse), "2024-01-02")
    (warehouse / "dt=2024-01-02" / "_SUCCESS").unlink()  # still being written
    write_day(frames[0], str(warehouse), "2024-01-03")  # complete, but after a gap
    defs = definitions(home, tiny_cartpole(home))

    tick = evaluate(defs, cursor="2024-01-01")
    assert tick.run_requests == []

    (warehouse / "dt=2024-01-02" / "_SUCCESS").touch()
    tick = evaluate(defs, cursor="2024-01-01")
    assert [r.partition_key for r in tick.run_requests] == ["2024-01-02", "2024-01-03"]

"""The notification timing demo: a simulated product learns when to send each user's push, day after day.

Day 1 is served by a uniformly random slot. Every day d is then materialised through the
`daily_training` job in the local Dagster instance (the runs show up in `dagster dev`), and the
simulator serves day d+1 from `action_batch[d]`. Per day it prints the click rate of the deployed
batch, of random slots and of the oracle, and the share of the gap closed; the last line is one
JSON object with the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.local_instance import local_instance

TARGET_GAP_CLOSED = 0.8
HEADER = (
    f"{'day':<10} {'served':<10} {'policy':<40} {'clicks':>7} {'expected':>8} {'random':>7} "
    f"{'oracle':>7} {'gap':>6} {'best':>5} {'run s':>6}"
)


GATE_CONFIG = {
    "ops": {"notification_timing__policy_evaluation": {"config": {"on_not_enough_evidence": "candidate"}}}
}
"""The simulated product serves near-greedy batches (epsilon 0.05 over 8 slots: importance weights up to
160), so the gate's finite-sample intervals are often too wide to judge at this size; the demo deploys
such a candidate as trained (the gate still refuses one that is confidently worse)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000, help="users who get a notification every day")
    parser.add_argument("--days", type=int, default=7, help="days to materialise (day d serves day d+1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated world")
    parser.add_argument("--verbose", action="store_true", help="show Dagster's INFO logs")
    args = parser.parse_args()

    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    instance = local_instance(bakery_home())
    import tensorflow as tf
    from absl import logging as absl_logging

    tf.get_logger().setLevel("ERROR")
    absl_logging.set_verbosity(absl_logging.ERROR)
    warnings.filterwarnings("ignore")

    from rl_bakery_dagster.examples.gym_application import warehouse_uri
    from rl_bakery_dagster.examples.notification_timing.application import (
        NAME,
        START_DATE,
        population_uri,
    )
    from rl_bakery_dagster.examples.notification_timing.definitions import defs
    from rl_bakery_dagster.examples.notification_timing.simulator import (
        DayResult,
        NotificationWorld,
        simulate,
    )
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.storage import StorageRoot

    job = defs.resolve_job_def(DAILY_JOB)
    storage = StorageRoot(defs.resources["parquet_io_manager"].root_uri)  # type: ignore[union-attr]
    level = "INFO" if args.verbose else "WARNING"
    run_config = {"loggers": {"console": {"config": {"log_level": level}}}} | GATE_CONFIG

    def materialise(day: str) -> None:
        result = job.execute_in_process(partition_key=day, instance=instance, run_config=run_config)
        if not result.success:
            raise RuntimeError(f"the daily run of {day} failed")

    def show(result: DayResult) -> None:
        r = result.report
        print(
            f"{r.day:<10} {shift_day(r.day, 1):<10} {r.policy_version[:40]:<40} "
            f"{r.logged_click_rate:>7.4f} {r.expected_click_rate:>8.4f} {r.random_click_rate:>7.4f} "
            f"{r.oracle_click_rate:>7.4f} {r.gap_closed:>6.1%} {r.greedy_is_oracle_slot:>5.0%} "
            f"{result.pipeline_seconds:>6.0f}",
            flush=True,
        )

    print(f"home: {bakery_home()}  (Dagster instance: {os.environ['DAGSTER_HOME']})")
    print(f"{args.users} users, 8 three-hour slots; day 1 ({START_DATE}) served uniformly at random")
    print(
        "clicks: logged click rate of the batch on the day it served; expected: its exact expectation;\n"
        "gap: (clicks - random) / (oracle - random); best: share of users whose greedy slot is the oracle's"
    )
    print(HEADER, flush=True)
    world = NotificationWorld(args.users, seed=args.seed)
    started = time.monotonic()
    results = simulate(
        world,
        START_DATE,
        args.days,
        warehouse_uri(NAME),
        population_uri(),
        lambda day: storage.read_uri([NAME, "action_batch"], day),
        materialise,
        on_day=show,
    )
    wall = time.monotonic() - started
    last = results[-1].report
    met = last.gap_closed >= TARGET_GAP_CLOSED
    print(
        f"day {args.days}: the deployed policy closes {last.gap_closed:.1%} of the gap between random and "
        f"the oracle (target {TARGET_GAP_CLOSED:.0%}: {'met' if met else 'MISSED'}); wall {wall:.0f}s"
    )
    summary = {
        "users": args.users,
        "days": args.days,
        "seed": args.seed,
        "target_gap_closed": TARGET_GAP_CLOSED,
        "final_gap_closed": last.gap_closed,
        "target_met": met,
        "wall_seconds": round(wall, 1),
        "agent": defs.resources["agent"].model_dump(),  # type: ignore[union-attr]
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "per_day": [result.as_dict() for result in results],
    }
    print(json.dumps(summary, default=str), flush=True)


if __name__ == "__main__":
    main()

"""The CartPole demo: simulate daily logs and train through the Dagster graph, day after day.

Day 1's logs come from a random policy; each later day is played by the policy deployed the
day before (the day's checkpoint played epsilon-greedy, or what the deployment gate chose when
the application has one), with the exact propensity of every action logged, as a deployed
product would. Every day is
materialised through the `daily_training` job in the local Dagster instance, so the runs show up
in `dagster dev` afterwards.

The days end the day before yesterday (UTC) by default: the UI plots and the Materialize dialog
show the most recent partitions, so the demo's days are the ones a user sees there, and
yesterday is left for `--next-day`, which writes the logs of the day after the warehouse's newest
day (played by the policy deployed that day) without training, for the README's
`dagster job execute` example. Each day written is observed (`observe_warehouse`) before it is
trained, so the UI's lineage starts at the warehouse.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.local_instance import local_instance

INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def new_player_ids(warehouse: str, day: str) -> int:
    """The first user id not seen on `day` (the simulator keeps no state between processes)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pq.read_table(f"{warehouse}/dt={day}", columns=["user_id"]).column("user_id")
    return int(pc.max(ids).as_py()) + 1


def main() -> None:
    from rl_bakery_dagster.examples.presets import PRESETS

    preset = PRESETS["cartpole"]  # the sizes behind benchmarks/LEARNING.md: same seed, same days
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=preset.days, help="days to simulate and train")
    parser.add_argument("--envs", type=int, default=preset.envs, help="simultaneous CartPole players")
    parser.add_argument(
        "--steps-per-env", type=int, default=preset.steps_per_env, help="steps each player logs per day"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--last-day", default=None, help="the demo's last day (default: the day before yesterday, UTC)"
    )
    parser.add_argument(
        "--next-day",
        action="store_true",
        help="only write the logs of the day after the warehouse's newest day (no training)",
    )
    args = parser.parse_args()

    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    instance = local_instance(bakery_home())
    from rl_bakery_dagster.examples.gym_days import quiet_example_logs

    quiet_example_logs()

    from rl_bakery_dagster.application import ParquetWarehouse
    from rl_bakery_dagster.assets.evaluation import deployed_checkpoint, deployed_exploration
    from rl_bakery_dagster.examples.cartpole.application import ENV_NAME, OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.gym_application import warehouse_uri
    from rl_bakery_dagster.examples.gym_simulator import (
        BatchedGym,
        deployed_policy,
        random_policy,
        write_day,
    )
    from rl_bakery_dagster.jobs import DAILY_JOB, OBSERVE_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.storage import StorageRoot

    app_name = "cartpole"
    warehouse = warehouse_uri(app_name)
    logged = ParquetWarehouse(warehouse).complete_days()
    yesterday = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    last = args.last_day or shift_day(yesterday, -1)
    first = shift_day(last, 1 - args.days)
    if args.next_day and not logged:
        sys.exit("The warehouse has no days yet: run the demo first (bash scripts/demo.sh).")
    if not args.next_day and logged and logged[0] < first:
        sys.exit(
            f"{warehouse} already holds an earlier chain (from {logged[0]}): the demo starts a new "
            f"one on {first}. Use a fresh RL_BAKERY_HOME, or --last-day to continue from "
            f"{logged[-1]}."
        )
    product = BatchedGym(ENV_NAME, args.envs, seed=args.seed * 100_000)  # the benchmark's seeds
    if not args.next_day:  # the chain's first day, played at random; the example's partitions start here
        first_logs = product.log(
            random_policy(product.action_space, args.seed), args.steps_per_env, OBSERVATION_COLUMNS
        )
        write_day(first_logs, warehouse, first)

    from rl_bakery_dagster.examples.cartpole.definitions import defs

    job = defs.resolve_job_def(DAILY_JOB)
    observe = defs.resolve_job_def(OBSERVE_JOB)
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)  # type: ignore[union-attr]
    asset_names = {key.path[-1] for key in defs.resolve_all_asset_keys()}
    chain_start = logged[0] if args.next_day else first

    def deployed(day: str) -> tuple[object, str]:
        """The policy deployed on `day`: the one the gate chose the day before, when there is a gate."""
        previous = shift_day(day, -1)
        if "policy_evaluation" in asset_names:  # the gate chose what is deployed (lag_days >= 1)
            record = storage.read_uri([app_name, "policy_evaluation"], previous)
            deployed_day, saved = deployed_checkpoint(record)
            unsure = deployed_exploration(record)
        else:
            deployed_day, unsure = previous, None
            saved = storage.read_uri([app_name, "agent_checkpoint"], previous)
        seed = args.seed * 1_000 + (dt.date.fromisoformat(day) - dt.date.fromisoformat(chain_start)).days
        policy = deployed_policy(saved, product.action_space.n, seed, unsure)
        played_by = (
            f"agent_checkpoint[{deployed_day}], epsilon-greedy with logged propensities"
            if deployed_day
            else "a random policy (no policy accepted yet)"
        )
        return policy, played_by

    def log_and_observe(day: str) -> tuple[int, str]:
        """Writes `day`'s logs played by the deployed policy, then observes the warehouse."""
        if day == first and not args.next_day:
            rows, played_by = len(first_logs), "a random policy"
        else:
            policy, played_by = deployed(day)
            logs = product.log(policy, args.steps_per_env, OBSERVATION_COLUMNS)
            if args.next_day:  # a new process cannot continue yesterday's episodes: new players
                logs["user_id"] += new_player_ids(warehouse, shift_day(day, -1))
            write_day(logs, warehouse, day)
            rows = len(logs)
        observe.execute_in_process(
            instance=instance, run_config=QUIET_LOGS
        )  # lineage: warehouse[day] is known before training
        return rows, played_by

    if args.next_day:
        day = shift_day(logged[-1], 1)
        if day > yesterday:
            sys.exit(
                f"The warehouse already holds {logged[-1]}; {day} is not over yet (UTC): it has no partition."
            )
        if storage.current_uri([app_name, "agent_checkpoint"], logged[-1]) is None:
            sys.exit(f"agent_checkpoint[{logged[-1]}] is not trained yet: its policy plays {day}.")
        rows, played_by = log_and_observe(day)
        print(f"{day}: {rows} timesteps played by {played_by}, written to {warehouse}/dt={day}")
        return

    print(f"home: {bakery_home()}  (Dagster instance: {os.environ['DAGSTER_HOME']})")
    for offset in range(args.days):
        day = shift_day(first, offset)
        rows, played_by = log_and_observe(day)
        started = time.monotonic()
        result = job.execute_in_process(partition_key=day, instance=instance, run_config=INFO_LOGS)
        metadata = next(
            event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.materialization.asset_key.path[-1] == "agent_checkpoint"
        )
        print(
            f"{day}: {rows} timesteps played by {played_by}; trained "
            f"{metadata['train_steps'].value} steps in {time.monotonic() - started:.0f}s; "
            f"greedy policy return {metadata['eval_return_mean'].value:.1f} "
            f"± {metadata['eval_return_std'].value:.1f} over {metadata['eval_episodes'].value} episodes",
            flush=True,
        )
    print("Done. Browse the runs and assets with:  bash scripts/ui.sh")


if __name__ == "__main__":
    main()

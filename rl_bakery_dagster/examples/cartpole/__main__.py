"""The CartPole demo: simulate daily logs and train through the Dagster graph, day after day.

Day 1's logs come from a random policy; each later day is played by the collect policy that
`agent_checkpoint` exported the day before, as a deployed product would. Every day is
materialised through the `daily_training` job in the local Dagster instance, so the runs show up
in `dagster dev` afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.local_instance import local_instance

INFO_LOGS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=4, help="days to simulate and train")
    parser.add_argument("--envs", type=int, default=16, help="simultaneous CartPole players")
    parser.add_argument("--steps-per-env", type=int, default=125, help="steps each player logs per day")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    instance = local_instance(bakery_home())
    import tensorflow as tf
    from absl import logging as absl_logging

    tf.get_logger().setLevel("ERROR")
    absl_logging.set_verbosity(absl_logging.ERROR)
    for noisy in ("gym", "tensorflow", "tf_agents", "keras"):
        warnings.filterwarnings("ignore", module=noisy)
    warnings.filterwarnings("ignore", category=SyntaxWarning)

    from rl_bakery_dagster.assets.evaluation import deployed_checkpoint, deployed_exploration
    from rl_bakery_dagster.examples.cartpole.application import ENV_NAME, OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.cartpole.definitions import defs
    from rl_bakery_dagster.examples.gym_application import warehouse_uri
    from rl_bakery_dagster.examples.gym_simulator import (
        BatchedGym,
        deployed_policy,
        random_policy,
        write_day,
    )
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.storage import StorageRoot

    app_name = "cartpole"
    asset_names = {key.path[-1] for key in defs.resolve_all_asset_keys()}
    job = defs.resolve_job_def(DAILY_JOB)
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)  # type: ignore[union-attr]
    start = "2024-01-01"
    product = BatchedGym(ENV_NAME, args.envs, seed=args.seed)
    print(f"home: {bakery_home()}  (Dagster instance: {os.environ['DAGSTER_HOME']})")
    for offset in range(args.days):
        day = shift_day(start, offset)
        if offset == 0:
            policy, played_by = random_policy(product.action_space, args.seed), "a random policy"
        else:
            yesterday = shift_day(day, -1)
            if "policy_evaluation" in asset_names:  # the gate chose what is deployed (lag_days >= 1)
                record = storage.read_uri([app_name, "policy_evaluation"], yesterday)
                deployed_day, saved = deployed_checkpoint(record)
                unsure = deployed_exploration(record)
            else:
                deployed_day, unsure = yesterday, None
                saved = storage.read_uri([app_name, "agent_checkpoint"], yesterday)
            policy = deployed_policy(saved, product.action_space.n, args.seed + offset, unsure)
            played_by = (
                f"agent_checkpoint[{deployed_day}], epsilon-greedy with logged propensities"
                if deployed_day
                else "a random policy (no policy accepted yet)"
            )
        logs = product.log(policy, args.steps_per_env, OBSERVATION_COLUMNS)
        write_day(logs, warehouse_uri(app_name), day)
        started = time.monotonic()
        result = job.execute_in_process(partition_key=day, instance=instance, run_config=INFO_LOGS)
        metadata = next(
            event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.materialization.asset_key.path[-1] == "agent_checkpoint"
        )
        print(
            f"{day}: {len(logs)} timesteps played by {played_by}; trained "
            f"{metadata['train_steps'].value} steps in {time.monotonic() - started:.0f}s; "
            f"greedy policy return {metadata['eval_return_mean'].value:.1f} "
            f"± {metadata['eval_return_std'].value:.1f} over {metadata['eval_episodes'].value} episodes",
            flush=True,
        )
    print("Done. Browse the runs and assets with:  bash scripts/ui.sh")


if __name__ == "__main__":
    main()

"""`action_batch` scoring: a population of N users through `score_population` on Spark, against plain TF.

A `NeuralEpsilonGreedyAgent` with a [100, 100] reward network (8 float context columns, 8 actions)
is exported with the package's own `save_agent` (PolicySaver SavedModels). A population of N
users (user id and 8 float columns, Parquet) is then scored the way the `action_batch` asset
does it, with `rl_bakery_dagster.transforms.scoring.score_population` on a local[2] SparkSession
with the package's Spark settings (`spark_config`):

- `parquet_cold`: written with `partitionBy("dt")` as the Parquet IO manager writes it, as the
  first job of the session: every Python worker starts, imports TensorFlow and loads the model;
- then `--repeats` rounds of, on warm workers (as in a daily run, where `policy_evaluation` has
  already loaded the same SavedModel into the same workers):
  `parquet` (the headline figure, median), `noop` (the same scoring into Spark's `noop` sink, no
  write) and `no_policy_noop` (the same code path with no policy: uniformly random actions, no
  TensorFlow call; the Spark + Arrow + pandas floor of `score_population`).

In the same process, `in_process` runs the same SavedModel over the same observations (read once
from the Parquet files into one float32 array, not timed) with plain batched `policy.action`
calls of `INFERENCE_BATCH` rows: the floor that Spark's Arrow transfer and Python workers add to.
The greedy actions of both paths must agree (`greedy_agreement`, the share of users).

Usage: `uv run python benchmarks/action_batch.py --users 1000000`
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_common import emit, peak_rss_mib, quiet_tensorflow, ratio, spark_session, timed

from rl_bakery_dagster.application import ActionSpace, TimestepSchema
from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY
from rl_bakery_dagster.trajectory_format import PARTITION_COLUMN

DAY = "2024-01-01"
FEATURES = tuple(f"x{i}" for i in range(8))
ACTIONS = 8
LAYERS = [100, 100]
EPSILON = 0.05
ROWS_PER_FILE = 250_000
TARGET_USERS_PER_SECOND = 100_000
RUNS = ("parquet_cold", "noop", "parquet", "no_policy_noop")
SCHEMA = TimestepSchema(
    env_id_columns=("user_id",),
    timestep_column="ts",
    observation_columns=FEATURES,
    action_prob_column="action_prob",
    single_step=True,
)


def export_policy(folder: Path) -> str:
    """A fresh NeuralEpsilonGreedy agent (inference cost does not depend on training), exported."""
    from rl_bakery_dagster.resources.agents import TFAgentsResource
    from rl_bakery_dagster.training.checkpoints import save_agent

    settings = TFAgentsResource(
        algorithm="neural_epsilon_greedy", fc_layer_params=LAYERS, epsilon_greedy=EPSILON
    )
    agent = settings.build(
        SCHEMA.observation_spec(), ActionSpace("discrete", num_actions=ACTIONS).tensor_spec(), 1
    )
    save_agent(agent, str(folder), {"day": DAY, "total_train_steps": 0})
    return str(folder / GREEDY_POLICY)


def write_population(folder: Path, users: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for index, start in enumerate(range(0, users, ROWS_PER_FILE)):
        rows = min(ROWS_PER_FILE, users - start)
        columns: dict[str, Any] = {"user_id": np.arange(start, start + rows, dtype=np.int64)}
        columns |= {name: rng.normal(size=rows) for name in FEATURES}
        pq.write_table(pa.table(columns), folder / f"part-{index:05d}.parquet")


def parquet(frame: Any, path: Path) -> None:
    """As the Parquet IO manager writes an asset partition (its staging folder, `partitionBy("dt")`)."""
    frame.write.partitionBy(PARTITION_COLUMN).parquet(str(path))


def in_process_rate(policy_uri: str, observations: np.ndarray, batch: int) -> tuple[float, np.ndarray]:
    """Seconds of plain batched `policy.action` over `observations` (model load excluded), and actions."""
    import tensorflow as tf

    from rl_bakery_dagster.transforms.scoring import first_time_steps

    policy = tf.saved_model.load(policy_uri)

    def run(rows: np.ndarray) -> np.ndarray:
        actions = []
        for start in range(0, len(rows), batch):
            actions.append(policy.action(first_time_steps(rows[start : start + batch]), ()).action.numpy())
        return np.concatenate(actions)

    run(observations[: 2 * batch])  # traces the concrete function for full and partial batches
    run(observations[: batch + 1])
    started = time.perf_counter()
    actions = run(observations)
    return time.perf_counter() - started, actions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of each variant (medians reported)")
    parser.add_argument("--partitions", type=int, default=0, help="repartition the population (0: as read)")
    parser.add_argument(
        "--arrow-batch", type=int, default=0, help="spark.sql.execution.arrow.maxRecordsPerBatch (0: Spark's)"
    )
    args = parser.parse_args()
    quiet_tensorflow()

    from rl_bakery_dagster.transforms import scoring

    scratch = Path(tempfile.mkdtemp(prefix="bench_action_batch_"))
    seconds: dict[str, float] = {}
    try:
        with timed(seconds, "setup_export_policy"):
            policy_uri = export_policy(scratch / "checkpoint")
        with timed(seconds, "setup_write_population"):
            write_population(scratch / "population", args.users)
        extra = (
            {"spark.sql.execution.arrow.maxRecordsPerBatch": str(args.arrow_batch)}
            if args.arrow_batch
            else {}
        )
        with timed(seconds, "setup_spark_session"):
            spark = spark_session(scratch / "spark", extra=extra)
        settings = {
            "master": "local[2]",
            "fc_layer_params": LAYERS,
            "observation_columns": len(FEATURES),
            "actions": ACTIONS,
            "epsilon": EPSILON,
            "inference_batch": scoring.INFERENCE_BATCH,
            "arrow_max_records_per_batch": spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"),
            "population_files": -(-args.users // ROWS_PER_FILE),
        }
        population = spark.read.parquet(str(scratch / "population"))
        if args.partitions:
            population = population.repartition(args.partitions)
        settings["scoring_partitions"] = population.rdd.getNumPartitions()
        deployment = scoring.Deployment(policy_uri, "bench@" + DAY, EPSILON, seed=0)
        space = ActionSpace("discrete", num_actions=ACTIONS)

        def scored(policy: bool = True) -> Any:
            chosen = deployment if policy else dataclasses.replace(deployment, policy_uri=None)
            return scoring.score_population(population, SCHEMA, space, chosen, DAY)

        runs: dict[str, list[float]] = {name: [] for name in RUNS}

        def run(name: str, write: Callable[[], None]) -> None:
            started = time.perf_counter()
            write()
            runs[name].append(time.perf_counter() - started)

        run("parquet_cold", lambda: parquet(scored(), scratch / "batch_cold"))
        for repeat in range(args.repeats):
            run("noop", lambda: scored().write.format("noop").mode("overwrite").save())
            run("parquet", lambda r=repeat: parquet(scored(), scratch / f"batch_{r}"))
            run("no_policy_noop", lambda: scored(policy=False).write.format("noop").mode("overwrite").save())

        table = pq.read_table(scratch / "population", columns=["user_id", *FEATURES])
        order = np.argsort(table.column("user_id").to_numpy())
        observations = np.stack(
            [table.column(name).to_numpy().astype(np.float32)[order] for name in FEATURES], axis=1
        )
        in_process_seconds, in_process_actions = in_process_rate(
            policy_uri, observations, scoring.INFERENCE_BATCH
        )
        batch = pq.read_table(scratch / "batch_0", columns=["user_id", "greedy_action", "action_prob"])
        batch_order = np.argsort(batch.column("user_id").to_numpy())
        greedy = batch.column("greedy_action").to_numpy()[batch_order]
        agreement = float((greedy == in_process_actions).mean()) if len(greedy) == args.users else 0.0
        spark.stop()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    medians = {name: statistics.median(values) for name, values in runs.items()}
    rates = {name: round(args.users / value) for name, value in medians.items()}
    headline = rates["parquet"]
    in_process = round(args.users / in_process_seconds)
    print(f"users: {args.users:,}  settings: {settings}")
    for name, value in medians.items():
        print(f"  spark {name:<15} {value:7.2f} s  {rates[name]:>10,} users/s  (runs: {runs[name]})")
    print(f"  in-process TF         {in_process_seconds:7.2f} s  {in_process:>10,} users/s")
    verdict = "met" if headline >= TARGET_USERS_PER_SECOND else "MISSED"
    print(f"  greedy actions agree with in-process TF: {agreement:.4%}")
    print(f"  target {TARGET_USERS_PER_SECOND:,} users/s (warm Parquet write, median): {verdict}")
    emit(
        {
            "benchmark": "action_batch",
            "users": args.users,
            "seconds": round(medians["parquet"], 3),
            "users_per_second": headline,
            "in_process_users_per_second": in_process,
            "ratio": ratio(headline, in_process),
            "target_users_per_second": TARGET_USERS_PER_SECOND,
            "target_met": headline >= TARGET_USERS_PER_SECOND,
            "greedy_agreement": agreement,
            "runs_seconds": {name: [round(v, 3) for v in values] for name, values in runs.items()},
            "median_seconds": {name: round(value, 3) for name, value in medians.items()},
            "runs_users_per_second": rates,
            "in_process_seconds": round(in_process_seconds, 3),
            "setup_seconds": {name: round(value, 2) for name, value in seconds.items()},
            "driver_peak_rss_mib": peak_rss_mib(),
            "settings": settings,
        }
    )


if __name__ == "__main__":
    main()

"""Timesteps → n-step transitions: our Spark window job against the naive driver loop and a single-node floor.

The three implementations read the same synthetic day of timesteps (Parquet, in the timestep
contract: 8 float observations, 10 timesteps per environment, so 10^7 rows are 10^6 environments)
and build the same transitions:

- `spark`: `rl_bakery_dagster.transforms.transitions.build_transitions` on a local[2] SparkSession
  with the package's own Spark settings, written as Parquet the way the `trajectories` asset is.
  `spark_proposed_setting` is the same job with `spark.sql.maxConcurrentOutputFileWriters=4`, the
  setting proposed for the package (the two alternate in the same session).
- `naive_*`: what RL Bakery did — `orderBy(env, ts).collect()` to the driver, then a Python loop per
  row that keeps the last n+1 timesteps of the current episode. `naive_rl_bakery` copies each
  window with `copy.deepcopy` as the original `TrajectoryStructure.get_trajectory` did;
  `naive_lean` is the same loop with plain list copies (the stronger baseline: our headline ratio
  is against it). Both stop at Python lists in the driver (RL Bakery's end product, fed straight
  into a replay buffer), so they are spared the Parquet write the other two pay for.
- `polars`: the same transform as one columnar single-node job (sort, shift, filter, write with
  Polars on both cores): the practical floor for one machine.

Once per size the Spark job is also split (`phases_seconds`): reading, shuffling and sorting by
environment alone (`spark_breakdown_read_shuffle_sort_noop`), and the whole transform without
the write (`spark_breakdown_transform_noop`, Spark's `noop` sink).

Usage: `uv run python benchmarks/trajectories.py --rows 1000000`
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bench_common import emit, peak_rss_mib, ratio, spark_session, timed

from rl_bakery_dagster.application import FIRST, LAST, MID, TimestepSchema
from rl_bakery_dagster.transforms.transitions import build_transitions

DAY = "2024-01-01"
OBSERVATIONS = tuple(f"obs_{i}" for i in range(8))
SCHEMA = TimestepSchema(env_id_columns=("user_id",), timestep_column="ts", observation_columns=OBSERVATIONS)
STEPS_PER_ENV = 10
EPISODE_END_PROBABILITY = 0.1
TRUNCATED_SHARE = 0.1
ROWS_PER_FILE = 1_000_000
NAIVE_MAX_ROWS = 10_000_000
NAIVE_MIB_PER_ROW = 0.0016
"""Driver RSS per collected row plus one variant's output, measured at 10^6 rows (1.9 GiB peak)."""
MEMORY_MARGIN_MIB = 8192
"""The naive run's Spark driver JVM (4 GiB heap) and room for whatever else runs on the machine."""
NAIVE_TIMEOUT_SECONDS = 1800
NAIVE_SPARK_SETTINGS = {"spark.driver.maxResultSize": "0"}
"""The driver must accept the whole day (RL Bakery's deployments raised this cap the same way)."""
TARGET_SPEEDUP_VS_NAIVE = 20.0
TARGET_WITHIN_FLOOR = 3.0
CONCURRENT_WRITERS = "spark.sql.maxConcurrentOutputFileWriters"
DEFAULT_WRITERS = "0"
PROPOSED_WRITERS = "4"
"""With concurrent writers, a `partitionBy(dt)` write no longer sorts every row by `dt` first (a
sort that spills at 10^7 rows); proposed for `LOCAL_DEFAULTS` in `resources/spark.py`."""


def synthesize(rows: int, folder: Path, seed: int = 0) -> int:
    """Writes `rows` timesteps (time-major, as a product logs them) under `folder/dt=DAY/`; returns envs.

    Episodes end with probability 0.1 per step (a tenth of them truncated, discount 1), the step
    after a LAST is a FIRST, and every environment starts with a FIRST.
    """
    if rows % STEPS_PER_ENV:
        raise ValueError(f"--rows must be a multiple of {STEPS_PER_ENV}")
    envs = rows // STEPS_PER_ENV
    rng = np.random.default_rng(seed)
    day_folder = folder / f"dt={DAY}"
    day_folder.mkdir(parents=True)
    previous_last = np.ones(envs, dtype=bool)
    user_id = np.arange(envs, dtype=np.int64) * 7 + 1_000_003
    steps_per_file = max(1, ROWS_PER_FILE // envs)
    pending: list[pa.Table] = []
    for t in range(STEPS_PER_ENV):
        first = previous_last
        last = ~first & (rng.random(envs) < EPISODE_END_PROBABILITY)
        step_type = np.where(first, FIRST, np.where(last, LAST, MID)).astype(np.int32)
        truncated = last & (rng.random(envs) < TRUNCATED_SHARE)
        columns: dict[str, np.ndarray] = {
            "user_id": user_id,
            "ts": np.full(envs, 1_704_067_200 + 60 * t, dtype=np.int64),
            "step_type": step_type,
        }
        observation = rng.standard_normal((envs, len(OBSERVATIONS)), dtype=np.float32)
        for index, name in enumerate(OBSERVATIONS):
            columns[name] = observation[:, index]
        columns["action"] = rng.integers(0, 4, envs, dtype=np.int64)
        columns["reward"] = np.where(first, 0.0, rng.standard_normal(envs)).astype(np.float32)
        columns["discount"] = np.where(last & ~truncated, 0.0, 1.0).astype(np.float32)
        pending.append(pa.table(columns))
        previous_last = last
        if len(pending) == steps_per_file or t == STEPS_PER_ENV - 1:
            pq.write_table(pa.concat_tables(pending), day_folder / f"part-{t:05d}.parquet")
            pending = []
    return envs


# --- the naive approach: collect to the driver, sort, Python loop per row (RL Bakery) -------------


class _Window:
    """The last n+1 timesteps of one episode, as RL Bakery's `TrajectoryStructure` kept them."""

    def __init__(self, n_step: int) -> None:
        self.n_step = n_step
        self.step_type: list[int] = []
        self.observation: list[list[float]] = []
        self.action: list[int] = []
        self.next_step_type: list[int] = []
        self.reward: list[float] = []
        self.discount: list[float] = []

    def add(self, row: Any) -> None:
        if self.observation:
            self.reward.append(row["reward"])
            self.next_step_type.append(row["step_type"])
            self.discount.append(row["discount"])
        self.step_type.append(row["step_type"])
        self.observation.append([row[name] for name in OBSERVATIONS])
        self.action.append(row["action"])
        if len(self.observation) > self.n_step + 1:
            self.reward = self.reward[1:]
            self.next_step_type = self.next_step_type[1:]
            self.discount = self.discount[1:]
            self.step_type = self.step_type[1:]
            self.observation = self.observation[1:]
            self.action = self.action[1:]

    def complete(self) -> bool:
        return len(self.observation) == self.n_step + 1

    def terminated(self) -> bool:
        return bool(self.step_type) and self.step_type[-1] == LAST

    def export(self) -> dict[str, list]:
        return {
            "step_type": copy.deepcopy(self.step_type),
            "observation": copy.deepcopy(self.observation),
            "action": copy.deepcopy(self.action),
            "next_step_type": copy.deepcopy(self.next_step_type),
            "reward": copy.deepcopy(self.reward),
            "discount": copy.deepcopy(self.discount),
            "user_id": self.user_id,
            "ts": self.ts,
        }


def naive_rl_bakery(rows: Sequence[Any], n_step: int) -> dict[str, list]:
    """RL Bakery's loop: a new window when the env changes or the episode ended, a deep copy per window."""
    windows = []
    current: _Window | None = None
    current_env = None
    for row in rows:
        env = [row[name] for name in SCHEMA.env_id_columns]
        if current is None or env != current_env or current.terminated():
            current, current_env = _Window(n_step), env
        current.add(row)
        if current.complete():
            current.user_id, current.ts = row["user_id"], row["ts"]  # type: ignore[attr-defined]
            windows.append(current.export())
    return {key: [w[key] for w in windows] for key in windows[0]} if windows else {}


def naive_lean(rows: Sequence[Any], n_step: int) -> dict[str, list]:
    """The same loop without per-window deep copies: positional access, flat lists out."""
    fields = rows[0].__fields__ if rows else []
    env_at, ts_at, st_at = fields.index("user_id"), fields.index("ts"), fields.index("step_type")
    obs_at = [fields.index(name) for name in OBSERVATIONS]
    action_at, reward_at, discount_at = (
        fields.index("action"),
        fields.index("reward"),
        fields.index("discount"),
    )
    out: dict[str, list] = {
        k: []
        for k in (
            "user_id",
            "ts",
            "step_type",
            "observation",
            "action",
            "next_step_type",
            "reward",
            "discount",
        )
    }
    window: list[Any] = []
    previous_env = None
    for row in rows:
        env = row[env_at]
        if env != previous_env or (window and window[-1][st_at] == LAST):
            window, previous_env = [], env
        window.append(row)
        if len(window) > n_step + 1:
            del window[0]
        if len(window) == n_step + 1:
            out["user_id"].append(env)
            out["ts"].append(row[ts_at])
            out["step_type"].append([r[st_at] for r in window])
            out["observation"].append([r[i] for r in window for i in obs_at])
            out["action"].append([r[action_at] for r in window])
            out["next_step_type"].append([r[st_at] for r in window[1:]])
            out["reward"].append([r[reward_at] for r in window[1:]])
            out["discount"].append([r[discount_at] for r in window[1:]])
    return out


def naive_checksum(result: dict[str, list]) -> dict[str, int]:
    if not result:
        return {"transitions": 0, "ts_sum": 0, "action_sum": 0, "step_type_sum": 0}
    return {
        "transitions": len(result["ts"]),
        "ts_sum": int(sum(result["ts"])),
        "action_sum": int(sum(sum(a) for a in result["action"])),
        "step_type_sum": int(sum(sum(a) for a in result["step_type"])),
    }


# --- the single-node floor -------------------------------------------------------------------------


def polars_transitions(source: Path, target: Path, n_step: int) -> None:
    """The same windows as one Polars job: sort by (env, ts), shift, keep windows inside one episode."""
    import polars as pl

    env = SCHEMA.env_id_columns[0]

    def at(column: str, item: int) -> pl.Expr:
        lag = n_step - item
        return pl.col(column) if lag == 0 else pl.col(column).shift(lag)

    items = range(n_step + 1)
    within = pl.all_horizontal(
        [pl.col(env).shift(lag) == pl.col(env) for lag in range(1, n_step + 1)]
        + [at("step_type", i) != LAST for i in items[:-1]]
        + [at("step_type", i) != FIRST for i in items[1:]]
    )

    def array(expressions: list[pl.Expr]) -> pl.Expr:
        """Fixed-size arrays, stored as lists like Spark's arrays (`concat_list` is ~8x slower)."""
        return pl.concat_arr(expressions).arr.to_list()

    frame = (
        pl.scan_parquet(str(source / f"dt={DAY}" / "*.parquet"))
        .with_columns(pl.lit(DAY).alias("dt"))
        .sort([env, SCHEMA.timestep_column])
        .select(
            env,
            SCHEMA.timestep_column,
            "dt",
            within.alias("_within"),
            array([at("step_type", i) for i in items]).alias("step_type"),
            array([at(c, i) for i in items for c in OBSERVATIONS]).alias("observation"),
            array([at("action", i) for i in items]).alias("action"),
            array([at("step_type", i) for i in items[1:]]).alias("next_step_type"),
            array([at("reward", i) for i in items[1:]]).alias("reward"),
            array([at("discount", i) for i in items[1:]]).alias("discount"),
        )
        .filter(pl.col("_within") & (pl.col("dt") == DAY))
        .drop("_within")
    )
    target.mkdir(parents=True)
    frame.collect().write_parquet(target / "part-0.parquet", compression="snappy")


def parquet_checksum(folder: Path) -> dict[str, int]:
    import polars as pl

    frame = pl.scan_parquet(str(folder / "**" / "*.parquet")).select(
        pl.len().alias("transitions"),
        pl.col("ts").sum().alias("ts_sum"),
        pl.col("action").list.sum().sum().alias("action_sum"),
        pl.col("step_type").list.sum().sum().alias("step_type_sum"),
    )
    row = frame.collect().row(0, named=True)
    return {k: int(v) for k, v in row.items()}


# --- our Spark job -----------------------------------------------------------------------------------


def spark_timesteps(spark: Any, source: Path) -> Any:
    from pyspark.sql import functions as F

    frame = spark.read.option("basePath", str(source)).parquet(str(source / f"dt={DAY}"))
    return frame.withColumn("dt", F.col("dt").cast("string"))


def spark_transitions(spark: Any, source: Path, target: Path, n_step: int) -> None:
    """The `trajectories` asset's work: `build_transitions`, then Parquet partitioned by day."""
    frame = build_transitions(spark_timesteps(spark, source), SCHEMA, n_step, [DAY])
    frame.write.partitionBy("dt").parquet(str(target))


def collect_sorted(spark: Any, source: Path) -> list[Any]:
    return spark_timesteps(spark, source).orderBy(*SCHEMA.env_id_columns, SCHEMA.timestep_column).collect()


def available_mib() -> float:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def repeat(runs: int, work: Callable[[int], None]) -> list[float]:
    seconds = []
    for run in range(runs):
        started = time.perf_counter()
        work(run)
        seconds.append(round(time.perf_counter() - started, 3))
    return seconds


def run_naive_worker(source: Path, scratch: Path, n_step: int, variants: list[str]) -> dict[str, Any]:
    """The naive variants in a fresh process: its own driver (no result-size cap), its own peak RSS."""
    command = [sys.executable, __file__, "--naive-worker", str(source), "--n-step", str(n_step)]
    command += ["--naive", ",".join(variants), "--workdir", str(scratch)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=NAIVE_TIMEOUT_SECONDS)
    if done.returncode != 0:
        raise RuntimeError(f"the naive worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def naive_worker(source: Path, scratch: Path, n_step: int, variants: list[str]) -> None:
    """`orderBy(env, ts).collect()` then the Python loops; prints their timings as one JSON line."""
    spark = spark_session(scratch / "naive_spark_home", extra=NAIVE_SPARK_SETTINGS)
    warmup = scratch / "naive_warmup"
    synthesize(10_000, warmup, seed=1)
    collect_sorted(spark, warmup)
    before = rss_mib()
    started = time.perf_counter()
    rows = collect_sorted(spark, source)
    collect_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"driver_memory_for_collected_rows_mib": round(rss_mib() - before, 1)}
    loops = {"lean": naive_lean, "rl_bakery": naive_rl_bakery}
    for variant in variants:
        started = time.perf_counter()
        built = loops[variant](rows, n_step)
        loop_seconds = time.perf_counter() - started
        result[f"naive_{variant}"] = {
            "seconds": round(collect_seconds + loop_seconds, 3),
            "sort_and_collect_seconds": round(collect_seconds, 3),
            "python_loop_seconds": round(loop_seconds, 3),
            "checksum": naive_checksum(built),
        }
        del built
    result["peak_rss_mib"] = peak_rss_mib()
    result["spark_settings"] = NAIVE_SPARK_SETTINGS
    spark.stop()
    print(json.dumps(result), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="timesteps (a multiple of 10)")
    parser.add_argument("--n-step", type=int, default=1)
    parser.add_argument(
        "--repeats", type=int, default=0, help="timed runs per engine (0: 3 up to 10^6 rows, else 2)"
    )
    parser.add_argument(
        "--naive-max-rows", type=int, default=NAIVE_MAX_ROWS, help="skip the naive runs above this size"
    )
    parser.add_argument(
        "--naive", default="lean,rl_bakery", help="naive variants to run: lean, rl_bakery (comma-separated)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--naive-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker:
        naive_worker(args.naive_worker, args.workdir, args.n_step, args.naive.split(","))
        return
    repeats = args.repeats or (3 if args.rows <= 1_000_000 else 2)

    scratch = Path(tempfile.mkdtemp(prefix="bench_trajectories_", dir=args.workdir))
    phases: dict[str, float] = {}
    skipped: dict[str, str] = {}
    try:
        source = scratch / "timesteps"
        with timed(phases, "synthesize"):
            envs = synthesize(args.rows, source)
        input_mib = sum(f.stat().st_size for f in source.rglob("*.parquet")) / 2**20

        # the floor first: Polars, both cores, no JVM
        polars_seconds = repeat(
            repeats, lambda r: polars_transitions(source, scratch / f"polars_{r}", args.n_step)
        )
        polars_check = parquet_checksum(scratch / "polars_0")

        with timed(phases, "spark_session_start"):
            spark = spark_session(scratch / "spark_home")
        warmup = scratch / "warmup"
        warmup_rows = max(10_000, min(args.rows // 10, 1_000_000))  # JIT-compiles the hot paths
        synthesize(warmup_rows, warmup, seed=1)
        with timed(phases, f"spark_warmup_{warmup_rows}_rows"):
            spark_transitions(spark, warmup, scratch / "warmup_out", args.n_step)
            shutil.rmtree(scratch / "warmup_out")
        spark_seconds: list[float] = []
        proposed_seconds: list[float] = []
        for r in range(repeats):  # alternating, so that neither setting gets all the warm runs
            for writers, into, label in (
                (DEFAULT_WRITERS, spark_seconds, "default"),
                (PROPOSED_WRITERS, proposed_seconds, "proposed"),
            ):
                spark.conf.set(CONCURRENT_WRITERS, writers)
                started = time.perf_counter()
                spark_transitions(spark, source, scratch / f"spark_{label}_{r}", args.n_step)
                into.append(round(time.perf_counter() - started, 3))
        spark.conf.set(CONCURRENT_WRITERS, DEFAULT_WRITERS)
        with timed(phases, "spark_breakdown_read_shuffle_sort_noop"):
            spark_timesteps(spark, source).repartition(*SCHEMA.env_id_columns).sortWithinPartitions(
                *SCHEMA.env_id_columns, SCHEMA.timestep_column
            ).write.format("noop").mode("overwrite").save()
        with timed(phases, "spark_breakdown_transform_noop"):
            frame = build_transitions(spark_timesteps(spark, source), SCHEMA, args.n_step, [DAY])
            frame.write.format("noop").mode("overwrite").save()
        spark_check = parquet_checksum(scratch / "spark_default_0")
        proposed_check = parquet_checksum(scratch / "spark_proposed_0")
        output_mib = sum(f.stat().st_size for f in (scratch / "spark_default_0").rglob("*.parquet")) / 2**20
        for r in range(repeats):
            for folder in (f"polars_{r}", f"spark_default_{r}", f"spark_proposed_{r}"):
                shutil.rmtree(scratch / folder, ignore_errors=True)

        spark.stop()

        naive: dict[str, Any] = {}
        variants = [v for v in ("lean", "rl_bakery") if v in args.naive.split(",")]
        needed_mib = args.rows * NAIVE_MIB_PER_ROW + MEMORY_MARGIN_MIB
        if args.rows > args.naive_max_rows or not variants:
            skipped["naive"] = f"not run: --naive-max-rows {args.naive_max_rows:,}, --naive {args.naive!r}"
        elif available_mib() < needed_mib:
            skipped["naive"] = (
                f"not run: collecting {args.rows:,} rows to the driver needs about {needed_mib:,.0f} MiB "
                f"with margin and only {available_mib():,.0f} MiB are available"
            )
        else:
            naive = run_naive_worker(source, scratch, args.n_step, variants)

        spark_median = round(statistics.median(spark_seconds), 3)
        polars_median = round(statistics.median(polars_seconds), 3)
        proposed_median = round(statistics.median(proposed_seconds), 3)
        checks = [spark_check, proposed_check, polars_check] + [
            naive[k]["checksum"] for k in ("naive_lean", "naive_rl_bakery") if k in naive
        ]
        naive_lean_seconds = naive.get("naive_lean", {}).get("seconds")
        naive_bakery_seconds = naive.get("naive_rl_bakery", {}).get("seconds")
        ratios = {
            "spark_speedup_vs_naive_lean": ratio(naive_lean_seconds, spark_median, 1),
            "spark_speedup_vs_naive_rl_bakery": ratio(naive_bakery_seconds, spark_median, 1),
            "spark_over_polars_floor": ratio(spark_median, polars_median),
            "spark_proposed_over_polars_floor": ratio(proposed_median, polars_median),
            "spark_proposed_speedup_vs_naive_lean": ratio(naive_lean_seconds, proposed_median, 1),
            "polars_floor_speedup_vs_naive_lean": ratio(naive_lean_seconds, polars_median, 1),
        }
        if "naive_rl_bakery" not in naive and "naive" not in skipped:
            skipped["naive_rl_bakery"] = f"not run: --naive {args.naive!r}"
        targets: dict[str, Any] = {}
        if args.rows == 1_000_000:
            targets["speedup_vs_naive_at_1e6_at_least_20x"] = (
                None
                if ratios["spark_speedup_vs_naive_lean"] is None
                else ratios["spark_speedup_vs_naive_lean"] >= TARGET_SPEEDUP_VS_NAIVE
            )
        if args.rows == 10_000_000:
            targets["within_3x_of_floor_at_1e7"] = ratios["spark_over_polars_floor"] <= TARGET_WITHIN_FLOOR  # type: ignore[operator]
            targets["within_3x_of_floor_at_1e7_with_proposed_setting"] = (
                ratios["spark_proposed_over_polars_floor"] <= TARGET_WITHIN_FLOOR  # type: ignore[operator]
            )
        emit(
            {
                "benchmark": "trajectories",
                "rows": args.rows,
                "environments": envs,
                "n_step": args.n_step,
                "observation_size": len(OBSERVATIONS),
                "transitions": spark_check["transitions"],
                "input_parquet_mib": round(input_mib, 1),
                "output_parquet_mib": round(output_mib, 1),
                "repeats": repeats,
                "seconds": {
                    "spark": spark_median,
                    "spark_proposed_setting": proposed_median,
                    "polars_floor": polars_median,
                    "naive_lean": naive_lean_seconds,
                    "naive_rl_bakery": naive_bakery_seconds,
                },
                "rows_per_second": {
                    "spark": round(args.rows / spark_median),
                    "polars_floor": round(args.rows / polars_median),
                    "naive_lean": round(args.rows / naive_lean_seconds) if naive_lean_seconds else None,
                },
                "runs": {
                    "spark": spark_seconds,
                    "spark_proposed_setting": proposed_seconds,
                    "polars_floor": polars_seconds,
                },
                "proposed_setting": {CONCURRENT_WRITERS: PROPOSED_WRITERS},
                "naive": naive,
                "phases_seconds": {k: round(v, 3) for k, v in phases.items()},
                "ratios": ratios,
                "targets_met": targets,
                "outputs_agree": all(c == checks[0] for c in checks),
                "checksums": checks,
                "skipped": skipped,
            }
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

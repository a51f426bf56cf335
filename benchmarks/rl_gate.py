"""The RL deployment gate measured against the truth: CartPole DQN through the daily job, and bad candidates.

Each seeded run is the CartPole DQN preset of `benchmarks/learning.py` with `lag_days = 1`, so every
day's candidate `agent_checkpoint[d]` is judged by `policy_evaluation[d]` on day d's logs, which it
never trained on. Day 1 is played uniformly at random; every later day by the policy the gate chose
the day before (`deployed_checkpoint`, at least `deployed_epsilon`), epsilon-greedy with exact
propensities, as the demo and a product do. Day 1's candidate is an untrained network.

After the last day, three deliberately bad candidates are offered as that day's candidate and judged on
its logs (`evaluate_rl_day`, the asset's own function, on the stored partitions):

* ``untrained``: a fresh network (day 1's checkpoint, before any training);
* ``early``: day 2's checkpoint (trained on one day of random play) offered as today's;
* ``reward_flipped``: the same pipeline trained on the same logs with every reward negated.

The truth is the simulator: each candidate played as it would be deployed (epsilon-greedy with its own
epsilon) and the policy that logged the day (the deployed one, as it played), ``--truth-episodes``
episodes each on seeds apart from the logged days. A candidate is *worse* when its true return is at
least 20 % below the logging policy's, *close or better* when it is within 5 % of it or above. For the
gate and for every estimator's own verdict (``outcome_by_estimator``): the share of worse candidates
refused (target >= 90 %) and of close-or-better candidates refused (target <= 10 %), and each estimate's
Spearman rank correlation with the candidates' true returns.

Usage (results: benchmarks/results/rl_gate.json, benchmarks/LEARNING.md):
  uv run python benchmarks/rl_gate.py --seeds 10 > benchmarks/results/rl_gate.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_common import emit, machine, quiet_tensorflow, spark_session

from rl_bakery_dagster.examples.presets import PRESETS

ENV = "CartPole-v0"
TRUTH_SEED = 70_000_000
"""Truth episodes start at this gym seed (+ 10,000 per run, + 100 per candidate): apart from logged days."""
ESTIMATORS = ("fqe", "wdr", "pdwis", "pdis")
WORSE, CLOSE = 0.8, 0.95


def build_app(home: Path, seed: int, name: str = "cartpole", start_date: str | None = None) -> Any:
    from rl_bakery_dagster.application import TrajectorySettings
    from rl_bakery_dagster.examples.cartpole.application import cartpole_application
    from rl_bakery_dagster.resources.agents import TFAgentsResource

    preset = PRESETS["cartpole"]
    agent = TFAgentsResource(**{**preset.agent, "algorithm": "dqn", "seed": seed})
    app = cartpole_application(agent=agent, warehouse=str(home / "warehouse" / name))
    if start_date is not None:
        app = dataclasses.replace(app, start_date=start_date)
    trajectory = TrajectorySettings(**{**preset.trajectory, "lag_days": 1})
    # the logs name each row's policy, as the cartpole_gated example's do, so canaries can be judged
    schema = dataclasses.replace(app.schema, policy_version_column="policy_version")
    return dataclasses.replace(app, name=name, schema=schema, trajectory=trajectory, evaluator=None)


def play_day(
    product: Any,
    app: Any,
    deployed: tuple[str | None, str | None, float | None],
    canary: dict[str, Any] | None,
    seed: int,
) -> pd.DataFrame:
    """One day of logs as the gated example plays it (`gym_days.gated_play`): the deployed policy (day,
    uri, epsilon) to every player but the canary's; each row names its policy."""
    from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
    from rl_bakery_dagster.examples.gym_days import gated_play

    preset = PRESETS["cartpole"]
    play = gated_play(app, deployed, canary, preset.envs, seed)
    logs = product.log(play.policy, preset.steps_per_env, OBSERVATION_COLUMNS)
    play.name_rows(logs)
    return logs


def true_return(uri: str | None, min_epsilon: float | None, seed: int, episodes: int) -> float:
    from rl_bakery_dagster.examples.gym_simulator import deployed_policy, evaluate

    return evaluate(deployed_policy(uri, 2, seed, min_epsilon), ENV, episodes, seed=seed).mean_return


def run_days(
    app: Any, home: Path, seed: int, days: int, gate: dict[str, Any], flipped_from: Any | None = None
) -> list[dict[str, Any]]:
    """Simulates and materialises `days` days; returns each day's evaluation record and logging policy.

    With `flipped_from` (the real run's warehouse), the days are copied from it with rewards negated
    instead of simulated: the same logs, the opposite objective."""
    import dagster as dg
    import pyarrow.parquet as pq

    from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD
    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym, write_day
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.io_managers import read_json
    from rl_bakery_dagster.resources.storage import StorageRoot

    preset = PRESETS["cartpole"]
    defs = build_definitions(app, home=home)
    job = defs.resolve_job_def(DAILY_JOB)
    (home / "dagster" / app.name).mkdir(parents=True)
    instance = dg.DagsterInstance.local_temp(str(home / "dagster" / app.name))
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)  # type: ignore[union-attr]
    product = BatchedGym(ENV, preset.envs, seed=seed * 100_000)
    records: list[dict[str, Any]] = []
    deployed: tuple[str | None, str | None, float | None] = (None, None, None)  # day, uri, epsilon
    canary: dict[str, Any] | None = None
    for offset in range(days):
        day = shift_day(app.start_date, offset)
        if flipped_from is not None:
            logs = pq.read_table(f"{flipped_from}/dt={day}").to_pandas()
            logs["reward"] = -logs["reward"]
        else:
            logs = play_day(product, app, deployed, canary, seed * 1_000 + offset)
        write_day(logs, app.warehouse.uri, day)
        started = time.perf_counter()
        job.execute_in_process(
            partition_key=day,
            instance=instance,
            run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                "ops": {f"{app.name}__policy_evaluation": {"config": gate}},
            },
            raise_on_error=True,
        )
        evaluation = storage.read_uri([app.name, "policy_evaluation"], day)
        record = read_json(f"{evaluation}/{EVALUATION_RECORD}")
        records.append(
            {
                "day": day,
                "record": record,
                "logged_by": deployed[1:],
                "trajectories": storage.read_uri([app.name, "trajectories"], day),
                "timesteps": storage.read_uri([app.name, "timesteps"], day),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        deployed = (
            record["deployed_checkpoint"],
            record["deployed_checkpoint_uri"],
            record["deployed_epsilon"],
        )
        canary = record.get("canary")
    return records


def canary_day(
    app: Any,
    deployed: tuple[str | None, str | None, float | None],
    candidate_uri: str,
    candidate_day: str,
    config: Any,
    seed: int,
) -> dict[str, Any]:
    """The canary a candidate with not enough evidence gets after the benchmark's last day: one more
    simulated day (the same gym seed for every candidate) with `config.canary_share` of the players on
    the candidate, judged by the product's own `evaluate_canary`."""
    from pyspark.sql import SparkSession

    from rl_bakery_dagster.assets.evaluation import deployment_record, policy_version
    from rl_bakery_dagster.assets.rl_evaluation import evaluate_canary
    from rl_bakery_dagster.examples.gym_simulator import BatchedGym

    preset = PRESETS["cartpole"]
    steps = deployment_record(app, candidate_uri, candidate_day).total_train_steps
    version = policy_version(app.name, f"{candidate_day}-canary", steps)
    canary = {"checkpoint_uri": candidate_uri, "policy_version": version, "share": config.canary_share}
    product = BatchedGym(ENV, preset.envs, seed=seed)
    logs = play_day(product, app, deployed, canary, seed)
    spark = SparkSession.getActiveSession()
    assert spark is not None
    return evaluate_canary(app, spark.createDataFrame(logs), version, config)


def final_outcome(gate: str, canary: dict[str, Any] | None) -> str:
    """What finally happens to a candidate: the gate's outcome, or its canary's when the gate was unsure."""
    from rl_bakery_dagster.evaluation.estimators import NOT_ENOUGH_EVIDENCE

    return canary["outcome"] if gate == NOT_ENOUGH_EVIDENCE and canary is not None else gate


def candidate_row(
    kind: str,
    seed: int,
    day: str,
    record: dict[str, Any],
    truth: float,
    logging_truth: float,
    canary: dict[str, Any] | None = None,
    canary_day_truth: float | None = None,
) -> dict[str, Any]:
    """`canary_day_truth`: the true return of the policy the candidate's canary played beside (the one
    deployed after the candidate's day), which its final outcome compares it with."""
    estimates = record["estimates"]
    row: dict[str, Any] = {
        "seed": seed,
        "day": day,
        "kind": kind,
        "true_return": truth,
        "logging_true_return": logging_truth,
        "relative_to_logging": truth / logging_truth - 1.0,
        "gate": record["outcome"],
        "episodes": record["episodes"],
        "effective_episodes": record["effective_episodes"],
        "discounted_effective_episodes": record.get("discounted_effective_episodes"),
        "logging_observed_return": record["logging_observed_return_per_episode"],
    }
    row["canary"] = canary["outcome"] if canary else None
    row["final"] = final_outcome(record["outcome"], canary)
    decided_against = canary_day_truth if canary and canary_day_truth is not None else logging_truth
    row["final_compared_true_return"] = decided_against
    row["relative_to_final_comparator"] = truth / decided_against - 1.0
    if canary:
        row |= {
            "canary_return": canary["canary_return"],
            "canary_other_return": canary["other_return"],
            "canary_episodes": canary["canary_episodes"],
            "canary_other_episodes": canary["other_episodes"],
            "canary_minus_other_interval": [canary["difference"]["lower"], canary["difference"]["upper"]],
        }
    row["poorly_covered_share"] = record.get("poorly_covered_share")
    row["fqe_final_loss"] = record.get("fqe_final_loss")
    for name, estimate in estimates.items():
        if name in (*ESTIMATORS, "logging", "fqe_logging"):
            row[name] = estimate["value"]
        row[f"{name}_interval"] = [estimate["lower"], estimate["upper"]]
    for name in ESTIMATORS:
        row[f"{name}_outcome"] = record["outcome_by_estimator"].get(name)
    return row


def run_seed(
    seed: int, days: int, gate: dict[str, Any], episodes: int, workdir: Path | None, rows_out: Path | None
) -> list[dict]:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from rl_bakery_dagster.assets.evaluation import deployment_record
    from rl_bakery_dagster.assets.rl_evaluation import SequentialEvaluationConfig, evaluate_rl_day
    from rl_bakery_dagster.evaluation.estimators import NOT_ENOUGH_EVIDENCE

    started = time.perf_counter()
    home = Path(tempfile.mkdtemp(prefix=f"bench_rl_gate_{seed}_", dir=workdir))
    try:
        app = build_app(home, seed)
        records = run_days(app, home, seed, days, gate)
        rows = []
        truth_seed = TRUTH_SEED + 10_000 * seed
        config = SequentialEvaluationConfig(**gate)
        last = records[-1]
        after_last = (
            last["record"]["deployed_checkpoint"],
            last["record"]["deployed_checkpoint_uri"],
            last["record"]["deployed_epsilon"],
        )
        canary_seed = seed * 100_000 + 99_999  # one gym seed for every candidate's canary day

        def judged_canary(index: int, record: dict[str, Any], uri: str) -> dict[str, Any] | None:
            """The canary's verdict: played on the next logged day, or after the last on a simulated one."""
            if record["outcome"] != NOT_ENOUGH_EVIDENCE or config.on_not_enough_evidence != "canary":
                return None
            if index + 1 < len(records):
                return records[index + 1]["record"].get("canary_judged")
            return canary_day(app, after_last, uri, record["day"], config, canary_seed)

        logged_truth = [
            true_return(*day["logged_by"], truth_seed + 100 * index + 50, episodes)
            for index, day in enumerate(records)
        ]
        # the policy deployed after the last day: every canary of the last day plays beside it
        logged_truth.append(true_return(*after_last[1:], truth_seed + 100 * len(records) + 50, episodes))
        for index, day in enumerate(records):
            record = day["record"]
            truth = true_return(record["candidate_checkpoint_uri"], None, truth_seed + 100 * index, episodes)
            canary = judged_canary(index, record, record["candidate_checkpoint_uri"])
            rows.append(
                candidate_row(
                    "daily",
                    seed,
                    day["day"],
                    record,
                    truth,
                    logged_truth[index],
                    canary,
                    logged_truth[index + 1],
                )
            )
        # the bad candidates, judged on the last day's logs against the same logging policy
        logging_truth = rows[-1]["logging_true_return"]
        # two days suffice: the second day's checkpoint trains on the first day's logs, rewards negated
        flipped = build_app(home, seed, name="flipped", start_date=records[-2]["day"])
        cheap = {"gate": False, "estimator": "wdr", "fqe_train_steps": 0, "replicates": 20}
        flipped_records = run_days(flipped, home, seed, 2, cheap, flipped_from=app.warehouse.uri)
        bad = {
            "untrained": records[0]["record"]["candidate_checkpoint_uri"],
            "early": records[1]["record"]["candidate_checkpoint_uri"],
            "reward_flipped": flipped_records[-1]["record"]["candidate_checkpoint_uri"],
        }
        spark = SparkSession.getActiveSession()
        assert spark is not None
        logged = spark.read.parquet(last["timesteps"])
        if last["record"].get("canary_judged"):  # judged against the deployed policy, as the asset does
            tried = last["record"]["canary_judged"]["policy_version"]
            logged = logged.filter(~F.col("policy_version").eqNullSafe(F.lit(tried)))
        for number, (kind, uri) in enumerate(bad.items()):
            epsilon = deployment_record(app, uri, last["day"]).epsilon
            record = evaluate_rl_day(app, logged, last["trajectories"], uri, epsilon, config)
            record["day"] = last["day"]
            truth = true_return(uri, None, truth_seed + 5_000 + 100 * number, episodes)
            canary = judged_canary(len(records), record, uri)
            rows.append(
                candidate_row(kind, seed, last["day"], record, truth, logging_truth, canary, logged_truth[-1])
            )
        if rows_out is not None:
            with rows_out.open("a") as out:
                out.writelines(json.dumps(row) + "\n" for row in rows)
        print(
            f"seed {seed}: {len(rows)} candidates in {time.perf_counter() - started:.0f}s: "
            + json.dumps([(r["kind"], round(r["true_return"], 1), r["gate"]) for r in rows]),
            file=sys.stderr,
            flush=True,
        )
        return rows
    finally:
        shutil.rmtree(home, ignore_errors=True)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties): Pearson's on the ranks."""
    frame = pd.DataFrame({"x": x, "y": y}).dropna()
    if len(frame) < 3:
        return None
    ranks = frame.rank()
    value = float(np.corrcoef(ranks["x"], ranks["y"])[0, 1])
    return round(value, 3) if np.isfinite(value) else None


def registered_rules(frame: pd.DataFrame) -> pd.DataFrame:
    """Two rules written down (LEARNING.md, "Registered before seeds 10-19") before the seeds they are
    judged on were run, computed from each row's recorded intervals with the gate's own defaults and
    decision functions; NaN where a row lacks the inputs.

    * ``wdr_refuses``: the product's `wdr_refusal` (now the default `wdr_refuses_without_floor`) on top
      of the outcome the row's gate gave.
    * ``wdr_discounted_ess``: ``wdr - logging``'s three-way decision with the discount-weighted
      per-decision effective number of episodes in place of the last step's.
    """
    from rl_bakery_dagster.assets.rl_evaluation import SequentialEvaluationConfig, wdr_refusal
    from rl_bakery_dagster.evaluation.estimators import three_way_decision

    defaults = SequentialEvaluationConfig()

    def rules(row: pd.Series) -> pd.Series:
        interval = row.get("wdr_minus_logging_interval")
        if not isinstance(interval, list):
            return pd.Series({"wdr_refuses": np.nan, "wdr_discounted_ess": np.nan})
        low, high = (float(x) for x in interval)
        tolerance = defaults.tolerance + defaults.relative_tolerance * abs(float(row["logging"]))
        difference = {"value": float(row["wdr"]) - float(row["logging"]), "lower": low, "upper": high}
        refusal = wdr_refusal(
            {"outcome": row["gate"]}, {"tolerance": tolerance}, difference, row["effective_episodes"], 0.95
        )
        ess = float(row.get("discounted_effective_episodes") or np.nan)
        return pd.Series(
            {
                "wdr_refuses": refusal["outcome"] if refusal else row["gate"],
                "wdr_discounted_ess": three_way_decision(
                    low, high, tolerance, ess, defaults.min_effective_sample_size
                )
                if np.isfinite(ess)
                else np.nan,
            }
        )

    return frame.apply(rules, axis=1)


def outcome_shares(worse: pd.Series, close: pd.Series) -> dict[str, Any]:
    """What one decision column did to the worse and to the close-or-better candidates."""
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, REFUSED

    def share(column: pd.Series, outcome: str) -> float | None:
        return round(float((column == outcome).mean()), 3) if len(column) else None

    return {
        "refused_of_worse": share(worse, REFUSED),
        "refused_of_close_or_better": share(close, REFUSED),
        # with the RL default (on_not_enough_evidence: keep_last_accepted) only accepted ones deploy
        "deployed_of_worse": share(worse, ACCEPTED),
        "deployed_of_close_or_better": share(close, ACCEPTED),
        "outcomes_of_worse": worse.value_counts().to_dict(),
        "outcomes_of_close_or_better": close.value_counts().to_dict(),
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    frame = pd.DataFrame(rows)
    frame = frame.join(registered_rules(frame))
    worse = frame[frame.relative_to_logging <= WORSE - 1.0]
    close = frame[frame.relative_to_logging >= CLOSE - 1.0]
    summary: dict[str, Any] = {
        "candidates": len(frame),
        "worse_candidates": len(worse),
        "close_or_better_candidates": len(close),
    }
    for name in ("gate", *(f"{e}_outcome" for e in ESTIMATORS)):
        label = name.removesuffix("_outcome")
        summary[label] = outcome_shares(worse[name], close[name])
    if "final" in frame:  # judged against the policy each final decision compared the candidate with
        relative = frame.relative_to_final_comparator
        final_worse, final_close = frame[relative <= WORSE - 1.0], frame[relative >= CLOSE - 1.0]
        summary["final"] = outcome_shares(final_worse.final, final_close.final) | {
            "worse_candidates": len(final_worse),
            "close_or_better_candidates": len(final_close),
        }
        summary["canary"] = outcome_shares(final_worse.canary.dropna(), final_close.canary.dropna()) | {
            "candidates_in_a_canary": int(frame.canary.notna().sum()),
            "worse_in_a_canary": int(final_worse.canary.notna().sum()),
            "close_or_better_in_a_canary": int(final_close.canary.notna().sum()),
        }
    for rule in ("wdr_refuses", "wdr_discounted_ess"):
        judged = frame[rule].notna() if rule in frame else None
        if judged is not None and judged.any():
            summary[f"rule_{rule}"] = outcome_shares(worse[rule][judged], close[rule][judged]) | {
                "candidates_judged": int(judged.sum())
            }
    summary["spearman_with_true_return"] = {
        name: spearman(frame[name], frame.true_return) for name in ESTIMATORS if name in frame
    }
    if "fqe" in frame and "fqe_logging" in frame:
        summary["spearman_of_difference"] = {
            "fqe_minus_fqe_logging": spearman(
                frame.fqe - frame.fqe_logging, frame.true_return - frame.logging_true_return
            ),
            **{
                f"{name}_minus_logging": spearman(
                    frame[name] - frame.logging, frame.true_return - frame.logging_true_return
                )
                for name in ("wdr", "pdwis", "pdis")
            },
        }
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="independent seeded runs")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--truth-episodes", type=int, default=100)
    parser.add_argument("--gate", type=json.loads, default={}, help="policy_evaluation config, as JSON")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--rows-out", type=Path, default=None, help="append each seed's candidates here as JSON lines"
    )
    parser.add_argument(
        "--summarise",
        type=Path,
        default=None,
        help="only summarise the candidates of a --rows-out file (the seeds that finished)",
    )
    args = parser.parse_args(argv)
    if args.summarise is not None:
        rows = [json.loads(line) for line in args.summarise.read_text().splitlines() if line.strip()]
        result = {
            "benchmark": "rl_gate",
            "env": ENV,
            "seeds": sorted({row["seed"] for row in rows}),
            "gate_config": args.gate,
            "summary": summarise(rows),
            "candidates": rows,
            "machine": machine(),
        }
        emit(result)
        return result
    quiet_tensorflow()
    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    started = time.perf_counter()
    spark_home = Path(tempfile.mkdtemp(prefix="bench_rl_gate_spark_", dir=args.workdir))
    spark = spark_session(spark_home)
    rows: list[dict[str, Any]] = []
    try:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += run_seed(seed, args.days, args.gate, args.truth_episodes, args.workdir, args.rows_out)
            import tensorflow as tf

            tf.keras.backend.clear_session()
    finally:
        spark.stop()
        shutil.rmtree(spark_home, ignore_errors=True)
    result = {
        "benchmark": "rl_gate",
        "env": ENV,
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "days": args.days,
        "gate_config": args.gate,
        "truth_episodes": args.truth_episodes,
        "worse_means": f"true return <= {WORSE:.0%} of the logging policy's",
        "close_means": f"true return >= {CLOSE:.0%} of the logging policy's",
        "targets": {"refused_of_worse": ">= 0.9", "refused_of_close_or_better": "<= 0.1"},
        "summary": summarise(rows),
        "candidates": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "command": "python benchmarks/rl_gate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()

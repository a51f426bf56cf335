"""The RL deployment gate through Dagster: a tiny CartPole DQN judged on episodes it never trained on.

One backfill run over two days of uniformly random play (lag 1: agent_checkpoint[d] trains on day
d-1). Day 1's candidate is an untrained network (seed 7: its greedy policy mostly pushes one way,
a sabotage) and must be refused, leaving uniform random play deployed. Day 2's learned from day 1
and is truly better: the gate's default estimator, fitted Q evaluation of both policies on the day's
transitions, must accept it. Weighted doubly robust, judged on the same logs, shows why FQE is the
default: its importance weights collapse (about two effective episodes), so it could only say "not
enough evidence". The simulator is the oracle for both candidates. The logging policy's observed
return is checked against the raw logs.
"""

import dataclasses
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.application import TrajectorySettings
from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD, GATE_CHECK, deployment_record
from rl_bakery_dagster.assets.rl_evaluation import SequentialEvaluationConfig, evaluate_rl_day, wdr_refusal
from rl_bakery_dagster.evaluation.estimators import ACCEPTED, NOT_ENOUGH_EVIDENCE, REFUSED
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import (
    BatchedGym,
    random_policy,
    write_day,
)
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.io_managers import read_json
from rl_bakery_dagster_tests.apps import START, definitions, stored, tiny_cartpole, true_returns

DAYS = [shift_day(START, offset) for offset in range(2)]
TOLERANCE = 0.2


def observed_return_per_episode(frame: pd.DataFrame) -> float:
    """Mean undiscounted return of the episodes that start on the day, from the raw logs (an oracle
    independent of the Spark path): rewards of the non-FIRST rows of each episode on the day. An
    episode whose FIRST step is the day's last row has no observed decision yet and is not counted."""
    frame = frame.sort_values(["user_id", "ts"]).copy()
    frame["episode"] = frame.groupby("user_id").step_type.transform(lambda s: (s == 0).cumsum())
    started = frame[frame.episode >= 1]
    return float(started[started.step_type != 0].groupby(["user_id", "episode"]).reward.sum().mean())


def deployed_by_the_rule(outcomes: dict[str, str]) -> dict[str, str | None]:
    """What each day must deploy: accepted → the candidate; refused or not enough evidence → the last
    accepted (None before any; the RL default keeps it when unsure)."""
    last: str | None = None
    deployed = {}
    for day, outcome in outcomes.items():
        deployed[day] = day if outcome == ACCEPTED else last
        if outcome == ACCEPTED:
            last = day
    return deployed


def test_the_gate_refuses_a_sabotaged_candidate_and_accepts_a_trained_one(spark, home: Path) -> None:
    product = BatchedGym("CartPole-v0", 64, seed=0)
    logs = {}
    for offset, day in enumerate(DAYS):
        logs[day] = product.log(random_policy(product.action_space, offset), 100, OBSERVATION_COLUMNS)
        write_day(logs[day], str(home / "warehouse"), day)
    app = tiny_cartpole(
        home,
        fc_layer_params=[64],
        batch_size=64,
        train_steps_per_day=1500,
        target_update_period=100,
        epsilon_greedy=0.6,  # candidates are judged as deployed: epsilon-greedy with this epsilon
        seed=7,
    )
    app = dataclasses.replace(
        app, trajectory=TrajectorySettings(n_step=1, lookback_days=1, lag_days=1, window_days=1)
    )
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    # random-play episodes last about 20 decisions: 30 backups of FQE reach their horizon
    # wdr_refuses_without_floor (the default) leaves both verdicts alone here: FQE already refuses the
    # sabotage, and wdr's interval on the trained candidate lies above zero
    gate = {"replicates": 100, "relative_tolerance": TOLERANCE, "fqe_train_steps": 3000}
    result = job.execute_in_process(
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
        run_config={"ops": {"cartpole__policy_evaluation": {"config": gate}}},
    )
    assert result.success
    records = {
        day: read_json(str(stored(home, "cartpole", "policy_evaluation", day) / EVALUATION_RECORD))
        for day in DAYS
    }
    summary = {
        d: (
            r["outcome_by_estimator"],
            r["estimates"]["fqe_minus_fqe_logging"],
            r["estimates"]["wdr_minus_logging"],
            r["effective_episodes"],
        )
        for d, r in records.items()
    }
    sabotaged, trained = DAYS
    # the gate's default, fitted Q evaluation, needs no importance weights: it refuses the sabotage and
    # accepts the trained candidate
    assert records[sabotaged]["outcome"] == REFUSED, summary
    assert "confidently worse" in records[sabotaged]["reason"]
    assert "wdr_refuses_without_floor" not in records[sabotaged]["reason"]
    assert records[trained]["outcome"] == ACCEPTED, summary
    # weighted doubly robust agrees on the sabotage; on the trained candidate its weights collapse
    # (measured: +8.4, 95% CI +5.4 to +10.6, on about 2 effective episodes, below the floor of 10)
    assert [records[d]["outcome_by_estimator"]["wdr"] for d in DAYS] == [REFUSED, NOT_ENOUGH_EVIDENCE], (
        summary
    )
    assert records[trained]["estimates"]["wdr_minus_logging"]["lower"] > 0
    outcomes = {day: r["outcome"] for day, r in records.items()}
    assert {day: r["deployed_checkpoint"] for day, r in records.items()} == deployed_by_the_rule(outcomes)
    assert records[sabotaged]["deployed_checkpoint"] is None  # nothing accepted yet: uniform random
    assert records[trained]["deployed_checkpoint"] == trained
    assert records[trained]["deployed_epsilon"] is None  # accepted: deployed with its own exploration

    # the simulator agrees: the refused candidate is truly worse by more than the tolerance, the
    # accepted one truly better than the uniform play that logged the day
    random_return, truth = true_returns(home, DAYS)
    assert truth[sabotaged] < (1 - TOLERANCE) * random_return < random_return < truth[trained], truth

    for day, record in records.items():
        assert record["logging_observed_return_per_episode"] == pytest.approx(
            observed_return_per_episode(logs[day]), rel=1e-9
        )
        for name in ("pdis", "pdwis", "wdr", "logging", "fqe", "fqe_logging"):
            e = record["estimates"][name]
            assert e["lower"] <= e["upper"] and np.isfinite(e["value"])
        assert 0 < record["effective_episodes"] <= record["episodes"]
        assert 0 < record["discounted_effective_episodes"] <= record["episodes"]

    # with a floor no day reaches, FQE and wdr both lack evidence: only wdr_refuses_without_floor can
    # refuse, and it does so for the sabotage (wdr's interval wholly below the tolerance) alone
    strict = {"replicates": 100, "relative_tolerance": TOLERANCE, "fqe_train_steps": 100}
    strict |= {"min_effective_sample_size": 1e6}
    for day, expected in ((sabotaged, REFUSED), (trained, NOT_ENOUGH_EVIDENCE)):
        checkpoint = str(stored(home, "cartpole", "agent_checkpoint", day))
        logged = spark.read.parquet(str(stored(home, "cartpole", "timesteps", day)))
        trajectories = str(stored(home, "cartpole", "trajectories", day))
        epsilon = deployment_record(app, checkpoint, day).epsilon
        outcomes = {
            rule: evaluate_rl_day(
                app,
                logged,
                trajectories,
                checkpoint,
                epsilon,
                SequentialEvaluationConfig(**strict, wdr_refuses_without_floor=rule),
            )
            for rule in (True, False)
        }
        assert outcomes[True]["outcome"] == expected, outcomes[True]["reason"]
        assert outcomes[False]["outcome"] == NOT_ENOUGH_EVIDENCE, outcomes[False]["reason"]
        assert ("wdr_refuses_without_floor" in outcomes[True]["reason"]) == (expected == REFUSED)

    checks = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == GATE_CHECK
    ]
    assert checks and not checks[-1].passed and checks[-1].severity == dg.AssetCheckSeverity.WARN
    assert checks[-1].metadata["refused_days"].value == sabotaged


def test_wdr_refuses_below_the_floor_only_when_its_whole_interval_is_below_the_tolerance() -> None:
    unsure = {"outcome": NOT_ENOUGH_EVIDENCE, "reason": "fqe: poorly covered", "tolerance": 4.0}
    wdr_verdict = {"outcome": NOT_ENOUGH_EVIDENCE, "tolerance": 5.0}

    def difference(lower: float, upper: float) -> dict[str, float]:
        return {"value": (lower + upper) / 2, "lower": lower, "upper": upper}

    refusal = wdr_refusal(unsure, wdr_verdict, difference(-60.0, -35.0), 1.2, 0.95)
    assert refusal is not None and refusal["outcome"] == REFUSED and refusal["tolerance"] == 5.0
    assert "1.2 effective episodes" in refusal["reason"] and "-60 to -35" in refusal["reason"]
    # wdr's own tolerance decides, not the gate estimator's: -4.5 is below -4 but not below -5
    assert wdr_refusal(unsure, wdr_verdict, difference(-20.0, -4.5), 1.2, 0.95) is None
    assert wdr_refusal(unsure, wdr_verdict, difference(-20.0, 3.0), 1.2, 0.95) is None
    assert wdr_refusal(unsure, wdr_verdict, difference(float("nan"), float("nan")), 1.2, 0.95) is None
    assert wdr_refusal(unsure, None, difference(-60.0, -35.0), 1.2, 0.95) is None
    accepted = {**unsure, "outcome": ACCEPTED}
    assert wdr_refusal(accepted, wdr_verdict, difference(-60.0, -35.0), 1.2, 0.95) is not None
    refused = {**unsure, "outcome": REFUSED}
    assert wdr_refusal(refused, wdr_verdict, difference(-60.0, -35.0), 1.2, 0.95) is None

"""A contextual bandit through the whole graph: single-step logs → bandit agent → off-policy
evaluation on unseen logs → a gated action batch.

The synthetic product has 4 actions and 4 context features; a click happens exactly when the
action is the arg-max (or, on a "shifted" day, the arg-min) feature. Logging is uniform random,
so the logging policy's value is 1/4 and a policy that learned the arg-max is worth about
1 - epsilon * 3/4 on an arg-max day and about epsilon / 4 on an arg-min day.
"""

import dataclasses
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.application import (
    ActionSpace,
    Application,
    ParquetWarehouse,
    TimestepSchema,
    TrajectorySettings,
)
from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD, GATE_CHECK, OffPolicyEvaluationConfig
from rl_bakery_dagster.evaluation import ACCEPTED, NOT_ENOUGH_EVIDENCE, REFUSED
from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import read_json
from rl_bakery_dagster_tests.apps import START, definitions, stored

ACTIONS = 4
FEATURES = tuple(f"x{i}" for i in range(ACTIONS))
ROWS = 2000
USERS = 500
EPSILON = 0.1


def log_day(home: Path, day: str, seed: int, shifted: bool = False) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (ROWS, ACTIONS))
    action = rng.integers(0, ACTIONS, ROWS)
    best = x.argmin(axis=1) if shifted else x.argmax(axis=1)
    frame = pd.DataFrame(x, columns=list(FEATURES))
    frame.insert(0, "user_id", rng.integers(0, USERS, ROWS))
    frame.insert(1, "ts", np.arange(ROWS, dtype=np.int64) + seed * ROWS)
    frame["action"] = action
    frame["reward"] = (action == best).astype(np.float64)
    frame["action_prob"] = 1.0 / ACTIONS
    write_day(frame, str(home / "warehouse"), day)


def write_population(home: Path, days: int) -> None:
    rng = np.random.default_rng(99)
    users = pd.DataFrame(rng.uniform(0, 1, (USERS, ACTIONS)), columns=list(FEATURES))
    users.insert(0, "user_id", np.arange(USERS, dtype=np.int64))
    for offset in range(days):
        write_day(users, str(home / "population"), shift_day(START, offset))


def bandit_app(home: Path, algorithm: str = "neural_epsilon_greedy") -> Application:
    return Application(
        name="toy_bandit",
        start_date=START,
        schema=TimestepSchema(
            env_id_columns=("user_id",),
            timestep_column="ts",
            observation_columns=FEATURES,
            action_prob_column="action_prob",
            single_step=True,
        ),
        action_space=ActionSpace("discrete", num_actions=ACTIONS),
        agent=TFAgentsResource(
            algorithm=algorithm,
            fc_layer_params=[32],
            batch_size=64,
            train_steps_per_day=300,
            learning_rate=0.01,
            epsilon_greedy=EPSILON,
        ),
        warehouse=ParquetWarehouse(str(home / "warehouse")),
        trajectory=TrajectorySettings(lookback_days=0, lag_days=1, window_days=7),
        population=ParquetWarehouse(str(home / "population")),
    )


def evaluation(home: Path, day: str) -> dict:
    return read_json(str(stored(home, "toy_bandit", "policy_evaluation", day) / EVALUATION_RECORD))


def test_bandit_learns_and_is_judged_on_unseen_logs(spark, home: Path) -> None:
    for offset in range(3):
        log_day(home, shift_day(START, offset), seed=offset)
    write_population(home, 3)
    job = definitions(home, bandit_app(home)).resolve_job_def(DAILY_JOB)
    for offset in range(3):
        result = job.execute_in_process(partition_key=shift_day(START, offset))
        assert result.success
    last = evaluation(home, shift_day(START, 2))
    logging, dr = last["estimates"]["logging"], last["estimates"]["dr"]
    assert abs(logging["value"] - 0.25) < 0.04
    assert last["accepted"] and last["deployed_checkpoint"] == shift_day(START, 2)
    # trained on days 1-2 only, judged on day 3: far better than the uniform logging policy
    assert dr["lower"] > 0.6, last
    assert last["estimates"]["ips"]["lower"] > 0.5, last
    batch = pd.read_parquet(stored(home, "toy_bandit", "action_batch", shift_day(START, 2)))
    assert len(batch) == USERS
    assert batch.policy_version.str.startswith(f"toy_bandit@{shift_day(START, 2)}").all()
    population = pd.read_parquet(home / "population" / f"dt={START}").sort_values("user_id")
    batch = batch.sort_values("user_id")
    best = population[list(FEATURES)].to_numpy().argmax(axis=1)
    assert (batch.greedy_action.to_numpy() == best).mean() > 0.9
    greedy = batch.action == batch.greedy_action
    np.testing.assert_allclose(batch.action_prob[greedy], 1 - EPSILON + EPSILON / ACTIONS, rtol=1e-6)


@pytest.mark.parametrize("algorithm", ["lin_ucb"])
def test_linear_ucb_trains_on_single_step_rows(spark, home: Path, algorithm: str) -> None:
    for offset in range(2):
        log_day(home, shift_day(START, offset), seed=offset)
    write_population(home, 2)
    app = bandit_app(home, algorithm)
    app = dataclasses.replace(app, agent=app.agent.model_copy(update={"train_steps_per_day": 20}))
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    for offset in range(2):
        assert job.execute_in_process(partition_key=shift_day(START, offset)).success
    record = evaluation(home, shift_day(START, 1))
    assert record["rows"] == ROWS
    assert np.isfinite(record["estimates"]["dr"]["value"])


def gate_checks(result: dg.ExecuteInProcessResult) -> list:
    return [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == GATE_CHECK
    ]


def test_gate_refuses_a_confidently_worse_candidate_and_deploys_the_last_accepted(spark, home: Path) -> None:
    """Refused and accepted in one backfill run: day 1's untrained candidate is confidently worse than
    uniform logging (refused before any acceptance: uniformly random actions), day 2's learned the
    arg-max (accepted), day 3's logs reward the arg-min (refused: the last accepted policy is deployed)."""
    log_day(home, START, seed=0)
    log_day(home, shift_day(START, 1), seed=1)
    log_day(home, shift_day(START, 2), seed=2, shifted=True)
    write_population(home, 3)
    job = definitions(home, bandit_app(home)).resolve_job_def(DAILY_JOB)
    result = job.execute_in_process(
        tags={
            "dagster/asset_partition_range_start": START,
            "dagster/asset_partition_range_end": shift_day(START, 2),
        }
    )
    assert result.success
    first, accepted_day, refused_day = START, shift_day(START, 1), shift_day(START, 2)
    records = {day: evaluation(home, day) for day in (first, accepted_day, refused_day)}
    assert [r["outcome"] for r in records.values()] == [REFUSED, ACCEPTED, REFUSED], records
    record = records[refused_day]
    assert not record["accepted"], record
    assert "confidently worse" in record["reason"]
    assert record["deployed_checkpoint"] == accepted_day
    assert record["last_accepted_checkpoint"] == accepted_day
    # nothing is lost: the refused checkpoint is still stored
    assert (stored(home, "toy_bandit", "agent_checkpoint", refused_day) / "checkpoint").is_dir()
    batch = pd.read_parquet(stored(home, "toy_bandit", "action_batch", refused_day))
    assert batch.policy_version.str.startswith(f"toy_bandit@{accepted_day}").all()
    # refused before any acceptance: uniformly random actions
    assert (
        records[first]["deployed_checkpoint"] is None and records[first]["last_accepted_checkpoint"] is None
    )
    batch = pd.read_parquet(stored(home, "toy_bandit", "action_batch", first))
    assert batch.policy_version.eq("toy_bandit@uniform_random").all()
    np.testing.assert_allclose(batch.action_prob, 1 / ACTIONS, rtol=1e-6)

    # ESS, the largest weight, the model's calibration and both intervals are recorded
    for r in records.values():
        assert r["effective_sample_size"] > 100 and r["max_weight"] <= ACTIONS
        assert r["estimates"]["dr"]["interval"] == "empirical_bernstein"
        e = r["estimates"]["dr_minus_logging"]
        assert e["lower"] <= e["normal_lower"] <= e["normal_upper"] <= e["upper"]
        model = r["reward_model"]
        assert model["observed_mean_reward"] == pytest.approx(r["estimates"]["logging"]["value"])
        assert 0.0 <= model["mean_prediction_calibrated"] <= 1.0
    checks = gate_checks(result)
    assert checks and not checks[-1].passed
    assert checks[-1].severity == dg.AssetCheckSeverity.WARN
    outcome = checks[-1].metadata["outcome"].value
    assert outcome == f"{first}: refused, {accepted_day}: accepted, {refused_day}: refused"
    assert checks[-1].metadata["refused_days"].value == f"{first}, {refused_day}"
    assert checks[-1].metadata["accepted_days"].value == accepted_day


def test_not_enough_evidence_deploys_what_the_config_says(spark, home: Path) -> None:
    """Below the floor on the effective sample size there is not enough evidence: by default the
    candidate is deployed with epsilon 0.3 (exact propensities); with keep_last_accepted and nothing
    accepted yet, uniformly random actions."""
    log_day(home, START, seed=0)
    write_population(home, 1)
    job = definitions(home, bandit_app(home)).resolve_job_def(DAILY_JOB)

    def run_config(**gate: object) -> dict:
        return {
            "ops": {"toy_bandit__policy_evaluation": {"config": {"min_effective_sample_size": 1e9, **gate}}}
        }

    result = job.execute_in_process(partition_key=START, run_config=run_config())
    assert result.success
    record = evaluation(home, START)
    assert record["outcome"] == NOT_ENOUGH_EVIDENCE and "below the floor" in record["reason"]
    assert record["deployed_checkpoint"] == START and record["deployed_epsilon"] == 0.3
    batch = pd.read_parquet(stored(home, "toy_bandit", "action_batch", START))
    greedy = batch.action == batch.greedy_action
    np.testing.assert_allclose(batch.action_prob[greedy], 0.7 + 0.3 / ACTIONS, rtol=1e-6)
    np.testing.assert_allclose(batch.action_prob[~greedy], 0.3 / ACTIONS, rtol=1e-6)
    assert 0.15 < (~greedy).mean() < 0.30  # 0.3 * 3/4 of users get a non-greedy action
    check = gate_checks(result)[-1]
    assert not check.passed and check.description == f"not enough evidence on {START}"
    assert check.metadata["effective_sample_size"].value > 100

    result = job.execute_in_process(
        partition_key=START, run_config=run_config(on_not_enough_evidence="keep_last_accepted")
    )
    assert result.success
    record = evaluation(home, START)
    assert record["outcome"] == NOT_ENOUGH_EVIDENCE
    assert record["deployed_checkpoint"] is None and "uniformly random" in record["deployment"]
    batch = pd.read_parquet(stored(home, "toy_bandit", "action_batch", START))
    assert batch.policy_version.eq("toy_bandit@uniform_random").all()
    np.testing.assert_allclose(batch.action_prob, 1 / ACTIONS, rtol=1e-6)


def test_deployment_choices_are_checked() -> None:
    """A value outside the documented choices is a sentence listing them (raised before any work)."""
    with pytest.raises(ValueError, match="on_not_enough_evidence must be one of explore, keep_last_accepted"):
        OffPolicyEvaluationConfig(on_not_enough_evidence="deploy_anyway").validate_choices()
    with pytest.raises(ValueError, match="on_refused must be one of keep_last_accepted, uniform_random"):
        OffPolicyEvaluationConfig(on_refused="candidate").validate_choices()
    with pytest.raises(ValueError, match="exploration_when_unsure"):
        OffPolicyEvaluationConfig(exploration_when_unsure=1.5).validate_choices()
    OffPolicyEvaluationConfig().validate_choices()


def test_a_bandit_application_is_declared_with_what_evaluation_needs(tmp_path: Path) -> None:
    app = bandit_app(tmp_path)
    with pytest.raises(ValueError, match="action_prob_column"):
        dataclasses.replace(app, schema=dataclasses.replace(app.schema, action_prob_column=None))
    with pytest.raises(ValueError, match="lag_days>=1"):
        dataclasses.replace(app, trajectory=TrajectorySettings(lookback_days=0, lag_days=0))
    with pytest.raises(ValueError, match="single_step"):
        dataclasses.replace(app, schema=dataclasses.replace(app.schema, single_step=False))

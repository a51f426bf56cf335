"""A contextual bandit through the whole graph: single-step logs → bandit agent → off-policy
evaluation on unseen logs → a gated action batch.

The synthetic product has 4 actions and 4 context features; a click happens exactly when the
action is the arg-max (or, on a "shifted" day, the arg-min) feature. Logging is uniform random,
so the logging policy's value is 1/4 and a policy that learned the arg-max is worth about
1 - epsilon * 3/4 on an arg-max day and about epsilon / 4 on an arg-min day.
"""

import dataclasses
from pathlib import Path

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
from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD, GATE_CHECK
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


def test_gate_refuses_a_confidently_worse_candidate_and_deploys_the_last_accepted(spark, home: Path) -> None:
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
    refused_day = shift_day(START, 2)
    record = evaluation(home, refused_day)
    assert not record["accepted"], record
    assert "confidently worse" in record["reason"]
    assert record["deployed_checkpoint"] == shift_day(START, 1)
    # nothing is lost: the refused checkpoint is still stored
    assert (stored(home, "toy_bandit", "agent_checkpoint", refused_day) / "checkpoint").is_dir()
    batch = pd.read_parquet(stored(home, "toy_bandit", "action_batch", refused_day))
    assert batch.policy_version.str.startswith(f"toy_bandit@{shift_day(START, 1)}").all()
    checks = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
        and e.asset_check_evaluation_data.check_name == GATE_CHECK
    ]
    assert checks and not checks[-1].passed


def test_a_bandit_application_is_declared_with_what_evaluation_needs(tmp_path: Path) -> None:
    app = bandit_app(tmp_path)
    with pytest.raises(ValueError, match="action_prob_column"):
        dataclasses.replace(app, schema=dataclasses.replace(app.schema, action_prob_column=None))
    with pytest.raises(ValueError, match="lag_days>=1"):
        dataclasses.replace(app, trajectory=TrajectorySettings(lookback_days=0, lag_days=0))
    with pytest.raises(ValueError, match="single_step"):
        dataclasses.replace(app, schema=dataclasses.replace(app.schema, single_step=False))

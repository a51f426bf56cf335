"""LinUCB's statistics count every logged row exactly once, across train steps and days.

LinUCB's confidence bonus shrinks with its per-arm matrix A = λI + Σ x xᵀ. Streaming the whole
training window for `train_steps_per_day` batches on top of yesterday's restored statistics put
each row into A many times, so the bonus shrank far faster than the data warrants. The oracle
here is numpy's sum over the logged rows of the days each checkpoint has seen.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.training.checkpoints import restore_agent
from rl_bakery_dagster_tests.apps import START, definitions, stored
from rl_bakery_dagster_tests.test_bandit_pipeline import (
    ACTIONS,
    FEATURES,
    bandit_app,
    log_day,
    write_population,
)

DAYS = [shift_day(START, offset) for offset in range(4)]


def closed_form(logs: list[pd.DataFrame]) -> tuple[np.ndarray, np.ndarray]:
    """Per arm: Σ x xᵀ and Σ r x over the rows, with LinUCB's bias feature appended to x."""
    rows = pd.concat(logs) if logs else pd.DataFrame(columns=[*FEATURES, "action", "reward"])
    x = np.hstack([rows[list(FEATURES)].to_numpy(np.float64), np.ones((len(rows), 1))])
    action, reward = rows["action"].to_numpy(), rows["reward"].to_numpy(np.float64)
    a = np.stack([x[action == arm].T @ x[action == arm] for arm in range(ACTIONS)])
    b = np.stack([(reward[action == arm, None] * x[action == arm]).sum(axis=0) for arm in range(ACTIONS)])
    return a, b


def test_lin_ucb_statistics_equal_the_closed_form_over_the_days_seen(spark: object, home: Path) -> None:
    for offset, day in enumerate(DAYS):
        log_day(home, day, seed=offset)
    write_population(home, len(DAYS))
    app = bandit_app(home, "lin_ucb")
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS[:2]:  # one run per day ...
        assert job.execute_in_process(partition_key=day, instance=instance).success
    range_run = {"dagster/asset_partition_range_start": DAYS[2], "dagster/asset_partition_range_end": DAYS[3]}
    assert job.execute_in_process(tags=range_run, instance=instance).success  # ... then one backfill run

    logs = [pd.read_parquet(home / "warehouse" / f"dt={day}") for day in DAYS]
    for index, day in enumerate(DAYS):
        agent = app.agent.build(app.schema.observation_spec(), app.action_space.tensor_spec(), 1)
        restore_agent(agent, str(stored(home, "toy_bandit", "agent_checkpoint", day)))
        expected_a, expected_b = closed_form(logs[:index])  # lag 1: checkpoint d has seen days before d
        np.testing.assert_allclose(
            np.stack([m.numpy() for m in agent.cov_matrix]), expected_a, rtol=1e-4, atol=1e-3, err_msg=day
        )
        np.testing.assert_allclose(
            np.stack([v.numpy() for v in agent.data_vector]), expected_b, rtol=1e-4, atol=1e-3, err_msg=day
        )

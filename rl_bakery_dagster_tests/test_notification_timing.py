"""The notification timing example, small: the simulated product and the Dagster graph, day after day.

4,000 users, 3 materialised days (day 1 served at random, the batches of days 2 and 3 by policies
trained on the days before). Everything is seeded (world, Spark's exploration draws, TF
initialisation and data order), so the numbers are the same on every run. Measured here: the
batch of day 3 closes ~45 % of the gap between random and the oracle; the assertions ask for
half of that, and a logged click rate 0.2 of the gap above random is > 3 standard errors of the
logged rate at this size.
"""

from pathlib import Path

import pandas as pd

from rl_bakery_dagster.examples.notification_timing.__main__ import GATE_CONFIG
from rl_bakery_dagster.examples.notification_timing.application import (
    NAME,
    START_DATE,
    notification_timing_application,
)
from rl_bakery_dagster.examples.notification_timing.simulator import SLOTS, NotificationWorld, simulate
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster_tests.apps import definitions, stored

USERS = 4000
DAYS = 3
EPSILON = 0.05
SMALL_AGENT = TFAgentsResource(
    algorithm="neural_epsilon_greedy",
    fc_layer_params=[32, 32],
    learning_rate=5e-3,
    batch_size=256,
    train_steps_per_day=400,
    epsilon_greedy=EPSILON,
)


def test_policy_learns_when_to_send(spark, home: Path) -> None:
    app = notification_timing_application(
        agent=SMALL_AGENT, warehouse=str(home / "warehouse"), population=str(home / "population")
    )
    job = definitions(home, app).resolve_job_def(DAILY_JOB)

    def materialise(day: str) -> None:
        assert job.execute_in_process(partition_key=day, run_config=GATE_CONFIG).success

    results = simulate(
        NotificationWorld(USERS, seed=0),
        START_DATE,
        DAYS,
        str(home / "warehouse"),
        str(home / "population"),
        lambda day: str(stored(home, NAME, "action_batch", day)),
        materialise,
    )
    reports = [result.report for result in results]
    assert [r.day for r in reports] == [shift_day(START_DATE, k) for k in range(DAYS)]
    # the batch of day 3 (trained on days 1-2) was logged on day 4 with its propensities
    logs = pd.read_parquet(home / "warehouse" / f"dt={shift_day(START_DATE, DAYS)}")
    assert len(logs) == USERS and logs["action"].between(0, SLOTS - 1).all()
    assert logs["policy_version"].str.startswith(f"{NAME}@{shift_day(START_DATE, DAYS - 1)}").all()
    greedy_prob = 1 - EPSILON + EPSILON / SLOTS
    assert set(logs["action_prob"].round(6)) <= {round(greedy_prob, 6), round(EPSILON / SLOTS, 6)}

    last = reports[-1]
    margin = last.oracle_click_rate - last.random_click_rate
    assert last.expected_gap_closed > 0.22, last
    assert last.logged_click_rate > last.random_click_rate + 0.2 * margin, last
    assert last.greedy_is_oracle_slot > 1.6 / SLOTS, last  # random: 1 / SLOTS

"""TensorBoard summaries stored with each checkpoint continue across days.

People who train TF-Agents agents look at loss and Q-value curves per train step. Each day is a
separate run restored from yesterday's checkpoint, so the curves only make sense as one chain if
every day's global step continues the previous day's. Read with TF's own event reader, not ours.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.training.checkpoints import read_metrics
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, stored, tiny_cartpole

DAYS = [START, "2024-01-02"]
STEPS = 20


def scalars(folder: Path) -> dict[str, dict[int, float]]:
    """tag → step → value, from every event file under `folder`, via tf.compat.v1's reader."""
    found: dict[str, dict[int, float]] = defaultdict(dict)
    files = sorted(folder.rglob("events.out.tfevents.*"))
    assert files, f"no event file under {folder}"
    for file in files:
        for event in tf.compat.v1.train.summary_iterator(str(file)):
            for value in event.summary.value:
                found[value.tag][event.step] = float(tf.make_ndarray(value.tensor))
    return found


def test_each_day_writes_summaries_that_continue_the_chain(spark: object, home: Path) -> None:
    log_random_days(home, 2)
    app = tiny_cartpole(home, seed=2, epsilon_greedy=0.5, epsilon_greedy_final=0.1, epsilon_decay_steps=30)
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    for day in DAYS:  # one run per day: the second restores the first's checkpoint
        assert job.execute_in_process(partition_key=day).success

    per_day = [scalars(stored(home, "cartpole", "agent_checkpoint", day) / "tensorboard") for day in DAYS]
    assert sorted(per_day[0]["loss"]) == list(range(1, STEPS + 1))
    assert sorted(per_day[1]["loss"]) == list(range(STEPS + 1, 2 * STEPS + 1))
    for day, summaries in zip(DAYS, per_day, strict=True):
        metrics = read_metrics(str(stored(home, "cartpole", "agent_checkpoint", day)))
        losses = list(summaries["loss"].values())
        assert np.mean(losses) == pytest.approx(metrics["loss_mean"], rel=1e-5)
        assert all(np.isfinite(list(summaries["value/mean_max_q"].values())))
        rates = list(summaries["learning_rate/learning_rate"].values())
        assert rates and all(rate == pytest.approx(1e-3) for rate in rates)  # the configured rate
        for step, epsilon in summaries["exploration/epsilon"].items():  # linear decay 0.5 → 0.1 over 30
            assert epsilon == pytest.approx(0.5 + (0.1 - 0.5) * min(step, 30) / 30)
    assert max(per_day[1]["exploration/epsilon"]) > 30  # day 2 reached the decay's floor
    assert per_day[1]["exploration/epsilon"][2 * STEPS] == pytest.approx(0.1)

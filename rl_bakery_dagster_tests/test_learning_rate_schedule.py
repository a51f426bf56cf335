"""The learning-rate decay of `TFAgentsResource`: driven by the checkpointed train step."""

from pathlib import Path

import dagster as dg
import pytest
import tensorflow as tf
from tf_agents.specs import BoundedTensorSpec, TensorSpec

from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.training.optimizers import agent_learning_rates
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, tiny_cartpole

OBSERVATION = TensorSpec((4,), tf.float32)
DISCRETE = BoundedTensorSpec((), tf.int64, minimum=0, maximum=1)
CONTINUOUS = BoundedTensorSpec((1,), tf.float32, minimum=-1.0, maximum=1.0)


def learning_rates(agent: object) -> list[float]:
    return list(agent_learning_rates(agent).values())


@pytest.mark.parametrize(
    ("algorithm", "action_spec", "rates"),
    [("dqn", DISCRETE, [4e-4]), ("ddqn", DISCRETE, [4e-4]), ("ddpg", CONTINUOUS, [2e-4, 2e-3])],
)
def test_decay_follows_the_agents_train_step(
    algorithm: str, action_spec: BoundedTensorSpec, rates: list[float]
) -> None:
    settings = TFAgentsResource(
        algorithm=algorithm,
        learning_rate=4e-4,
        actor_learning_rate=2e-4,
        critic_learning_rate=2e-3,
        learning_rate_decay_steps=1000,
        learning_rate_final_fraction=0.25,
    )
    agent = settings.build(OBSERVATION, action_spec, n_step=1)

    assert learning_rates(agent) == pytest.approx(rates)
    agent.train_step_counter.assign(500)  # what restoring yesterday's checkpoint does
    assert learning_rates(agent) == pytest.approx([rate * 0.625 for rate in rates])
    agent.train_step_counter.assign(5000)  # long after the decay: stays at the floor
    assert learning_rates(agent) == pytest.approx([rate * 0.25 for rate in rates])


def test_no_decay_by_default() -> None:
    agent = TFAgentsResource(learning_rate=3e-4).build(OBSERVATION, DISCRETE, n_step=1)
    agent.train_step_counter.assign(10**6)
    assert learning_rates(agent) == pytest.approx([3e-4])


def test_a_restored_agent_continues_its_schedule_across_days(spark: object, home: Path) -> None:
    log_random_days(home, 3)
    app = tiny_cartpole(  # 20 train steps a day, decaying to a quarter over the first 50
        home, learning_rate=1e-3, learning_rate_decay_steps=50, learning_rate_final_fraction=0.25
    )
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    rates = []
    for day in (START, shift_day(START, 1), shift_day(START, 2)):
        result = job.execute_in_process(partition_key=day, instance=instance)
        (metadata,) = [
            event.materialization.metadata
            for event in result.get_asset_materialization_events()
            if event.materialization.asset_key.path[-1] == "agent_checkpoint"
        ]
        rates.append((metadata["total_train_steps"].value, metadata["learning_rate"].value))
    # after 20, 40 and 60 steps: 1e-3 * (1 - 0.75 * min(steps, 50) / 50)
    assert [steps for steps, _ in rates] == [20, 40, 60]
    assert [rate for _, rate in rates] == pytest.approx([7e-4, 4e-4, 2.5e-4])


def test_learning_rates_are_reported_per_optimiser() -> None:
    ddpg = TFAgentsResource(algorithm="ddpg").build(OBSERVATION, CONTINUOUS, n_step=1)
    assert agent_learning_rates(ddpg) == pytest.approx(
        {"actor_learning_rate": 1e-4, "critic_learning_rate": 1e-3}
    )

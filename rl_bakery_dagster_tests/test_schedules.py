"""Learning-rate and exploration schedules of `TFAgentsResource`, driven by the checkpointed train step."""

from pathlib import Path

import dagster as dg
import pytest
import tensorflow as tf
from tf_agents.specs import BoundedTensorSpec, TensorSpec
from tf_agents.trajectories import time_step as ts

from rl_bakery_dagster.checkpoint_format import COLLECT_POLICY, GREEDY_POLICY
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.training.schedules import agent_learning_rates
from rl_bakery_dagster_tests.apps import START, definitions, log_random_days, stored, tiny_cartpole

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


def test_a_restored_agent_continues_its_schedules_across_days(spark: object, home: Path) -> None:
    log_random_days(home, 3)
    app = tiny_cartpole(  # 20 train steps a day; both schedules end after 50
        home,
        learning_rate=1e-3,
        learning_rate_decay_steps=50,
        learning_rate_final_fraction=0.25,
        epsilon_greedy=1.0,
        epsilon_decay_steps=50,
        epsilon_greedy_final=0.0,
    )
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    days = [START, shift_day(START, 1), shift_day(START, 2)]
    metadata = []
    for day in days:
        result = job.execute_in_process(partition_key=day, instance=instance)
        (values,) = [
            {key: value.value for key, value in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()
            if event.materialization.asset_key.path[-1] == "agent_checkpoint"
        ]
        metadata.append(values)
    assert [m["total_train_steps"] for m in metadata] == [20, 40, 60]
    # after 20, 40 and 60 steps: 1e-3 * (1 - 0.75 * min(steps, 50) / 50) and 1 - min(steps, 50) / 50
    assert [m["learning_rate"] for m in metadata] == pytest.approx([7e-4, 4e-4, 2.5e-4])
    assert [m["epsilon_greedy"] for m in metadata] == pytest.approx([0.6, 0.2, 0.0])

    # the exported collect policies explore at their day's rate: 60 % random, then none
    observations = tf.random.stateless_uniform((2000, 4), seed=(1, 2), minval=-0.2, maxval=0.2)
    time_step = ts.restart(observations, batch_size=2000)
    share_not_greedy = []
    for day in (days[0], days[2]):
        policies = stored(home, "cartpole", "agent_checkpoint", day)
        loaded = [tf.saved_model.load(str(policies / name)) for name in (GREEDY_POLICY, COLLECT_POLICY)]
        greedy, collect = (policy.action(time_step).action for policy in loaded)
        share_not_greedy.append(float(tf.reduce_mean(tf.cast(greedy != collect, tf.float32))))
    assert share_not_greedy[0] == pytest.approx(0.6 / 2, abs=0.04)  # random half of the time agrees
    assert share_not_greedy[1] == 0.0


def test_epsilon_at_follows_the_linear_decay() -> None:
    settings = TFAgentsResource(epsilon_greedy=0.5, epsilon_decay_steps=100, epsilon_greedy_final=0.1)
    assert [settings.epsilon_at(step) for step in (0, 50, 100, 10**6)] == pytest.approx([0.5, 0.3, 0.1, 0.1])
    assert TFAgentsResource(epsilon_greedy=0.3).epsilon_at(10**6) == 0.3


def test_learning_rates_are_reported_per_optimiser() -> None:
    ddpg = TFAgentsResource(algorithm="ddpg").build(OBSERVATION, CONTINUOUS, n_step=1)
    assert agent_learning_rates(ddpg) == pytest.approx(
        {"actor_learning_rate": 1e-4, "critic_learning_rate": 1e-3}
    )

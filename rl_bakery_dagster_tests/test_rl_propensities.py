"""RL logs carry the exact propensity of every action, so sequential off-policy evaluation can use them.

The simulator's propensities are checked against the hand formula recomputed from the logged rows
((1 - epsilon)·[a = greedy] + epsilon/|A|, and 1/|A| for uniform play); the RL timestep contract
refuses propensities outside (0, 1] by name; continuous actions may not declare a propensity.
"""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.application import ActionSpace
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS, cartpole_application
from rl_bakery_dagster.examples.gym_simulator import BatchedGym, epsilon_greedy, random_policy
from rl_bakery_dagster.examples.mountain_car.application import mountain_car_application
from rl_bakery_dagster.transforms.timesteps import to_contract
from rl_bakery_dagster.transforms.validation import find_violations
from rl_bakery_dagster_tests.apps import START


def lean_right(step_type, reward, discount, observation) -> np.ndarray:
    """A deterministic greedy rule the test can recompute from the logged observation."""
    return (observation[:, 2] > 0).astype(np.int64)


def test_random_first_day_logs_one_over_the_number_of_actions() -> None:
    product = BatchedGym("CartPole-v0", 3, seed=5)
    logs = product.log(random_policy(product.action_space, 5), 40, OBSERVATION_COLUMNS)
    np.testing.assert_array_equal(logs.action_prob.to_numpy(), np.full(len(logs), 0.5))


def test_epsilon_greedy_logs_the_hand_formula() -> None:
    epsilon = 0.3
    product = BatchedGym("CartPole-v0", 8, seed=6)
    logs = product.log(epsilon_greedy(lean_right, epsilon, 2, seed=6), 100, OBSERVATION_COLUMNS)
    greedy = (logs.pole_angle.to_numpy() > 0).astype(np.int64)
    took_greedy = logs.action.to_numpy() == greedy
    expected = np.where(took_greedy, 1 - epsilon + epsilon / 2, epsilon / 2)
    np.testing.assert_allclose(logs.action_prob.to_numpy(), expected, rtol=0, atol=1e-12)
    # the random branch picks the other action half the time: about epsilon / 2 of rows (800 rows)
    assert abs((~took_greedy).mean() - epsilon / 2) < 0.05


def test_greedy_only_and_fully_random_extremes() -> None:
    product = BatchedGym("CartPole-v0", 2, seed=7)
    greedy_logs = product.log(epsilon_greedy(lean_right, 0.0, 2, seed=7), 30, OBSERVATION_COLUMNS)
    assert (greedy_logs.action_prob == 1.0).all()
    random_logs = product.log(epsilon_greedy(lean_right, 1.0, 2, seed=7), 30, OBSERVATION_COLUMNS)
    assert (random_logs.action_prob == 0.5).all()
    with pytest.raises(ValueError, match="epsilon must lie in"):
        epsilon_greedy(lean_right, 1.5, 2, seed=7)


def test_continuous_play_logs_no_propensity_and_may_not_declare_one() -> None:
    product = BatchedGym("MountainCarContinuous-v0", 2, seed=8)
    logs = product.log(random_policy(product.action_space, 8), 5, ("position", "velocity"))
    assert "action_prob" not in logs.columns
    app = mountain_car_application(warehouse="unused")
    assert app.schema.action_prob_column is None
    with pytest.raises(ValueError, match="only model-based off-policy estimates"):
        dataclasses.replace(app, schema=dataclasses.replace(app.schema, action_prob_column="action_prob"))
    assert ActionSpace("continuous", low=(-1.0,), high=(1.0,)).kind == "continuous"


BAD_PROPENSITIES = {
    4: 0.0,  # a logged action the logging policy could not take
    7: 1.5,  # not a probability
    9: np.nan,  # unknown
    12: -0.2,  # negative
}


def test_rl_contract_refuses_propensities_outside_the_unit_interval(spark) -> None:
    app = cartpole_application(warehouse="unused")
    assert app.schema.action_prob_column == "action_prob"
    product = BatchedGym("CartPole-v0", 2, seed=9)
    logs = product.log(random_policy(product.action_space, 9), 20, OBSERVATION_COLUMNS)
    for row, bad in BAD_PROPENSITIES.items():
        logs.loc[row, "action_prob"] = bad
    contract = to_contract(spark.createDataFrame(logs), app.schema, app.action_space, START)
    violations = find_violations(contract, app.schema, app.action_space)
    assert [(v.rule, v.columns) for v in violations] == [("propensity_in_unit_interval", ("action_prob",))]
    assert violations[0].rows == len(BAD_PROPENSITIES) and violations[0].samples


def test_rl_logs_without_the_propensity_column_are_refused(spark) -> None:
    from rl_bakery_dagster.transforms.validation import TimestepContractError

    app = cartpole_application(warehouse="unused")
    product = BatchedGym("CartPole-v0", 2, seed=10)
    logs: pd.DataFrame = product.log(random_policy(product.action_space, 10), 5, OBSERVATION_COLUMNS)
    with pytest.raises(TimestepContractError, match="action_prob"):
        to_contract(
            spark.createDataFrame(logs.drop(columns=["action_prob"])), app.schema, app.action_space, START
        )

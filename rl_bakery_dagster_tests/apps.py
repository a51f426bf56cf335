"""Small applications for tests: CartPole logs with tiny agents so training takes seconds."""

import dataclasses
from pathlib import Path

import dagster as dg
import gym
import pandas as pd

from rl_bakery_dagster.application import Application
from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS, cartpole_application
from rl_bakery_dagster.examples.gym_simulator import (
    BatchedGym,
    deployed_policy,
    evaluate,
    random_policy,
    write_day,
)
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.storage import StorageRoot

START = "2024-01-01"

TINY_AGENT = {
    "algorithm": "dqn",
    "fc_layer_params": [16],
    "batch_size": 16,
    "train_steps_per_day": 20,
    "target_update_period": 5,
}


def tiny_cartpole(home: Path, *, evaluate: bool = False, **agent_fields: object) -> Application:
    agent = TFAgentsResource(**{**TINY_AGENT, **agent_fields})
    app = cartpole_application(agent=agent, warehouse=str(home / "warehouse"))
    return app if evaluate else dataclasses.replace(app, evaluator=None)


def log_random_days(
    home: Path, days: int, envs: int = 4, steps: int = 40, seed: int = 0
) -> list[pd.DataFrame]:
    """Writes `days` days of random CartPole play to the test warehouse; episodes cross midnight."""
    product = BatchedGym("CartPole-v0", envs, seed)
    policy = random_policy(product.action_space, seed)
    frames = []
    for offset in range(days):
        frame = product.log(policy, steps, OBSERVATION_COLUMNS)
        write_day(frame, str(home / "warehouse"), shift_day(START, offset))
        frames.append(frame)
    return frames


def definitions(home: Path, app: Application) -> dg.Definitions:
    return build_definitions(app, home=home)


def stored(home: Path, app: str, asset: str, day: str) -> Path:
    """The committed version of `<app>/<asset>[day]` under the test home (what a reader sees)."""
    return Path(StorageRoot(str(home / "storage")).read_uri([app, asset], day))


def true_returns(home: Path, days: list[str], episodes: int = 200) -> tuple[float, dict[str, float]]:
    """The simulator's oracle: uniform random play's mean CartPole return, and each day's stored
    checkpoint played as it would be deployed (epsilon-greedy), on the same unseen episodes."""
    random_return = evaluate(
        random_policy(gym.spaces.Discrete(2), 1), "CartPole-v0", episodes, seed=77
    ).mean_return
    truth = {
        day: evaluate(
            deployed_policy(str(stored(home, "cartpole", "agent_checkpoint", day)), 2, seed=3),
            "CartPole-v0",
            episodes,
            seed=77,
        ).mean_return
        for day in days
    }
    return random_return, truth

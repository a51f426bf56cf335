"""A daily application around a gym environment, played by `gym_simulator` as the product."""

import os

from rl_bakery_dagster.application import (
    ActionSpace,
    Application,
    EvaluationResult,
    ParquetWarehouse,
    PolicyEvaluator,
    TimestepSchema,
    TrajectorySettings,
)
from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.resources.agents import TFAgentsResource

START_DATE = "2024-01-01"


def warehouse_uri(name: str) -> str:
    """`<NAME>_WAREHOUSE_URI`, default `<home>/warehouse/<name>`."""
    return os.environ.get(f"{name.upper()}_WAREHOUSE_URI", str(bakery_home() / "warehouse" / name))


def greedy_evaluator(name: str, env_name: str, default_episodes: int) -> PolicyEvaluator:
    """Plays the greedy policy for `<NAME>_EVAL_EPISODES` episodes (default `default_episodes`)."""

    def evaluate_greedy_policy(policy: object, seed: int) -> EvaluationResult:
        from rl_bakery_dagster.examples.gym_simulator import evaluate, tf_policy

        episodes = int(os.environ.get(f"{name.upper()}_EVAL_EPISODES", default_episodes))
        return evaluate(tf_policy(policy), env_name, episodes, seed=10_000 + seed)

    return evaluate_greedy_policy


def gym_application(
    name: str,
    env_name: str,
    observation_columns: tuple[str, ...],
    action_space: ActionSpace,
    agent: TFAgentsResource,
    warehouse: str | None,
    eval_episodes: int,
    trajectory: TrajectorySettings,
    start_date: str = START_DATE,
    policy_version_column: str | None = None,
) -> Application:
    return Application(
        name=name,
        start_date=start_date,
        schema=TimestepSchema(
            env_id_columns=("user_id",),
            timestep_column="ts",
            observation_columns=observation_columns,
            # the simulator logs exact propensities of discrete actions (off-policy evaluation needs
            # them); a continuous action has a density, not a probability: only model-based estimates
            action_prob_column="action_prob" if action_space.is_discrete else None,
            policy_version_column=policy_version_column,
        ),
        action_space=action_space,
        agent=agent,
        warehouse=ParquetWarehouse(warehouse or warehouse_uri(name)),
        trajectory=trajectory,
        evaluator=greedy_evaluator(name, env_name, eval_episodes),
    )


def preset_application(
    name: str,
    observation_columns: tuple[str, ...],
    action_space: ActionSpace,
    agent: TFAgentsResource | None = None,
    warehouse: str | None = None,
    start_date: str = START_DATE,
    policy_version_column: str | None = None,
) -> Application:
    """The example `name` as `presets.PRESETS[name]` configures it (`agent` replaces its agent)."""
    from rl_bakery_dagster.examples.presets import PRESETS

    preset = PRESETS[name]
    return gym_application(
        name,
        preset.env,
        observation_columns,
        action_space,
        agent or TFAgentsResource(**preset.agent),
        warehouse,
        eval_episodes=preset.day_eval_episodes,
        trajectory=preset.trajectory_settings(),
        start_date=start_date,
        policy_version_column=policy_version_column,
    )

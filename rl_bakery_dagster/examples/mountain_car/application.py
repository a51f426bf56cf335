"""MountainCarContinuous as a daily RL application with a continuous action: DDPG learns from logs."""

from rl_bakery_dagster.application import ActionSpace, Application, TrajectorySettings
from rl_bakery_dagster.examples.gym_application import gym_application
from rl_bakery_dagster.resources.agents import TFAgentsResource

ENV_NAME = "MountainCarContinuous-v0"
OBSERVATION_COLUMNS = ("position", "velocity")

DEFAULT_AGENT = TFAgentsResource(
    algorithm="ddpg",
    actor_fc_layer_params=[400, 300],
    critic_observation_fc_layer_params=[400],
    critic_joint_fc_layer_params=[300],
    actor_learning_rate=1e-4,
    critic_learning_rate=1e-3,
    target_update_tau=0.005,
    target_update_period=1,
    gamma=0.99,
    batch_size=64,
    train_steps_per_day=2000,
)


def mountain_car_application(
    agent: TFAgentsResource | None = None, warehouse: str | None = None
) -> Application:
    """`agent` and `warehouse` default to DDPG and `MOUNTAIN_CAR_WAREHOUSE_URI`."""
    return gym_application(
        "mountain_car",
        ENV_NAME,
        OBSERVATION_COLUMNS,
        ActionSpace("continuous", low=(-1.0,), high=(1.0,)),
        agent or DEFAULT_AGENT,
        warehouse,
        eval_episodes=20,
        trajectory=TrajectorySettings(n_step=1, lookback_days=1, lag_days=0, window_days=30),
    )

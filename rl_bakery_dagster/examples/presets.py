"""The tuned configurations behind `benchmarks/LEARNING.md`, in one place.

The gym examples build their default agents, trajectory settings and simulated product sizes
from these presets, and `benchmarks/learning.py` measures the same presets, so what a user runs
is what the published numbers measured: change a preset here and both follow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from rl_bakery_dagster.application import TrajectorySettings

FirstDayPolicy = Literal["uniform", "ou"]


@dataclass(frozen=True)
class GymPreset:
    """An agent, its trajectory settings and the simulated product that feeds it each day.

    `agent` holds `TFAgentsResource` fields; `envs * steps_per_env` timesteps are logged each
    day, for `days` days; day 1 is played by `first_day_policy` (uniform, or Ornstein-Uhlenbeck
    noise for a continuous action); `day_eval_episodes` greedy episodes score each checkpoint.

    `run_fractions` names agent step counts that belong to the run rather than to a day (a
    learning rate that decays over the run, the Zoo's exploration over 12 % of it), as a fraction
    of the run's train steps (`days * train_steps_per_day`): `agent` holds them resolved, and
    replacing `days` or the train steps resolves them again, so `--days 20` keeps the schedule's
    shape instead of ending it halfway.
    """

    env: str
    agent: dict[str, Any]
    days: int
    envs: int
    steps_per_env: int
    day_eval_episodes: int
    first_day_policy: FirstDayPolicy = "uniform"
    trajectory: dict[str, int] = field(
        default_factory=lambda: {"n_step": 1, "lookback_days": 1, "lag_days": 0, "window_days": 30}
    )
    run_fractions: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        run_train_steps = self.days * int(self.agent["train_steps_per_day"])
        # at least one step: 0 would mean "no schedule" (a constant rate), not "a very short one"
        resolved = {name: max(1, round(f * run_train_steps)) for name, f in self.run_fractions.items()}
        object.__setattr__(self, "agent", {**self.agent, **resolved})

    @property
    def algorithm(self) -> str:
        return str(self.agent["algorithm"])

    @property
    def timesteps(self) -> int:
        """Every timestep the product logs over the preset's days (the data budget)."""
        return self.days * self.envs * self.steps_per_env

    def trajectory_settings(self) -> TrajectorySettings:
        return TrajectorySettings(**self.trajectory)

    def with_agent(self, **fields: Any) -> GymPreset:
        """This preset with some agent fields replaced (a field given here is no longer a run fraction)."""
        fractions = {name: f for name, f in self.run_fractions.items() if name not in fields}
        return dataclasses.replace(self, agent={**self.agent, **fields}, run_fractions=fractions)


_CARTPOLE_DQN_AGENT: dict[str, Any] = {
    "algorithm": "dqn",
    "fc_layer_params": [100],
    "learning_rate": 1e-3,
    "gamma": 0.99,
    # exploration falls as the agent improves: broad logs first, then logs near the greedy policy,
    # whose drift towards the track's edge the agent must see to learn to avoid it
    "epsilon_greedy": 0.6,
    "epsilon_decay_steps": 8000,
    "epsilon_greedy_final": 0.05,
    "target_update_period": 100,
    "td_errors_loss": "squared",
    "batch_size": 64,
    "train_steps_per_day": 2000,
}

PRESETS: dict[str, GymPreset] = {
    # DQN CartPole-v0, 20,000 timesteps: 199.14 ± 1.63 over 20 runs (benchmarks/LEARNING.md)
    "cartpole": GymPreset(
        env="CartPole-v0",
        agent=_CARTPOLE_DQN_AGENT,
        days=5,
        envs=20,
        steps_per_env=200,
        day_eval_episodes=100,
    ),
    # DDQN CartPole-v0 within RL Bakery's budget of 6,600 timesteps: six small days rather than
    # three larger ones, so the greedy policy's own play is logged (and corrected) more often
    "ddqn_cartpole": GymPreset(
        env="CartPole-v0",
        agent={**_CARTPOLE_DQN_AGENT, "algorithm": "ddqn"},
        days=6,
        envs=10,
        steps_per_env=110,
        day_eval_episodes=100,
    ),
    # DDPG MountainCarContinuous-v0, 50,000 timesteps: 93.47 ± 0.32 over 12 runs
    "mountain_car": GymPreset(
        env="MountainCarContinuous-v0",
        agent={
            "algorithm": "ddpg",
            "actor_fc_layer_params": [64, 64],
            "critic_observation_fc_layer_params": [64],
            "critic_joint_fc_layer_params": [64],
            "actor_learning_rate": 1e-4,
            "critic_learning_rate": 1e-3,
            "target_update_tau": 0.05,  # faster targets: the goal's value must travel ~100 steps back
            "target_update_period": 1,
            "gamma": 0.99,
            "ou_stddev": 0.3,
            "ou_damping": 0.15,
            "batch_size": 64,
            "train_steps_per_day": 6000,
        },
        days=5,
        envs=10,
        steps_per_env=1000,
        day_eval_episodes=20,
        first_day_policy="ou",
    ),
    # Acrobot-v1 within the RL Zoo's 100,000 timesteps (its online DQN: -76.6 ± 11.8), with the
    # Zoo's hyper-parameters: one gradient step per logged timestep, exploration over 12 %
    "acrobot": GymPreset(
        env="Acrobot-v1",
        agent={
            "algorithm": "dqn",
            "fc_layer_params": [256, 256],
            "learning_rate": 6.3e-4,
            "gamma": 0.99,
            "epsilon_greedy": 1.0,
            "epsilon_greedy_final": 0.1,
            "target_update_period": 250,
            "td_errors_loss": "huber",
            "gradient_clipping": 10.0,
            "batch_size": 128,
            "train_steps_per_day": 10_000,
        },
        days=10,
        envs=20,
        steps_per_env=500,
        day_eval_episodes=20,
        run_fractions={"epsilon_decay_steps": 0.12},  # 12,000 of the run's 100,000 train steps
    ),
    # CartPole-v1 (500-step episodes) within the RL Zoo's 50,000 timesteps (its online DQN: 500), with
    # the CartPole-v0 preset's agent. Twenty days of 2,500 timesteps rather than ten of 5,000, so the
    # agent's own play is logged and corrected twice as often; the learning rate decays over the run
    # and exploration ends at 0.02, so the late days hold their policy and log 500-step episodes
    # (half a gradient step per logged timestep, as the Zoo; what else was tried: LEARNING.md)
    "cartpole_v1": GymPreset(
        env="CartPole-v1",
        agent={**_CARTPOLE_DQN_AGENT, "train_steps_per_day": 1250, "epsilon_greedy_final": 0.02},
        days=20,
        envs=10,
        steps_per_env=250,
        day_eval_episodes=20,
        run_fractions={"learning_rate_decay_steps": 1.0},  # to a tenth over the run's 25,000 train steps
    ),
}

# the cartpole preset behind the RL deployment gate: agent_checkpoint[d] trains on the days before d,
# so policy_evaluation[d] judges it on day d's logs before it is deployed (benchmarks/rl_gate.py)
PRESETS["cartpole_gated"] = dataclasses.replace(
    PRESETS["cartpole"], trajectory={**PRESETS["cartpole"].trajectory, "lag_days": 1}
)

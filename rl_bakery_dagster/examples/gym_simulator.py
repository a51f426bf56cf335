"""A simulated product: many gym environments stepped together, logging timesteps as a warehouse would.

A policy may return the actions alone, or `Played(actions, propensities)`: the exact probability
of each action under the policy that played it. Logs then carry an `action_prob` column, which
off-policy evaluation needs (`random_policy` over discrete actions: 1/|A|; `epsilon_greedy`:
(1 - epsilon)·[a = greedy] + epsilon/|A|). Continuous actions log no propensity.

Environments follow TF-Agents' auto-reset semantics (the step after LAST is a FIRST, whatever the
action), so the logged rows are exactly the time steps a TF-Agents driver would see. Policies are
queried once per step for the whole batch.

CartPole is stepped as arrays (`_VectorCartPole`): the same float64 operations, in the same order,
as gym's `CartPoleEnv.step` and `TimeLimit`, so the logs are bit-identical to stepping each gym
environment, at a fraction of the cost. Resets still go through each gym environment, so the
seeding is gym's own. Other environments are stepped one by one.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import gym
import numpy as np
import pandas as pd
from gym.envs.classic_control import acrobot as _gym_acrobot
from gym.envs.classic_control.cartpole import CartPoleEnv
from gym.wrappers.order_enforcing import OrderEnforcing
from gym.wrappers.time_limit import TimeLimit

from rl_bakery_dagster.application import FIRST, LAST, MID, EvaluationResult


def _acrobot_rk4(derivs: Callable[[np.ndarray], object], y0: object, t: list[float]) -> np.ndarray:
    """gym 0.23's Acrobot integrator, unchanged but for `np.float_` (removed in NumPy 2): float64."""
    yout = np.zeros((len(t), len(y0)), np.float64)  # type: ignore[arg-type]
    yout[0] = y0
    for i in np.arange(len(t) - 1):
        this = t[i]
        dt = t[i + 1] - this
        dt2 = dt / 2.0
        y0 = yout[i]
        k1 = np.asarray(derivs(y0))
        k2 = np.asarray(derivs(y0 + dt2 * k1))
        k3 = np.asarray(derivs(y0 + dt2 * k2))
        k4 = np.asarray(derivs(y0 + dt * k3))
        yout[i + 1] = y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return yout[-1][:4]


# gym 0.23 (pinned: TF-Agents' gym API) steps Acrobot through a module-level `rk4` that
# NumPy 2 cannot run; its step looks the function up at call time, so this one takes its place
_gym_acrobot.rk4 = _acrobot_rk4


class Played(NamedTuple):
    """Actions a policy played and the exact probability of each under that policy."""

    actions: np.ndarray
    propensities: np.ndarray


BatchPolicy = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], "np.ndarray | Played"]
"""(step_type [B], reward [B], discount [B], observation [B, obs]) → actions [B] or [B, action],
or `Played` (actions with their propensities)."""


class _VectorCartPole:
    """gym's CartPole (euler) behind `TimeLimit(OrderEnforcing(...))`, stepped for all envs at once.

    `math.cos`, `math.sin` and `**` run per element because numpy's vectorised versions may round
    differently from the C library gym calls; everything else is elementwise float64, in gym's order.
    """

    def __init__(self, envs: list[gym.Env]) -> None:
        core: CartPoleEnv = envs[0].unwrapped
        self.envs = envs
        self.gravity, self.total_mass, self.length = core.gravity, core.total_mass, core.length
        self.masspole, self.polemass_length = core.masspole, core.polemass_length
        self.force_mag, self.tau = core.force_mag, core.tau
        self.x_threshold, self.theta_threshold = core.x_threshold, core.theta_threshold_radians
        self.max_steps = np.asarray([env._max_episode_steps for env in envs], dtype=np.int64)
        self.state = np.asarray([env.unwrapped.state for env in envs], dtype=np.float64)
        self.elapsed = np.zeros(len(envs), dtype=np.int64)

    @staticmethod
    def fits(envs: list[gym.Env]) -> bool:
        """True when every env is exactly gym's CartPole, euler-integrated, behind the default wrappers."""
        return all(
            type(env) is TimeLimit
            and type(env.env) is OrderEnforcing
            and type(env.env.env) is CartPoleEnv
            and env.unwrapped.kinematics_integrator == "euler"
            and env.unwrapped.state is not None
            for env in envs
        )

    def reset(self, index: int) -> np.ndarray:
        observation = self.envs[index].reset()
        self.state[index] = self.envs[index].unwrapped.state
        self.elapsed[index] = 0
        return observation

    def step(self, actions: np.ndarray, live: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advances the `live` envs; returns their float32 observations, terminal and done flags."""
        if actions.ndim != 1:
            raise AssertionError(f"CartPole takes one discrete action per env, got shape {actions.shape}")
        chosen = actions[live]
        ids = np.trunc(chosen) if chosen.dtype.kind == "f" else chosen
        if not (np.isfinite(ids).all() and ((ids == 0) | (ids == 1)).all()):
            raise AssertionError(f"{chosen[(ids != 0) & (ids != 1)][:5]!r} invalid CartPole actions")
        x, x_dot, theta, theta_dot = self.state[live].T
        force = np.where(ids == 1, self.force_mag, -self.force_mag)
        costheta = np.fromiter(map(math.cos, theta.tolist()), np.float64, len(theta))
        sintheta = np.fromiter(map(math.sin, theta.tolist()), np.float64, len(theta))
        theta_dot_sq = np.fromiter((v**2 for v in theta_dot.tolist()), np.float64, len(theta))
        costheta_sq = np.fromiter((v**2 for v in costheta.tolist()), np.float64, len(theta))
        temp = (force + self.polemass_length * theta_dot_sq * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta_sq / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        state = np.stack(
            [
                x + self.tau * x_dot,
                x_dot + self.tau * xacc,
                theta + self.tau * theta_dot,
                theta_dot + self.tau * thetaacc,
            ],
            axis=1,
        )
        self.state[live] = state
        terminal = (
            (state[:, 0] < -self.x_threshold)
            | (state[:, 0] > self.x_threshold)
            | (state[:, 2] < -self.theta_threshold)
            | (state[:, 2] > self.theta_threshold)
        )
        self.elapsed[live] += 1
        done = terminal | (self.elapsed[live] >= self.max_steps[live])
        return state.astype(np.float32), terminal, done


@dataclass
class BatchedGym:
    """`num_envs` gym environments stepped as one batch."""

    env_name: str
    num_envs: int
    seed: int

    def __post_init__(self) -> None:
        self.envs = [gym.make(self.env_name) for _ in range(self.num_envs)]
        observations = []
        for index, env in enumerate(self.envs):
            observations.append(env.reset(seed=self.seed + index))
            env.action_space.seed(self.seed + index)
        self.observation = np.asarray(observations, dtype=np.float32)
        self.step_type = np.full(self.num_envs, FIRST, dtype=np.int32)
        self.reward = np.zeros(self.num_envs, dtype=np.float32)
        self.discount = np.ones(self.num_envs, dtype=np.float32)
        self.timestep = np.zeros(self.num_envs, dtype=np.int64)
        self._cartpole = _VectorCartPole(self.envs) if _VectorCartPole.fits(self.envs) else None

    def step(self, actions: np.ndarray) -> None:
        if self._cartpole is not None:
            self._step_cartpole(np.asarray(actions))
        else:
            self._step_each(actions)
        self.timestep += 1

    def _step_cartpole(self, actions: np.ndarray) -> None:
        assert self._cartpole is not None
        last = self.step_type == LAST
        live = ~last
        if live.any():
            observation, terminal, done = self._cartpole.step(actions, live)
            self.observation[live] = observation
            self.reward[live] = 1.0
            self.step_type[live] = np.where(done, LAST, MID)
            self.discount[live] = np.where(terminal, 0.0, 1.0)
        for index in np.flatnonzero(last):
            self.observation[index] = self._cartpole.reset(int(index))
        self.reward[last], self.step_type[last], self.discount[last] = 0.0, FIRST, 1.0

    def _step_each(self, actions: np.ndarray) -> None:
        for index, env in enumerate(self.envs):
            if self.step_type[index] == LAST:
                observation, reward, step_type, discount = env.reset(), 0.0, FIRST, 1.0
            else:
                observation, reward, done, info = env.step(
                    int(actions[index]) if actions.ndim == 1 else actions[index]
                )
                step_type = LAST if done else MID
                discount = 1.0 if not done or info.get("TimeLimit.truncated", False) else 0.0
            self.observation[index] = observation
            self.reward[index], self.step_type[index], self.discount[index] = (
                reward,
                step_type,
                discount,
            )

    @property
    def action_space(self) -> gym.Space:
        return self.envs[0].action_space

    def log(self, policy: BatchPolicy, steps: int, observation_columns: tuple[str, ...]) -> pd.DataFrame:
        """Plays `steps` steps in every environment and returns the logged timesteps (step-major rows)."""
        discrete = isinstance(self.action_space, gym.spaces.Discrete)
        if len(observation_columns) != self.observation.shape[1]:
            raise ValueError(
                f"{len(observation_columns)} observation columns for observations of size "
                f"{self.observation.shape[1]}"
            )
        observations = np.empty((steps, *self.observation.shape), dtype=np.float32)
        step_types = np.empty((steps, self.num_envs), dtype=np.int32)
        timesteps = np.empty((steps, self.num_envs), dtype=np.int64)
        rewards = np.empty((steps, self.num_envs), dtype=np.float32)
        discounts = np.empty((steps, self.num_envs), dtype=np.float32)
        actions: list[np.ndarray] = []
        propensities: list[np.ndarray | None] = []
        for step in range(steps):
            played = policy(self.step_type, self.reward, self.discount, self.observation)
            if isinstance(played, Played):
                action, propensity = np.asarray(played.actions), np.asarray(played.propensities, np.float64)
            else:
                action, propensity = np.asarray(played), None
            propensities.append(propensity)
            observations[step], step_types[step], timesteps[step] = (
                self.observation,
                self.step_type,
                self.timestep,
            )
            rewards[step], discounts[step] = self.reward, self.discount
            actions.append(action)
            self.step(action)
        rows = steps * self.num_envs
        frame = pd.DataFrame(
            {
                "user_id": np.tile(np.arange(self.num_envs, dtype=np.int64), steps),
                "ts": timesteps.reshape(rows),
                "step_type": step_types.reshape(rows),
            }
        )
        flat_observations = observations.reshape(rows, -1).astype(np.float64)
        for index, column in enumerate(observation_columns):
            frame[column] = flat_observations[:, index]
        stacked = np.stack(actions) if actions else np.empty((0, self.num_envs))
        stacked = stacked.reshape(rows, *stacked.shape[2:])
        frame["action"] = stacked.astype(np.int64) if discrete else list(stacked.astype(np.float32))
        frame["reward"] = rewards.reshape(rows).astype(np.float64)
        frame["discount"] = discounts.reshape(rows).astype(np.float64)
        logged = [p is not None for p in propensities]
        if logged and all(logged):
            frame["action_prob"] = np.stack(propensities).reshape(rows)  # type: ignore[arg-type]
        elif any(logged):
            raise ValueError("the policy returned propensities on some steps only")
        return frame


def random_policy(space: gym.Space, seed: int) -> BatchPolicy:
    """Uniform actions over a gym `Discrete` (played with propensity 1/|A|) or `Box` space."""
    rng = np.random.default_rng(seed)
    if isinstance(space, gym.spaces.Discrete):
        size = int(space.n)
        return lambda step_type, reward, discount, observation: Played(
            rng.integers(0, size, len(step_type)), np.full(len(step_type), 1.0 / size)
        )
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return lambda step_type, reward, discount, observation: rng.uniform(
        low, high, (len(step_type), *low.shape)
    ).astype(np.float32)


def tf_policy(policy: object) -> BatchPolicy:
    """Batched actions from a TF-Agents policy or a `PolicySaver` SavedModel loaded back."""
    import tensorflow as tf
    from tf_agents.trajectories import time_step as ts

    @tf.function
    def act(
        step_type: tf.Tensor, reward: tf.Tensor, discount: tf.Tensor, observation: tf.Tensor
    ) -> tf.Tensor:
        time_step = ts.TimeStep(step_type, reward, discount, observation)
        return policy.action(time_step, ()).action  # type: ignore[attr-defined]

    def run(
        step_type: np.ndarray, reward: np.ndarray, discount: np.ndarray, observation: np.ndarray
    ) -> np.ndarray:
        return act(
            tf.constant(step_type, tf.int32),
            tf.constant(reward, tf.float32),
            tf.constant(discount, tf.float32),
            tf.constant(observation, tf.float32),
        ).numpy()

    return run


def epsilon_greedy(greedy: BatchPolicy, epsilon: float, num_actions: int, seed: int) -> BatchPolicy:
    """Epsilon-greedy around `greedy` (a policy returning actions), logging exact propensities.

    Plays what TF-Agents' exported collect policy plays (with probability epsilon a uniform
    action, else the greedy one), but knows the probability of the action it played, which
    TF-Agents' own log-probability understates for the greedy action.
    """
    from rl_bakery_dagster.transforms.scoring import epsilon_greedy_probability

    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    rng = np.random.default_rng(seed)

    def play(
        step_type: np.ndarray, reward: np.ndarray, discount: np.ndarray, observation: np.ndarray
    ) -> Played:
        best = np.asarray(greedy(step_type, reward, discount, observation)).astype(np.int64)
        explore = rng.random(len(best)) < epsilon
        action = np.where(explore, rng.integers(0, num_actions, len(best)), best)
        return Played(action, epsilon_greedy_probability(action, best, epsilon, num_actions))

    return play


def deployed_policy(
    checkpoint_uri: str | None, num_actions: int, seed: int, min_epsilon: float | None = None
) -> BatchPolicy:
    """What the product plays from an `agent_checkpoint` folder: its greedy SavedModel, epsilon-greedy
    with the epsilon the checkpoint recorded (at least `min_epsilon`, when the deployment gate asks
    for more exploration), logging exact propensities (discrete actions). None: uniformly random."""
    if checkpoint_uri is None:
        return random_policy(gym.spaces.Discrete(num_actions), seed)
    from rl_bakery_dagster.checkpoint_format import GREEDY_POLICY
    from rl_bakery_dagster.checkpoint_settings import deployed_checkpoint_record, read_local_metrics
    from rl_bakery_dagster.transforms.scoring import load_policy

    record = deployed_checkpoint_record(read_local_metrics(checkpoint_uri), True, checkpoint_uri)
    greedy = tf_policy(load_policy(os.path.join(checkpoint_uri, GREEDY_POLICY)))
    epsilon = max(record.epsilon, min_epsilon) if min_epsilon is not None else record.epsilon
    return epsilon_greedy(greedy, epsilon, num_actions, seed)


def canary_envs(num_envs: int, share: float, seed: int) -> np.ndarray:
    """Which of `num_envs` simulated users are in a canary of `share`: round(share * num_envs) of them
    (at least one), drawn by `seed`. (The product's `action_batch` hashes user ids instead; a simulator
    with a handful of users draws an exact count so that every canary gets users.)"""
    chosen = np.zeros(num_envs, dtype=bool)
    count = min(num_envs, max(1, round(share * num_envs)))
    chosen[np.random.default_rng(seed).permutation(num_envs)[:count]] = True
    return chosen


def split_policy(others: BatchPolicy, canary: BatchPolicy, in_canary: np.ndarray) -> BatchPolicy:
    """`canary` plays the envs where `in_canary` is True and `others` the rest, each with its propensities."""

    def play(
        step_type: np.ndarray, reward: np.ndarray, discount: np.ndarray, observation: np.ndarray
    ) -> Played:
        first = others(step_type, reward, discount, observation)
        second = canary(step_type, reward, discount, observation)
        if not (isinstance(first, Played) and isinstance(second, Played)):
            raise ValueError("a canary splits policies that log propensities (discrete actions)")
        return Played(
            np.where(in_canary, second.actions, first.actions),
            np.where(in_canary, second.propensities, first.propensities),
        )

    return play


def evaluate(policy: BatchPolicy, env_name: str, episodes: int, seed: int) -> EvaluationResult:
    """Plays one episode in each of `episodes` environments and reports the returns."""
    batch = BatchedGym(env_name, episodes, seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        played = policy(batch.step_type, batch.reward, batch.discount, batch.observation)
        batch.step(np.asarray(played.actions if isinstance(played, Played) else played))
        returns += np.where(running, batch.reward, 0.0)
        running &= batch.step_type != LAST
    return EvaluationResult(float(returns.mean()), float(returns.std()), episodes)


def write_day(frame: pd.DataFrame, warehouse_uri: str, day: str) -> str:
    """Writes a day of logs as the warehouse would: a Parquet folder, then its `_SUCCESS` marker."""
    final = os.path.join(warehouse_uri, f"dt={day}")
    staging = os.path.join(warehouse_uri, f"_staging-{uuid.uuid4().hex}")
    os.makedirs(staging)
    frame.to_parquet(os.path.join(staging, "part-00000.parquet"), index=False)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
    open(os.path.join(final, "_SUCCESS"), "w").close()
    return final

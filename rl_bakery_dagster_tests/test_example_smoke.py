"""Each new gym example learns through its own daily pipeline: two tiny days beat any random run.

The bar is not taken from the trained result: it is measured from the random policy, with the
same simulator and the same number of evaluation episodes. `random_runs` random-policy runs are
played; the bar is their median plus twice the largest deviation above it (median + 2 * (max -
median)), so a random run would have to beat the best of many random runs by as much again.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CARTPOLE_SMOKE_AGENT = {  # the CartPole DQN preset's learning settings, scaled to two short days
    "fc_layer_params": [100],
    "learning_rate": 1e-3,
    "target_update_period": 100,
    "epsilon_greedy": 0.6,
    "epsilon_decay_steps": 2000,
    "epsilon_greedy_final": 0.05,
    "train_steps_per_day": 1000,
}
EXAMPLES: dict[str, dict[str, Any]] = {
    # tiny sizes: two days of 2,000-5,000 timesteps and 1,000-1,500 train steps
    "ddqn_cartpole": {
        "sizes": {"days": 2, "envs": 10, "steps_per_env": 200, "day_eval_episodes": 10},
        "agent": CARTPOLE_SMOKE_AGENT,
        "episodes": 20,
        "random_runs": 300,
    },
    "cartpole_v1": {
        "sizes": {"days": 2, "envs": 10, "steps_per_env": 200, "day_eval_episodes": 10},
        "agent": CARTPOLE_SMOKE_AGENT,
        "episodes": 20,
        "random_runs": 300,
    },
    "acrobot": {
        "sizes": {"days": 2, "envs": 20, "steps_per_env": 250, "day_eval_episodes": 5},
        "agent": {
            "fc_layer_params": [64, 64],
            "learning_rate": 1e-3,
            "target_update_period": 100,
            "epsilon_decay_steps": 1500,
            "train_steps_per_day": 1500,
        },
        "episodes": 5,
        "random_runs": 20,
    },
}


def random_bar(env: str, episodes: int, runs: int) -> float:
    """median + 2 * (max - median) of `runs` random-policy runs' mean returns over `episodes` episodes."""
    import gym

    from rl_bakery_dagster.examples.gym_simulator import LAST, BatchedGym, random_policy

    size = episodes * runs  # one batch: each run is `episodes` of its environments
    batch = BatchedGym(env, size, seed=900_000_000)  # seeds apart from every logged or evaluated day
    policy = random_policy(gym.make(env).action_space, seed=9)
    returns = np.zeros(size)
    running = np.ones(size, dtype=bool)
    while running.any():
        batch.step(
            np.asarray(policy(batch.step_type, batch.reward, batch.discount, batch.observation).actions)
        )
        returns += np.where(running, batch.reward, 0.0)
        running &= batch.step_type != LAST
    means = returns.reshape(runs, episodes).mean(axis=1)
    median = float(np.median(means))
    return median + 2 * (float(means.max()) - median)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_two_tiny_days_beat_every_random_run(
    name: str, spark: object, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example's own application and day loop learn: the greedy policy after two days beats the bar."""
    import dagster as dg

    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster.examples.gym_days import example_application, final_evaluation, play_days
    from rl_bakery_dagster.examples.presets import PRESETS

    settings = EXAMPLES[name]
    preset = dataclasses.replace(PRESETS[name], **settings["sizes"]).with_agent(**settings["agent"])
    monkeypatch.setenv(f"{name.upper()}_EVAL_EPISODES", str(preset.day_eval_episodes))
    app = example_application(name, preset, seed=0, warehouse=str(home / "warehouse"))
    assert app.name == name
    defs = build_definitions(app, home=home)
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    days = list(play_days(app, defs, instance, preset, seed=0, first_day=app.start_date))
    assert [day.played_by for day in days] == ["random (uniform)", "collect"]
    assert [day.timesteps for day in days] == [preset.envs * preset.steps_per_env] * 2

    final = final_evaluation(app, defs, preset, 0, days[-1].day, settings["episodes"])
    bar = random_bar(preset.env, settings["episodes"], settings["random_runs"])
    assert final.mean_return > bar, (name, final, bar, [day.eval_return_mean for day in days])


def test_gated_example_plays_what_its_gate_deployed(
    spark: object, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cartpole_gated`: every day after the first is played by the checkpoint the gate deployed the
    day before (the newest accepted one, by the gate or by its canary; uniform play before any), and a
    candidate with not enough evidence by its canary's players; each row carries its policy's
    version and epsilon; the candidates still learn."""
    import dagster as dg
    import pandas as pd

    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster.evaluation.estimators import ACCEPTED, NOT_ENOUGH_EVIDENCE, REFUSED
    from rl_bakery_dagster.examples.gym_days import example_application, final_evaluation, play_days
    from rl_bakery_dagster.examples.presets import PRESETS

    sizes = {"days": 3, "envs": 10, "steps_per_env": 200, "day_eval_episodes": 10}
    preset = dataclasses.replace(PRESETS["cartpole_gated"], **sizes).with_agent(**CARTPOLE_SMOKE_AGENT)
    assert preset.trajectory["lag_days"] == 1
    monkeypatch.setenv("CARTPOLE_GATED_EVAL_EPISODES", "10")
    app = example_application("cartpole_gated", preset, seed=0, warehouse=str(home / "warehouse"))
    defs = build_definitions(app, home=home)
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    gate = {"fqe_train_steps": 300, "replicates": 50}
    days = list(play_days(app, defs, instance, preset, 0, app.start_date, evaluation_config=gate))

    assert {day.gate for day in days} <= {ACCEPTED, REFUSED, NOT_ENOUGH_EVIDENCE}
    newest_accepted: list[str | None] = []
    last: str | None = None
    for before, day in zip([None, *days], days, strict=False):  # the deployment rule, by hand
        if day.canary_verdict == ACCEPTED:  # the previous day's canary, judged on this day's logs
            assert before is not None and before.canary is not None
            last = before.canary
        if day.gate == ACCEPTED:
            last = day.day
        newest_accepted.append(last)
        assert (day.canary == day.day) == (day.gate == NOT_ENOUGH_EVIDENCE), day
        assert (day.canary_verdict is not None) == (before is not None and before.canary is not None), day
    assert [day.deployed for day in days] == newest_accepted
    # epsilon by hand: 0.6 -> 0.05 linearly over 2,000 train steps; with lag 1, day k's checkpoint
    # has trained 1,000 steps on each of the k - 1 days before it
    epsilon = {day.day: max(0.05, 0.6 - 0.55 * 1000 * index / 2000) for index, day in enumerate(days)}

    def propensities(rows: pd.DataFrame) -> list[float]:
        return sorted({round(float(p), 6) for p in rows["action_prob"]})

    def epsilon_greedy(rate: float) -> list[float]:
        return sorted({round(rate / 2, 6), round(1 - rate / 2, 6)})

    for before, day in itertools.pairwise(days):
        logged = pd.read_parquet(f"{home / 'warehouse'}/dt={day.day}")
        tried = logged.policy_version.str.startswith(f"cartpole_gated@{before.canary}#")
        if before.canary is not None:  # round(20 % of 10 players) play the canary, at its own epsilon
            assert tried.sum() == 2 * preset.steps_per_env, day
            assert propensities(logged[tried]) == epsilon_greedy(epsilon[before.canary]), day
            assert f"2 players: agent_checkpoint[{before.canary}] (canary)" in day.played_by
        else:
            assert not tried.any()
        others = logged[~tried]
        if before.deployed is None:
            assert day.played_by.startswith("random (uniform)"), day
            assert propensities(others) == [0.5]
            assert set(others.policy_version) == {"cartpole_gated@uniform_random"}
        else:
            assert day.played_by.startswith(f"agent_checkpoint[{before.deployed}] (deployed by the gate)")
            rate = epsilon[before.deployed]
            assert propensities(others) == epsilon_greedy(rate), (day, rate)
            assert all(v.startswith(f"cartpole_gated@{before.deployed}#") for v in set(others.policy_version))

    final = final_evaluation(app, defs, preset, 0, days[-1].day, 20)
    assert final.mean_return > random_bar(preset.env, 20, 300), (final, [day.gate for day in days])


def test_every_example_module_is_runnable_and_listed_in_the_workspace(home: Path) -> None:
    """Each preset has an example application, Dagster definitions and a workspace.yaml location."""
    import dagster as dg
    import yaml

    from rl_bakery_dagster.examples.gym_days import APPLICATIONS
    from rl_bakery_dagster.examples.presets import PRESETS

    assert set(APPLICATIONS) == set(PRESETS)
    workspace = yaml.safe_load((Path(__file__).resolve().parents[1] / "workspace.yaml").read_text())
    locations = {entry["python_module"]["location_name"] for entry in workspace["load_from"]}
    assert set(PRESETS) <= locations
    for name in PRESETS:
        definitions = importlib.import_module(f"rl_bakery_dagster.examples.{name}.definitions")
        assert isinstance(definitions.defs, dg.Definitions)
        agent = definitions.defs.resources["agent"]
        if name != "cartpole":  # the cartpole example's train steps follow CARTPOLE_TRAIN_STEPS_PER_DAY
            assert agent.resolved() == {**agent.resolved(), **PRESETS[name].agent}, name
    gated = importlib.import_module("rl_bakery_dagster.examples.cartpole_gated.definitions").defs
    evaluation = gated.resolve_assets_def(dg.AssetKey(["cartpole_gated", "policy_evaluation"]))
    (gate,) = evaluation.check_specs  # the RL gate's own description: its estimator and RL's default
    assert "bootstrap interval over episodes" in (gate.description or "")
    assert "(by default the last accepted checkpoint, and the candidate to a canary" in (
        gate.description or ""
    )
    for name in ("cartpole", "ddqn_cartpole", "acrobot", "cartpole_v1", "cartpole_gated"):
        assert importlib.util.find_spec(f"rl_bakery_dagster.examples.{name}.__main__") is not None


def test_example_command_line_prints_each_day_and_the_final_evaluation(home: Path) -> None:
    """`python -m rl_bakery_dagster.examples.<name>` runs in a fresh home and refuses a used one."""
    command = [sys.executable, "-m", "rl_bakery_dagster.examples.ddqn_cartpole"]
    command += [
        "--days",
        "2",
        "--envs",
        "2",
        "--steps-per-env",
        "20",
        "--train-steps",
        "5",
        "--eval-episodes",
        "3",
    ]
    environment = {**os.environ, "RL_BAKERY_SPARK_MASTER": "local[1]"}
    done = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"home: {home}  (CartPole-v0, 80 timesteps over 2 days)"), lines
    assert lines[1].startswith("2024-01-01: 40 timesteps played by random (uniform); trained "), lines
    assert lines[2].startswith("2024-01-02: 40 timesteps played by collect; trained 5 steps"), lines
    assert lines[3].startswith("final greedy policy (2024-01-02): ") and "over 3 episodes" in lines[3], lines
    again = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert again.returncode != 0 and "already holds days" in again.stderr, again.stderr[-3000:]

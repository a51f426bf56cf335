"""Schedules that span a run follow the run's length, in the examples and in the benchmark.

The expected step counts are hand products of the sizes LEARNING.md publishes: CartPole-v1's
learning rate decays over all 20 x 1,250 train steps, Acrobot's exploration over 12 % of its
10 x 10,000 (the RL Zoo's exploration fraction).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import pytest

from rl_bakery_dagster.examples.gym_days import parse_command_line
from rl_bakery_dagster.examples.presets import PRESETS

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_the_published_presets_resolve_to_the_published_step_counts() -> None:
    assert PRESETS["cartpole_v1"].agent["learning_rate_decay_steps"] == 25_000
    assert PRESETS["acrobot"].agent["epsilon_decay_steps"] == 12_000
    assert PRESETS["cartpole"].agent["epsilon_decay_steps"] == 8_000  # a day-count schedule stays fixed
    assert "learning_rate_decay_steps" not in PRESETS["cartpole"].agent


@pytest.mark.parametrize(
    ("days", "train_steps", "decay_steps"),
    [(20, 2_500, 50_000), (10, 5_000, 50_000), (4, 1_000, 4_000), (1, 3, 3)],
)
def test_a_longer_or_shorter_run_stretches_the_learning_rate_decay(
    days: int, train_steps: int, decay_steps: int
) -> None:
    preset = PRESETS["cartpole_v1"].with_agent(train_steps_per_day=train_steps)
    preset = dataclasses.replace(preset, days=days)
    assert preset.agent["learning_rate_decay_steps"] == decay_steps
    assert preset.agent["epsilon_decay_steps"] == 8_000


def test_the_example_command_line_resolves_the_schedule_for_its_own_sizes() -> None:
    preset, _ = parse_command_line("cartpole_v1", ["--days", "40"])
    assert preset.agent["learning_rate_decay_steps"] == 40 * 1_250
    preset, _ = parse_command_line("cartpole_v1", ["--days", "3", "--train-steps", "700"])
    assert preset.agent["learning_rate_decay_steps"] == 3 * 700
    preset, _ = parse_command_line("acrobot", ["--days", "5", "--train-steps", "400"])
    assert preset.agent["epsilon_decay_steps"] == round(0.12 * 5 * 400)
    preset, _ = parse_command_line("cartpole_v1", [])
    assert preset.agent == PRESETS["cartpole_v1"].agent


def test_a_run_too_short_for_a_whole_step_still_has_a_schedule() -> None:
    """0 decay steps means a constant rate: a tiny run must not turn Acrobot's decay off."""
    preset, _ = parse_command_line("acrobot", ["--days", "1", "--train-steps", "4"])
    assert preset.agent["epsilon_decay_steps"] == 1  # 0.12 x 4 = 0.48 train steps


def test_a_step_count_given_explicitly_is_kept_whatever_the_run_length() -> None:
    preset = PRESETS["cartpole_v1"].with_agent(learning_rate_decay_steps=7)
    assert dataclasses.replace(preset, days=30).agent["learning_rate_decay_steps"] == 7
    assert preset.with_agent(train_steps_per_day=9).agent["learning_rate_decay_steps"] == 7


def test_the_benchmark_stretches_the_schedule_unless_its_agent_json_names_the_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    learning = importlib.import_module("learning")
    spec = learning.build_preset(learning.parse_args(["--preset", "cartpole_v1", "--days", "4"]))
    assert spec.agent["learning_rate_decay_steps"] == 4 * 1_250
    spec = learning.build_preset(learning.parse_args(["--preset", "acrobot", "--train-steps", "500"]))
    assert spec.agent["epsilon_decay_steps"] == round(0.12 * 10 * 500)
    argv = ["--preset", "cartpole_v1", "--days", "4", "--agent", '{"learning_rate_decay_steps": 123}']
    spec = learning.build_preset(learning.parse_args(argv))
    assert spec.agent["learning_rate_decay_steps"] == 123

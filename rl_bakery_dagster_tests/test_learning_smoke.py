"""benchmarks/learning.py end to end, tiny: one run, two simulated days through the daily job."""

import importlib
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def learning(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("learning")


def test_learning_benchmark_prints_its_result_as_the_last_line(
    learning: object,
    spark: object,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "argv", ["learning.py"])
    workdir = tmp_path / "runs"
    workdir.mkdir()
    argv = ["--algo", "dqn", "--runs", "1", "--days", "2", "--envs", "4", "--steps-per-env", "50"]
    argv += ["--train-steps", "30", "--eval-episodes", "5", "--day-eval-episodes", "3"]
    argv += ["--agent", '{"fc_layer_params": [16], "batch_size": 16}', "--workdir", str(workdir)]
    returned = learning.main(argv, spark=spark)  # type: ignore[attr-defined]

    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result == json.loads(json.dumps(returned, default=str))
    types = {
        "algo": str,
        "env": str,
        "mean_reward": float,
        "std_reward": float,
        "n_runs": int,
        "n_timesteps": int,
        "n_days": int,
        "wall_seconds": float,
    }
    for key, kind in types.items():
        assert isinstance(result[key], kind), (key, result[key])
    assert (result["algo"], result["env"]) == ("dqn", "CartPole-v0")
    assert (result["n_runs"], result["n_days"], result["n_timesteps"]) == (1, 2, 2 * 4 * 50)
    assert 8.0 <= result["mean_reward"] <= 200.0  # CartPole-v0 returns, whatever was learnt
    assert result["std_reward"] == 0.0  # one run
    assert 0 < result["wall_seconds"] < 600
    assert result["returns"] == [result["mean_reward"]]
    assert result["hyperparameters"]["agent"]["fc_layer_params"] == [16]

    (run,) = result["per_run"]
    assert [day["day"] for day in run["days"]] == ["2024-01-01", "2024-01-02"]
    assert [day["played_by"] for day in run["days"]] == ["random (uniform)", "collect"]
    assert all(day["train_steps"] == 30 for day in run["days"])
    # each checkpoint's evaluation is float metadata, so the Dagster UI plots it across days
    assert run["eval_return_metadata_types"] == ["FloatMetadataValue"]
    assert all(math.isfinite(day["eval_return_mean"]) for day in run["days"])
    assert list(workdir.iterdir()) == []  # the run's temporary home is removed


def test_online_baseline_trains_gradient_steps_after_each_rollout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`benchmarks/online_dqn.py`, tiny: a random warm-up, then `gradient_steps` per rollout."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    online = importlib.import_module("online_dqn")
    argv = ["--preset", "cartpole", "--timesteps", "700", "--learning-starts", "100", "--envs", "2"]
    argv += ["--train-freq", "200", "--gradient-steps", "7", "--eval-episodes", "3", "--seed", "4"]
    argv += ["--agent", '{"fc_layer_params": [8], "batch_size": 8}']
    result = online.main(argv)  # type: ignore[attr-defined]

    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["per_run"] == result["per_run"]
    (run,) = result["per_run"]
    # 100 random steps, then rollouts of 200 while one more fits in 700: 100 + 3 * 200 = 700
    assert (run["environment_steps"], run["train_steps"]) == (700, 3 * 7)
    # the buffer also holds each episode's reset frame, and 700 CartPole steps end several episodes
    assert run["frames"] > run["environment_steps"]
    assert run["seed"] == 4 and result["agent_overrides"]["fc_layer_params"] == [8]
    assert result["mean_reward"] == run["final_return_mean"] and result["std_reward"] == 0.0

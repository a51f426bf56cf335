"""A run config can change the agent only where it says so, and never under a checkpoint chain.

Dagster 1.13 rebuilt a resource from its *class* defaults for every field a run config omits, so
setting one field in the launchpad silently trained another agent. These tests set one field of
each type through real runs and check both the agent that was built (its variables) and the
settings its checkpoint records; a structural change under an existing chain must be refused
with a sentence; deployments must use the epsilon the checkpoint recorded, not the live resource.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from rl_bakery_dagster.application import ParquetWarehouse
from rl_bakery_dagster.checkpoint_format import CHECKPOINT, CHECKPOINT_PREFIX, METRICS
from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.training.checkpoints import read_metrics
from rl_bakery_dagster_tests.apps import (
    START,
    TINY_AGENT,
    definitions,
    log_random_days,
    stored,
    tiny_cartpole,
)

APP_AGENT = {
    "algorithm": "ddqn",  # class default: dqn
    "td_errors_loss": "huber",  # class default: squared
    "fc_layer_params": [16],  # class default: [100]
    "learning_rate": 3e-3,  # class default: 1e-3
    "gradient_clipping": 5.0,  # class default: None
    "epsilon_greedy": 0.25,  # class default: 0.1
    "batch_size": 16,  # class default: 64
    "train_steps_per_day": 12,  # class default: 1000
}
"""The application's agent: every field named here differs from the resource class default."""


def checkpoint_dir(home: Path, day: str) -> Path:
    return stored(home, "cartpole", "agent_checkpoint", day)


def committed(home: Path, day: str) -> bool:
    try:
        return checkpoint_dir(home, day).is_dir()
    except FileNotFoundError:
        return False


def kernel_shapes(home: Path, day: str) -> list[tuple[int, ...]]:
    """Shapes of the Q-network's kernels, read from the TF checkpoint on disk."""
    reader = tf.train.load_checkpoint(str(checkpoint_dir(home, day) / CHECKPOINT / CHECKPOINT_PREFIX))
    shapes = reader.get_variable_to_shape_map()
    return sorted(
        tuple(shape)
        for name, shape in shapes.items()
        if "_q_network" in name
        and "kernel" in name
        and "/.ATTRIBUTES" in name
        and "target" not in name
        and "OPTIMIZER" not in name
    )


def agent_config(**fields: object) -> dict:
    return {"resources": {"agent": {"config": fields}}}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.event_specific_data.error.message


@pytest.mark.parametrize(
    "override",
    [
        {},  # nothing overridden: every value is the application's (Literal fields included)
        {"epsilon_greedy": 0.4},  # a float
        {"td_errors_loss": "squared"},  # a Literal
        {"fc_layer_params": [8, 4]},  # a list (allowed on the first day of a chain)
        {"gradient_clipping": None},  # an optional set to None
        {"train_steps_per_day": 7},  # an int
    ],
)
def test_a_partial_run_config_keeps_every_other_application_value(
    spark: object, home: Path, override: dict
) -> None:
    log_random_days(home, 1)
    app = tiny_cartpole(home, **APP_AGENT)
    job = definitions(home, app).resolve_job_def(DAILY_JOB)
    assert job.execute_in_process(partition_key=START, run_config=agent_config(**override)).success

    expected = {**TFAgentsResource(**{**TINY_AGENT, **APP_AGENT}).model_dump(mode="json"), **override}
    recorded = read_metrics(str(checkpoint_dir(home, START)))
    assert recorded["settings"] == expected
    assert recorded["total_train_steps"] == expected["train_steps_per_day"]
    layers = expected["fc_layer_params"]
    inputs = [len(OBSERVATION_COLUMNS), *layers[:-1]]
    assert kernel_shapes(home, START) == sorted([*zip(inputs, layers, strict=True), (layers[-1], 2)])


def test_the_launchpad_shows_the_application_values_as_defaults(tmp_path: Path) -> None:
    defs = definitions(tmp_path, tiny_cartpole(tmp_path, **APP_AGENT))
    job = defs.resolve_job_def(DAILY_JOB)
    fields = job.run_config_schema.config_type.fields["resources"].config_type.fields["agent"]
    config_fields = fields.config_type.fields["config"].config_type.fields
    for name, value in APP_AGENT.items():
        assert not config_fields[name].is_required, name
        assert config_fields[name].default_value == value, name


def test_a_structural_change_under_a_chain_is_refused_and_a_schedule_change_is_recorded(
    spark: object, home: Path
) -> None:
    log_random_days(home, 2)
    day2 = shift_day(START, 1)
    job = definitions(home, tiny_cartpole(home, **APP_AGENT)).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(partition_key=START, instance=instance).success

    for field, new in (("fc_layer_params", [8]), ("algorithm", "dqn")):  # dqn ← ddqn restores silently
        result = job.execute_in_process(
            partition_key=day2,
            run_config=agent_config(**{field: new}),
            raise_on_error=False,
            instance=instance,
        )
        message = failure_message(result)
        assert not result.success
        assert f"{field}: the checkpoint has {APP_AGENT[field]!r}, this run asks for {new!r}" in message
        assert "start a new chain" in message and f"agent_checkpoint[{START}]" in message
        assert not committed(home, day2)

    result = job.execute_in_process(
        partition_key=day2, run_config=agent_config(epsilon_greedy=0.5, learning_rate=1e-3), instance=instance
    )
    assert result.success
    recorded = read_metrics(str(checkpoint_dir(home, day2)))
    assert recorded["changed_settings"] == "learning_rate: 0.003 → 0.001; epsilon_greedy: 0.25 → 0.5"
    assert recorded["epsilon_greedy"] == 0.5 and recorded["settings"]["learning_rate"] == 1e-3


def test_a_checkpoint_written_before_settings_were_recorded_still_fails_with_a_sentence(
    spark: object, home: Path
) -> None:
    log_random_days(home, 2)
    job = definitions(home, tiny_cartpole(home, **APP_AGENT)).resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    assert job.execute_in_process(partition_key=START, instance=instance).success
    metrics_file = checkpoint_dir(home, START) / METRICS
    old = {
        k: v for k, v in json.loads(metrics_file.read_text()).items() if k not in ("settings", "structure")
    }
    metrics_file.write_text(json.dumps(old))

    result = job.execute_in_process(
        partition_key=shift_day(START, 1),
        run_config=agent_config(fc_layer_params=[8]),
        raise_on_error=False,
        instance=instance,
    )
    message = failure_message(result)
    assert f"does not match agent_checkpoint[{START}]" in message
    assert "start a new chain" in message


@pytest.fixture
def population(home: Path) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    users = pd.DataFrame(rng.uniform(-0.2, 0.2, (4000, 4)), columns=list(OBSERVATION_COLUMNS))
    users.insert(0, "user_id", np.arange(len(users), dtype=np.int64))
    write_day(users, str(home / "population"), START)
    return users


def test_action_batch_deploys_the_epsilon_the_checkpoint_was_exported_with(
    spark: object, home: Path, population: pd.DataFrame
) -> None:
    log_random_days(home, 1)
    trained_epsilon, live_epsilon = 0.2, 0.9
    app = dataclasses.replace(
        tiny_cartpole(home, epsilon_greedy=trained_epsilon),
        population=ParquetWarehouse(str(home / "population")),
    )
    defs = definitions(home, app)
    job = defs.resolve_job_def(DAILY_JOB)
    instance = dg.DagsterInstance.ephemeral()
    training = [dg.AssetKey(["cartpole", name]) for name in ("timesteps", "trajectories", "agent_checkpoint")]
    assert job.execute_in_process(partition_key=START, asset_selection=training, instance=instance).success

    result = job.execute_in_process(
        partition_key=START,
        asset_selection=[dg.AssetKey(["cartpole", "action_batch"])],
        run_config=agent_config(epsilon_greedy=live_epsilon),
        instance=instance,
    )
    assert result.success
    batch = pd.read_parquet(stored(home, "cartpole", "action_batch", START))
    greedy = batch.action == batch.greedy_action
    # epsilon-greedy over 2 actions, by hand: 1 - eps + eps/2 for the greedy action, eps/2 otherwise
    np.testing.assert_allclose(batch.action_prob[greedy], 1 - trained_epsilon / 2, rtol=1e-6)
    np.testing.assert_allclose(batch.action_prob[~greedy], trained_epsilon / 2, rtol=1e-6)
    assert abs((~greedy).mean() - trained_epsilon / 2) < 0.025


def test_an_action_batch_without_its_checkpoint_says_what_to_materialise(
    spark: object, home: Path, population: pd.DataFrame
) -> None:
    log_random_days(home, 1)
    app = dataclasses.replace(tiny_cartpole(home), population=ParquetWarehouse(str(home / "population")))
    result = (
        definitions(home, app)
        .resolve_job_def(DAILY_JOB)
        .execute_in_process(
            partition_key=START,
            asset_selection=[dg.AssetKey(["cartpole", "action_batch"])],
            raise_on_error=False,
            instance=dg.DagsterInstance.ephemeral(),
        )
    )
    message = failure_message(result)
    assert f"needs cartpole/agent_checkpoint[{START}], which is not materialised" in message
    assert "KeyError" not in message


CLI_DEFINITIONS = """
import os
from pathlib import Path

from rl_bakery_dagster.definitions import build_definitions
from rl_bakery_dagster_tests.apps import tiny_cartpole
from rl_bakery_dagster_tests.test_agent_configuration import APP_AGENT

home = Path(os.environ["RL_BAKERY_HOME"])
defs = build_definitions(tiny_cartpole(home, **APP_AGENT), home=home)
"""


def test_a_partial_config_file_on_the_cli_keeps_every_other_application_value(home: Path) -> None:
    log_random_days(home, 1)
    module = home / "cli_definitions.py"
    module.write_text(CLI_DEFINITIONS)
    config = home / "config.yaml"
    config.write_text("resources:\n  agent:\n    config:\n      epsilon_greedy: 0.45\n")
    env = {
        **os.environ,
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "RL_BAKERY_SPARK_MASTER": "local[2]",
    }
    command = [str(Path(sys.executable).with_name("dagster")), "job", "execute", "-f", str(module)]
    command += ["-j", DAILY_JOB, "-c", str(config), "--tags", json.dumps({"dagster/partition": START})]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=Path.cwd())
    assert done.returncode == 0, done.stderr[-3000:]

    expected = {
        **TFAgentsResource(**{**TINY_AGENT, **APP_AGENT}).model_dump(mode="json"),
        "epsilon_greedy": 0.45,
    }
    assert read_metrics(str(checkpoint_dir(home, START)))["settings"] == expected
    assert kernel_shapes(home, START) == [(4, 16), (16, 2)]

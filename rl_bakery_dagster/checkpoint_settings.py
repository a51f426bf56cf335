"""What a checkpoint records about the agent it holds, and what may change along a chain.

Every `agent_checkpoint[d]` writes, in its `metrics.json`, the fully resolved agent settings it
was trained with (`settings`) and the subset that shapes the agent's variables (`structure`:
algorithm, network layers, n-step, observation and action specs). A run whose structure differs
from the checkpoint it would restore is refused before anything is built: restoring would fail
deep inside TensorFlow, or worse, succeed on a partial match. Settings that may change day to day
(learning rate, epsilon, train steps, ...) do change, and the checkpoint lists what changed.

Everything that deploys a checkpoint (`action_batch`, `policy_evaluation`) reads what it needs
(epsilon, seed, train steps) from this record, never from the live resource: a launchpad edit
after training must not change the propensities written for a policy exported with another
epsilon. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rl_bakery_dagster.checkpoint_format import METRICS

if TYPE_CHECKING:
    from rl_bakery_dagster.application import Application
    from rl_bakery_dagster.resources.agents import TFAgentsResource

SETTINGS = "settings"
STRUCTURE = "structure"


class CheckpointMismatch(ValueError):
    """A run's agent cannot continue the checkpoint chain it would restore."""


def chain_structure(app: Application, settings: TFAgentsResource) -> dict[str, Any]:
    """The settings that must stay equal along one checkpoint chain."""
    action = app.action_space
    return {
        **settings.structure(),
        "n_step": app.trajectory.n_step,
        "observation_columns": list(app.schema.observation_columns),
        "action_space": {
            "kind": action.kind,
            "num_actions": action.num_actions,
            "low": list(action.low),
            "high": list(action.high),
        },
    }


def settings_record(app: Application, settings: TFAgentsResource) -> dict[str, Any]:
    """What a checkpoint's `metrics.json` records about the agent it holds."""
    return {SETTINGS: settings.resolved(), STRUCTURE: chain_structure(app, settings)}


def read_local_metrics(folder: str) -> dict[str, Any]:
    with open(os.path.join(folder, METRICS)) as handle:
        return json.load(handle)


def refuse_structural_change(
    app: Application, settings: TFAgentsResource, previous: dict[str, Any], previous_day: str
) -> None:
    """Raises `CheckpointMismatch` naming each field whose value differs from the checkpoint's."""
    recorded = previous.get(STRUCTURE)
    if recorded is None:
        return  # written before settings were recorded: the restore itself checks every variable
    current = chain_structure(app, settings)
    changed = [
        name for name in sorted(set(recorded) | set(current)) if recorded.get(name) != current.get(name)
    ]
    if not changed:
        return
    differences = "; ".join(
        f"{name}: the checkpoint has {recorded.get(name)!r}, this run asks for {current.get(name)!r}"
        for name in changed
    )
    raise CheckpointMismatch(
        f"{app.name}: agent_checkpoint[{previous_day}] cannot be continued with these settings "
        f"({differences}). These settings shape the agent's network, so they cannot change under an "
        f"existing checkpoint chain. Either run with the checkpoint's values (remove them from the "
        f"run config), or start a new chain: give the application a new name (its assets start "
        f"empty), or delete its agent_checkpoint partitions and re-materialise from {app.start_date}."
    )


def changed_settings(previous: dict[str, Any] | None, settings: TFAgentsResource) -> str:
    """`field: old → new` for each setting that differs from the previous checkpoint's, or `none`."""
    if previous is None or SETTINGS not in previous:
        return "none (first recorded checkpoint of the chain)"
    before, now = previous[SETTINGS], settings.resolved()
    changes = [
        f"{name}: {before.get(name)!r} → {now[name]!r}" for name in now if before.get(name) != now[name]
    ]
    return "; ".join(changes) or "none"


@dataclass(frozen=True)
class DeployedCheckpoint:
    """What deploying one checkpoint needs, as the checkpoint recorded it."""

    total_train_steps: int
    epsilon: float
    """Exploration of the exported collect policy (0 for continuous actions)."""
    seed: int | None
    """The seed the agent was trained with (None for checkpoints written before it was recorded)."""


def deployed_checkpoint_record(
    metrics: dict[str, Any], discrete_actions: bool, where: str
) -> DeployedCheckpoint:
    """Reads the deployment settings from a checkpoint's metrics; `where` names it in errors."""
    if discrete_actions and "epsilon_greedy" not in metrics:
        raise CheckpointMismatch(
            f"{where} does not record the epsilon its collect policy was exported with; "
            "re-materialise that checkpoint so that its propensities can be written exactly"
        )
    return DeployedCheckpoint(
        total_train_steps=int(metrics["total_train_steps"]),
        epsilon=float(metrics["epsilon_greedy"]) if discrete_actions else 0.0,
        seed=metrics.get(SETTINGS, {}).get("seed"),
    )

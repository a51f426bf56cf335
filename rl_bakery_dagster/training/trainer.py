"""Trains an agent on a window of stored transitions, streamed from Parquet."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf
from pyarrow import fs
from tf_agents.agents.tf_agent import TFAgent
from tf_agents.specs import tensor_spec
from tf_agents.utils import common

from rl_bakery_dagster.training.dataset import (
    TransitionLayout,
    record_batch_arrays,
    to_trajectory,
    transition_dataset,
)
from rl_bakery_dagster.training.schedules import agent_learning_rates
from rl_bakery_dagster.training.summaries import DaySummaries
from rl_bakery_dagster.trajectory_format import ARRAY_COLUMNS

PROGRESS_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class TrainingStats:
    """What one day of training did; `skipped` says why nothing was trained, if so."""

    transitions: int
    train_steps: int
    loss_mean: float
    loss_last: float
    total_train_steps: int
    seconds: float
    skipped: str | None = None
    learning_rates: dict[str, float] = field(default_factory=dict)

    @classmethod
    def untrained(cls, transitions: int, agent: TFAgent, reason: str) -> TrainingStats:
        """A day that trained nothing: the agent is carried forward, `reason` says why."""
        total = int(agent.train_step_counter.numpy())
        nan = float("nan")
        return cls(transitions, 0, nan, nan, total, 0.0, reason, agent_learning_rates(agent))

    def as_metadata(self) -> dict[str, float | int | str]:
        metadata: dict[str, float | int | str] = {
            "transitions": self.transitions,
            "train_steps": self.train_steps,
            "loss_mean": self.loss_mean,
            "loss_last": self.loss_last,
            "total_train_steps": self.total_train_steps,
            "train_seconds": round(self.seconds, 3),
            **self.learning_rates,
        }
        if self.skipped:
            metadata["skipped"] = self.skipped
        return metadata


class NonFiniteLossError(ArithmeticError):
    """Training produced a non-finite loss or weights; the agent must not be saved."""

    def __init__(self, step: int, train_steps: int, loss: float | None):
        self.step, self.train_steps, self.loss = step, train_steps, loss
        what = "non-finite weights" if loss is None else f"a non-finite loss ({loss})"
        super().__init__(f"{what} at train step {step} of {train_steps}")


def _finite_weights(agent: TFAgent) -> bool:
    return all(bool(np.isfinite(v.numpy()).all()) for v in agent.variables if v.dtype.is_floating)


def count_rows(filesystem: fs.FileSystem, files: Sequence[str]) -> int:
    """Rows of the given Parquet files, from their footers only."""
    total = 0
    for path in files:
        with filesystem.open_input_file(path) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def _with_empty_policy_info(agent: TFAgent, experience: object, rows: int, steps: int) -> object:
    """Bandit policies emit info (predicted rewards) that logs do not hold and training never reads."""
    info_spec = agent.training_data_spec.policy_info
    if not tf.nest.flatten(info_spec):
        return experience
    info = tensor_spec.zero_spec_nest(info_spec, outer_dims=(rows, steps))
    return experience._replace(policy_info=info)  # type: ignore[attr-defined]


def train_each_row_once(
    agent: TFAgent,
    filesystem: fs.FileSystem,
    files: Sequence[str],
    layout: TransitionLayout,
    *,
    batch_size: int,
    transitions_in_window: int,
    log: logging.Logger,
) -> TrainingStats:
    """Feeds every stored transition of `files` to `agent.train` exactly once, in file order.

    For agents that accumulate sufficient statistics (LinUCB): each row must enter them once,
    so there is no shuffling, no repetition and the last batch may be short.
    """
    started = time.monotonic()
    rows = count_rows(filesystem, files)
    if rows == 0:
        return TrainingStats.untrained(transitions_in_window, agent, "no unseen transitions in the window")
    log.info(f"folding {rows} unseen transitions into the agent's statistics, each once")
    losses: list[float] = []
    for path in files:
        with filesystem.open_input_file(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(
                batch_size=batch_size, columns=list(ARRAY_COLUMNS)
            ):
                if batch.num_rows == 0:
                    continue
                arrays = {k: tf.constant(v) for k, v in record_batch_arrays(batch, layout).items()}
                experience = to_trajectory(arrays, layout.single_step)
                loss = agent.train(
                    _with_empty_policy_info(agent, experience, batch.num_rows, layout.steps)
                ).loss
                losses.append(float(loss))
    seconds = time.monotonic() - started
    return TrainingStats(
        transitions_in_window,
        len(losses),
        float(np.mean(losses)),
        losses[-1],
        int(agent.train_step_counter.numpy()),
        seconds,
        learning_rates=agent_learning_rates(agent),
    )


def train_on_transitions(
    agent: TFAgent,
    filesystem: fs.FileSystem,
    files: Sequence[str],
    layout: TransitionLayout,
    *,
    train_steps: int,
    batch_size: int,
    shuffle_rows: int,
    seed: int,
    log: logging.Logger,
    summaries: DaySummaries | None = None,
) -> TrainingStats:
    """Runs `train_steps` agent updates on shuffled batches of the stored transitions.

    With fewer transitions than one batch, nothing is trained and `skipped` says so: the agent
    is carried forward unchanged rather than updated on a degenerate batch. Raises
    `NonFiniteLossError` as soon as a loss (or, at the end, a weight) is not finite.
    `summaries`, if given, records the day's TensorBoard scalars and writes them once trained.
    """
    tf.config.experimental.enable_op_determinism()
    started = time.monotonic()
    transitions = count_rows(filesystem, files)
    if transitions < batch_size or train_steps == 0:
        reason = (
            "no training steps configured"
            if train_steps == 0
            else f"{transitions} transition(s) in the training window, fewer than one batch ({batch_size})"
        )
        log.warning(f"training skipped: {reason}; the agent is carried forward unchanged")
        return TrainingStats.untrained(transitions, agent, reason)
    dataset = transition_dataset(filesystem, files, layout, batch_size, shuffle_rows, seed)
    dataset = dataset.map(
        lambda experience: _with_empty_policy_info(agent, experience, batch_size, layout.steps)
    )
    train = common.function(agent.train)
    losses = np.zeros(train_steps, dtype=np.float64)
    last_report = time.monotonic()
    log.info(f"training {train_steps} steps on {transitions} transitions from {len(files)} file(s)")
    for step, experience in enumerate(dataset.take(train_steps)):
        try:
            losses[step] = float(train(experience).loss)
        except tf.errors.InvalidArgumentError as error:
            if "inf or nan" not in str(error):
                raise
            raise NonFiniteLossError(step + 1, train_steps, float("nan")) from error
        if not np.isfinite(losses[step]):
            raise NonFiniteLossError(step + 1, train_steps, losses[step])
        if summaries is not None:
            summaries.record(agent, step, experience)
        if time.monotonic() - last_report > PROGRESS_EVERY_SECONDS:
            last_report = time.monotonic()
            log.info(f"train step {step + 1}/{train_steps}, loss {losses[step]:.4f}")
    if not _finite_weights(agent):
        raise NonFiniteLossError(train_steps, train_steps, None)
    seconds = time.monotonic() - started
    total = int(agent.train_step_counter.numpy())
    if summaries is not None:
        summaries.write(total - train_steps + 1, losses)
    log.info(f"trained {train_steps} steps in {seconds:.1f}s ({train_steps / seconds:.0f} steps/s)")
    return TrainingStats(
        transitions,
        train_steps,
        float(losses.mean()),
        float(losses[-1]),
        total,
        seconds,
        learning_rates=agent_learning_rates(agent),
    )

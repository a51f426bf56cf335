"""Streams transitions from Parquet files into `tf.data` as TF-Agents `Trajectory` batches.

Memory is bounded by the shuffle buffer, not by the number of days in the training window:
files are read a record batch at a time, rows are shuffled within a buffer of
`shuffle_rows`, and batches leave as soon as they are full. The order is a pure function of the
file list and the seed, so the same inputs give the same training run.

Batches cross from Python into `tf.data` in blocks of `BATCHES_PER_BLOCK` and are split again by
the native `unbatch`: one generator call per batch cost about a fifth of a DQN train step on two
cores (benchmarks/training_input.py); the batch sequence is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from pyarrow import fs
from tf_agents.trajectories import trajectory as trajectory_lib

from rl_bakery_dagster.trajectory_format import (
    ACTION,
    ARRAY_COLUMNS,
    DISCOUNT,
    NEXT_STEP_TYPE,
    OBSERVATION,
    REWARD,
    STEP_TYPE,
)

READ_BATCH_ROWS = 8192
BATCHES_PER_BLOCK = 32


@dataclass(frozen=True)
class TransitionLayout:
    """Shapes of one stored transition: T timesteps of `observation_size` and `action_size` numbers."""

    n_step: int
    observation_size: int
    action_size: int
    discrete_action: bool
    single_step: bool = False
    """Bandit rows: one timestep whose reward, next step type and discount are stored with it."""

    @property
    def steps(self) -> int:
        return 1 if self.single_step else self.n_step + 1

    @property
    def next_steps(self) -> int:
        """Stored items of the next-step columns: T - 1, or 1 for a single-step bandit row."""
        return 1 if self.single_step else self.n_step

    @property
    def action_dtype(self) -> np.dtype:
        return np.dtype(np.int64 if self.discrete_action else np.float32)


def _flat(column: pa.ChunkedArray | pa.Array, dtype: np.dtype) -> np.ndarray:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def record_batch_arrays(batch: pa.RecordBatch, layout: TransitionLayout) -> dict[str, np.ndarray]:
    """Numpy arrays of shape [rows, T, ...] (and [rows, T-1] for the next-step columns)."""
    rows, steps = batch.num_rows, layout.steps
    columns = {name: batch.column(name) for name in ARRAY_COLUMNS}
    action = _flat(columns[ACTION], layout.action_dtype)
    return {
        STEP_TYPE: _flat(columns[STEP_TYPE], np.dtype(np.int32)).reshape(rows, steps),
        OBSERVATION: _flat(columns[OBSERVATION], np.dtype(np.float32)).reshape(
            rows, steps, layout.observation_size
        ),
        ACTION: action.reshape(rows, steps)
        if layout.discrete_action
        else action.reshape(rows, steps, layout.action_size),
        NEXT_STEP_TYPE: _flat(columns[NEXT_STEP_TYPE], np.dtype(np.int32)).reshape(rows, layout.next_steps),
        REWARD: _flat(columns[REWARD], np.dtype(np.float32)).reshape(rows, layout.next_steps),
        DISCOUNT: _flat(columns[DISCOUNT], np.dtype(np.float32)).reshape(rows, layout.next_steps),
    }


def shuffled_batches(
    filesystem: fs.FileSystem,
    files: Sequence[str],
    layout: TransitionLayout,
    batch_size: int,
    shuffle_rows: int,
    seed: int,
) -> Iterator[dict[str, np.ndarray]]:
    """Endless shuffled batches of `batch_size` transitions, one pass over `files` per epoch."""
    rng = np.random.default_rng(seed)
    pending: list[dict[str, np.ndarray]] = []
    pending_rows = 0

    def drain(keep: int) -> Iterator[dict[str, np.ndarray]]:
        nonlocal pending, pending_rows
        merged = {k: np.concatenate([p[k] for p in pending]) for k in pending[0]}
        order = rng.permutation(pending_rows)
        usable = (pending_rows - keep) // batch_size * batch_size
        for start in range(0, usable, batch_size):
            index = order[start : start + batch_size]
            yield {k: v[index] for k, v in merged.items()}
        rest = order[usable:]
        pending = [{k: v[rest] for k, v in merged.items()}] if len(rest) else []
        pending_rows = len(rest)

    while True:
        epoch_start_rows = pending_rows
        yielded = False
        for file_index in rng.permutation(len(files)):
            with filesystem.open_input_file(files[file_index]) as handle:
                for batch in pq.ParquetFile(handle).iter_batches(
                    batch_size=READ_BATCH_ROWS, columns=list(ARRAY_COLUMNS)
                ):
                    if batch.num_rows == 0:
                        continue
                    pending.append(record_batch_arrays(batch, layout))
                    pending_rows += batch.num_rows
                    if pending_rows >= shuffle_rows + batch_size:
                        yielded = True
                        yield from drain(keep=shuffle_rows // 2)
        if pending_rows >= batch_size:
            yielded = True
            yield from drain(keep=0)
        if not yielded and pending_rows == epoch_start_rows:
            return


def blocks(batches: Iterator[dict[str, np.ndarray]], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Stacks `size` consecutive batches into one [size, batch, ...] block (the last may be shorter)."""
    block: list[dict[str, np.ndarray]] = []
    for batch in batches:
        block.append(batch)
        if len(block) == size:
            yield {key: np.stack([b[key] for b in block]) for key in block[0]}
            block = []
    if block:
        yield {key: np.stack([b[key] for b in block]) for key in block[0]}


def to_trajectory(batch: dict[str, tf.Tensor], single_step: bool = False) -> trajectory_lib.Trajectory:
    """Pads the unstored last item's next-step fields (unused by `to_transition`) to get [B, T]."""

    def pad(values: tf.Tensor, value: float | int) -> tf.Tensor:
        if single_step:
            return values
        return tf.concat([values, tf.fill([tf.shape(values)[0], 1], tf.cast(value, values.dtype))], 1)

    return trajectory_lib.Trajectory(
        step_type=batch[STEP_TYPE],
        observation=batch[OBSERVATION],
        action=batch[ACTION],
        policy_info=(),
        next_step_type=pad(batch[NEXT_STEP_TYPE], 0),
        reward=pad(batch[REWARD], 0.0),
        discount=pad(batch[DISCOUNT], 1.0),
    )


def transition_dataset(
    filesystem: fs.FileSystem,
    files: Sequence[str],
    layout: TransitionLayout,
    batch_size: int,
    shuffle_rows: int,
    seed: int,
) -> tf.data.Dataset:
    """An endless `tf.data.Dataset` of `Trajectory` batches of shape [batch_size, T, ...]."""
    steps = layout.steps
    action_shape = (None, batch_size, steps) + (() if layout.discrete_action else (layout.action_size,))
    signature = {
        STEP_TYPE: tf.TensorSpec((None, batch_size, steps), tf.int32),
        OBSERVATION: tf.TensorSpec((None, batch_size, steps, layout.observation_size), tf.float32),
        ACTION: tf.TensorSpec(action_shape, tf.as_dtype(layout.action_dtype)),
        NEXT_STEP_TYPE: tf.TensorSpec((None, batch_size, layout.next_steps), tf.int32),
        REWARD: tf.TensorSpec((None, batch_size, layout.next_steps), tf.float32),
        DISCOUNT: tf.TensorSpec((None, batch_size, layout.next_steps), tf.float32),
    }
    dataset = tf.data.Dataset.from_generator(
        lambda: blocks(
            shuffled_batches(filesystem, files, layout, batch_size, shuffle_rows, seed), BATCHES_PER_BLOCK
        ),
        output_signature=signature,
    )
    return dataset.unbatch().map(lambda batch: to_trajectory(batch, layout.single_step)).prefetch(2)

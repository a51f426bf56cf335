"""A partition is never lost: a commit killed between any two of its steps leaves a readable day.

Each case commits a version in a real subprocess that SIGKILLs itself after one named step
(`RL_BAKERY_TEST_CRASH_AT`), then reads the day as every reader does (through `_CURRENT`) and
writes it again. The expected outcome of each step comes from the commit protocol itself: before
the pointer is switched readers see the old version (or nothing, for a first commit), after it
the new one, and never a mix.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rl_bakery_dagster.resources.storage import (
    COMMIT_STEPS,
    CRASH_AT_ENV,
    POINTER,
    StorageRoot,
    UnreadablePartition,
    prune,
)

ASSET = ["cartpole", "trajectories"]
DAY = "2024-01-01"
SWITCHED = {"switched", "pruned"}  # the steps after which `_CURRENT` names the new version


def commit_label(root: str, label: str) -> None:
    """One writer: stages three files holding `label` and commits them as the day's new version."""
    storage = StorageRoot(root)
    staged = Path(storage.staging_uri(ASSET))
    staged.mkdir(parents=True)
    for part in range(3):
        (staged / f"part-{part}.parquet").write_text(label)
    storage.commit(str(staged), storage.partition_uri(ASSET, DAY))


def write(root: Path, label: str, crash_at: str | None = None) -> int:
    """Commits a version labelled `label`; in a real subprocess that kills itself after `crash_at`."""
    if crash_at is None:
        commit_label(str(root), label)
        return 0
    code = f"from {__name__} import commit_label; commit_label({str(root)!r}, {label!r})"
    env = {**os.environ, CRASH_AT_ENV: crash_at}
    return subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode


def read(storage: StorageRoot) -> str | None:
    """What a reader sees: the one label of every file of the current version, or None."""
    current = storage.current_uri(ASSET, DAY)
    if current is None:
        return None
    files = list(Path(current).iterdir())
    labels = {p.read_text() for p in files}
    assert len(labels) == 1 and len(files) == 3, f"a mixed or partial version: {labels}"
    return labels.pop()


@pytest.mark.parametrize("step", COMMIT_STEPS)
@pytest.mark.parametrize("earlier", [True, False])  # replacing a day, and committing it the first time
def test_a_commit_killed_at_any_step_leaves_the_old_or_the_new_version(
    tmp_path: Path, step: str, earlier: bool
) -> None:
    storage = StorageRoot(str(tmp_path / "storage"))
    if earlier:
        assert write(tmp_path / "storage", "old") == 0
    assert write(tmp_path / "storage", "new", crash_at=step) == -signal.SIGKILL

    expected = "new" if step in SWITCHED else ("old" if earlier else None)
    assert read(storage) == expected

    assert write(tmp_path / "storage", "next") == 0  # the next write goes ahead
    assert read(storage) == "next"
    # nothing unreachable survives the grace period: the current version, and the one it replaced
    folder = Path(storage.partition_uri(ASSET, DAY))
    prune(str(folder), keep=set(), max_age_seconds=-1)
    left = sorted(p.name for p in folder.iterdir() if p.name != POINTER)
    assert len(left) == 1 and read(storage) == "next"


def test_a_reader_of_the_replaced_version_can_finish(tmp_path: Path) -> None:
    """A reader that resolved `_CURRENT` just before a replacement still finds every file it listed."""
    storage = StorageRoot(str(tmp_path / "storage"))
    assert write(tmp_path / "storage", "old") == 0
    resolved = Path(storage.read_uri(ASSET, DAY))
    assert write(tmp_path / "storage", "new") == 0
    assert {p.read_text() for p in resolved.iterdir()} == {"old"}
    assert read(storage) == "new"
    assert write(tmp_path / "storage", "newest") == 0
    assert read(storage) == "newest"
    assert resolved.is_dir(), "a version replaced minutes ago is kept for the grace period"


def test_unreadable_partitions_fail_with_a_sentence(tmp_path: Path) -> None:
    """A pre-versioning `dt=` folder, or a pointer naming no version, is refused with what to do."""
    storage = StorageRoot(str(tmp_path / "storage"))
    legacy = Path(storage.partition_uri(ASSET, DAY))
    legacy.mkdir(parents=True)
    (legacy / "part-0.parquet").write_text("written by an older release")
    with pytest.raises(UnreadablePartition, match=r"Re-materialise the day .* adopt the folder"):
        storage.current_uri(ASSET, DAY)
    (legacy / "part-0.parquet").unlink()
    (legacy / POINTER).write_text("../../elsewhere")
    with pytest.raises(UnreadablePartition, match="not a version folder"):
        storage.current_uri(ASSET, DAY)
    with pytest.raises(FileNotFoundError, match="no committed partition for 2024-01-02"):
        storage.read_uri(ASSET, "2024-01-02")


def test_rematerialising_an_old_layout_day_replaces_it(tmp_path: Path) -> None:
    """The remedy the error names works: the next commit becomes current and the old files go."""
    storage = StorageRoot(str(tmp_path / "storage"))
    legacy = Path(storage.partition_uri(ASSET, DAY))
    (legacy / "nested").mkdir(parents=True)
    (legacy / "part-0.parquet").write_text("written by an older release")
    assert write(tmp_path / "storage", "new") == 0
    assert read(storage) == "new"
    assert sorted(p.name for p in legacy.iterdir() if not p.name.startswith("v-")) == [POINTER]

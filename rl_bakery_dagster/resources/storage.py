"""Atomic folder commits under one storage root (a local folder or an object-store URI).

Writers fill a staging folder next to the final one, then `commit` swaps it into place, so a
reader sees either the old partition or the new one, never a half-written folder. On a local or
shared POSIX filesystem the final rename is atomic; on object stores `pyarrow.fs` copies.
"""

from __future__ import annotations

import posixpath
import time
import uuid
from dataclasses import dataclass

from pyarrow import fs

from rl_bakery_dagster.application import require_safe_name

STAGING = "_staging"
STALE_STAGING_SECONDS = 6 * 3600
"""Staging folders older than this were left by a killed run; younger ones may be a live writer's."""


@dataclass(frozen=True)
class StorageRoot:
    """Paths of asset partitions under `uri`: `<uri>/<asset key path>/dt=<day>`."""

    uri: str

    @property
    def filesystem(self) -> tuple[fs.FileSystem, str]:
        return fs.FileSystem.from_uri(self.uri)

    def asset_uri(self, asset_path: list[str]) -> str:
        for segment in asset_path:
            require_safe_name(segment, "asset key segment")
        return posixpath.join(self.uri.rstrip("/"), *asset_path)

    def partition_uri(self, asset_path: list[str], day: str) -> str:
        return f"{self.asset_uri(asset_path)}/dt={require_day(day)}"

    def staging_uri(self, asset_path: list[str]) -> str:
        """A fresh staging folder; stale ones of killed runs are removed on the way."""
        staging_root = f"{self.asset_uri(asset_path)}/{STAGING}"
        self.sweep_stale(staging_root)
        return f"{staging_root}/{uuid.uuid4().hex}"

    def sweep_stale(self, staging_root: str, max_age_seconds: float = STALE_STAGING_SECONDS) -> list[str]:
        filesystem, path = fs.FileSystem.from_uri(staging_root)
        now = time.time()
        removed = []
        for info in filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True)):
            modified = info.mtime.timestamp() if info.mtime else now
            if info.type == fs.FileType.Directory and now - modified > max_age_seconds:
                filesystem.delete_dir(info.path)
                removed.append(info.path)
        return removed

    def exists(self, uri: str) -> bool:
        filesystem, path = fs.FileSystem.from_uri(uri)
        return filesystem.get_file_info(path).type != fs.FileType.NotFound

    def commit(self, staged_uri: str, final_uri: str) -> None:
        """Moves a fully written folder into place, replacing any earlier version."""
        filesystem, staged = fs.FileSystem.from_uri(staged_uri)
        final = fs.FileSystem.from_uri(final_uri)[1]
        previous = None
        if filesystem.get_file_info(final).type != fs.FileType.NotFound:
            previous = f"{posixpath.dirname(staged)}/replaced-{uuid.uuid4().hex}"
            filesystem.move(final, previous)
        filesystem.create_dir(posixpath.dirname(final), recursive=True)
        filesystem.move(staged, final)
        if previous:
            filesystem.delete_dir(previous)

    def remove(self, uri: str) -> None:
        filesystem, path = fs.FileSystem.from_uri(uri)
        if filesystem.get_file_info(path).type != fs.FileType.NotFound:
            filesystem.delete_dir(path)


def require_day(day: str) -> str:
    """Refuses partition keys that are not plain YYYY-MM-DD dates (they become folder names)."""
    import datetime

    try:
        datetime.date.fromisoformat(day)
    except ValueError as error:
        raise ValueError(f"partition key {day!r} is not a YYYY-MM-DD day") from error
    if len(day) != 10:
        raise ValueError(f"partition key {day!r} is not a YYYY-MM-DD day")
    return day

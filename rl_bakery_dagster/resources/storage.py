"""Partition commits that never lose a day, under one storage root (a folder or an object store).

A partition `<root>/<asset key path>/dt=<day>/` holds immutable *versions* and one pointer:

    dt=<day>/_CURRENT                   the name of the readable version (one small object)
    dt=<day>/v-<UTC time>-<random>/     one complete version (Parquet files, or an agent folder)

A writer fills a staging folder, places it as a new version under a fresh name (invisible to
readers, who only follow `_CURRENT`), then replaces `_CURRENT`. Replacing one small file is
atomic everywhere we run: `rename` over it on a POSIX filesystem (local or shared), a single PUT
on S3 and GCS (an object appears whole or not at all, and reads after the PUT see it). No step
moves or deletes the version `_CURRENT` names, so a commit killed between any two steps leaves
the old or the new version readable, and the next commit of the day simply goes ahead. The
version that was replaced is kept (a reader that resolved `_CURRENT` just before the switch may
still be reading it) and pruned by the next replacement; versions placed by a run that died
before its switch are pruned once older than `STALE_SECONDS` (younger ones may be a live
writer's). Nothing relies on renaming folders, which object stores can only copy.

Read a partition through `StorageRoot.current_uri` (or `_CURRENT`), never by listing `dt=<day>/`
recursively: after a replacement it holds two versions.
"""

from __future__ import annotations

import datetime
import os
import posixpath
import re
import signal
import time
import uuid
from dataclasses import dataclass

from pyarrow import fs

from rl_bakery_dagster.application import require_safe_name

STAGING = "_staging"
POINTER = "_CURRENT"
STALE_SECONDS = 6 * 3600
"""Staging folders and unreferenced versions older than this were left by a killed run;
younger ones may be a live writer's."""
STALE_STAGING_SECONDS = STALE_SECONDS
VERSION = re.compile(r"^v-(\d{8}T\d{6}Z)-[0-9a-f]{12}$")
CRASH_AT_ENV = "RL_BAKERY_TEST_CRASH_AT"
"""Test hook: the commit step at which the process kills itself (SIGKILL), to prove recovery."""
COMMIT_STEPS = ("staged", "placed", "pointer_written", "switched", "pruned")


class UnreadablePartition(RuntimeError):
    """A `dt=` folder that holds data but no `_CURRENT` pointer (written by an older release)."""


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
        """The folder of one day's versions and pointer (read `current_uri` for its data)."""
        return f"{self.asset_uri(asset_path)}/dt={require_day(day)}"

    def current_uri(self, asset_path: list[str], day: str) -> str | None:
        """The readable version of a day, or None when the day was never committed."""
        return current_version(self.partition_uri(asset_path, day))

    def read_uri(self, asset_path: list[str], day: str) -> str:
        """The readable version of a day; fails with a sentence when the day was never committed."""
        current = self.current_uri(asset_path, day)
        if current is None:
            raise FileNotFoundError(f"{'/'.join(asset_path)} has no committed partition for {day}")
        return current

    def staging_uri(self, asset_path: list[str]) -> str:
        """A fresh staging folder; stale ones of killed runs are removed on the way."""
        staging_root = f"{self.asset_uri(asset_path)}/{STAGING}"
        self.sweep_stale(staging_root)
        return f"{staging_root}/{uuid.uuid4().hex}"

    def sweep_stale(self, staging_root: str, max_age_seconds: float = STALE_SECONDS) -> list[str]:
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

    def commit(self, staged_uri: str, partition_uri: str) -> str:
        """Makes a fully written staging folder the readable version of a partition; returns its uri."""
        return commit_version(staged_uri, partition_uri)

    def remove(self, uri: str) -> None:
        filesystem, path = fs.FileSystem.from_uri(uri)
        if filesystem.get_file_info(path).type != fs.FileType.NotFound:
            filesystem.delete_dir(path)


def current_version(partition_uri: str) -> str | None:
    """Follows `_CURRENT`; None for a day never committed, a clear error for an old-layout folder."""
    filesystem, path = fs.FileSystem.from_uri(partition_uri)
    try:
        with filesystem.open_input_stream(f"{path}/{POINTER}") as stream:
            name = stream.read().decode().strip()
    except FileNotFoundError:
        entries = filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True))
        if any(not VERSION.match(e.base_name) and not e.base_name.startswith(POINTER) for e in entries):
            raise UnreadablePartition(
                f"{partition_uri} holds data but no {POINTER} pointer: it was written before "
                "partitions were versioned. Re-materialise the day (its new version replaces the folder's "
                "content), or adopt the folder as a version: "
                f"move its content into {partition_uri}/v-20000101T000000Z-000000000000/ and write "
                f"that folder's name into {partition_uri}/{POINTER}."
            ) from None
        return None
    if not VERSION.match(name):
        raise UnreadablePartition(f"{partition_uri}/{POINTER} names {name!r}, which is not a version folder")
    return f"{partition_uri.rstrip('/')}/{name}"


def commit_version(staged_uri: str, partition_uri: str) -> str:
    """Places `staged_uri` as a new version of the partition, switches `_CURRENT` to it, prunes.

    Each step leaves a readable partition (see the module docstring); `RL_BAKERY_TEST_CRASH_AT`
    kills the process after the named step so that tests can prove it.
    """
    filesystem, staged = fs.FileSystem.from_uri(staged_uri)
    folder = fs.FileSystem.from_uri(partition_uri)[1].rstrip("/")
    _crash_point("staged")
    try:
        replaced = current_version(partition_uri)
    except UnreadablePartition:  # an old-layout folder: superseded by this version once it is current
        replaced = None
    stamp = datetime.datetime.fromtimestamp(time.time(), datetime.UTC)
    name = f"v-{stamp:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:12]}"
    filesystem.create_dir(folder, recursive=True)
    if isinstance(filesystem, fs.LocalFileSystem):
        os.rename(staged, f"{folder}/{name}")  # a fresh name, so rename(2) never meets a folder
    else:  # object stores have no rename: copy, then drop the staging copy
        fs.copy_files(
            staged, f"{folder}/{name}", source_filesystem=filesystem, destination_filesystem=filesystem
        )
        filesystem.delete_dir(staged)
    _crash_point("placed")
    _write_pointer(filesystem, folder, name)
    _crash_point("switched")
    keep = {name, posixpath.basename(replaced) if replaced else name}
    prune(partition_uri, keep)
    _crash_point("pruned")
    return f"{partition_uri.rstrip('/')}/{name}"


def _write_pointer(filesystem: fs.FileSystem, folder: str, name: str) -> None:
    """Replaces `_CURRENT` in one atomic step: write-then-rename on filesystems, one PUT on object stores."""
    pointer = f"{folder}/{POINTER}"
    if filesystem.type_name in ("s3", "gcs"):
        with filesystem.open_output_stream(pointer) as stream:
            stream.write(name.encode())
        _crash_point("pointer_written")
        return
    temporary = f"{pointer}.tmp-{uuid.uuid4().hex}"
    with filesystem.open_output_stream(temporary) as stream:
        stream.write(name.encode())
    _crash_point("pointer_written")
    if isinstance(filesystem, fs.LocalFileSystem):
        os.replace(temporary, pointer)  # rename(2) replaces the old pointer atomically
    else:
        filesystem.move(temporary, pointer)


def prune(partition_uri: str, keep: set[str], max_age_seconds: float = STALE_SECONDS) -> list[str]:
    """Deletes versions and temporary pointers of a day that no reader can reach.

    The current version and those in `keep` stay; any other version or temporary pointer is
    deleted once older than `max_age_seconds` (by the time in its name, or its mtime): a younger
    one may belong to a writer that has placed its version and is about to switch to it. Content
    of the old layout (files beside the versions) goes as soon as a version is current.
    """
    filesystem, path = fs.FileSystem.from_uri(partition_uri)
    current = current_version(partition_uri)
    current_name = posixpath.basename(current) if current else None
    now = time.time()
    removed = []
    for entry in filesystem.get_file_info(fs.FileSelector(path, allow_not_found=True)):
        match = VERSION.match(entry.base_name)
        if match and entry.base_name not in keep and entry.base_name != current_name:
            placed = datetime.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
            if now - placed.timestamp() > max_age_seconds:
                filesystem.delete_dir(entry.path)
                removed.append(entry.path)
        elif entry.base_name.startswith(f"{POINTER}.tmp-"):
            modified = entry.mtime.timestamp() if entry.mtime else now
            if now - modified > max_age_seconds:
                filesystem.delete_file(entry.path)
                removed.append(entry.path)
        elif not match and entry.base_name != POINTER and current_name is not None:
            if entry.type == fs.FileType.Directory:
                filesystem.delete_dir(entry.path)
            else:
                filesystem.delete_file(entry.path)
            removed.append(entry.path)
    return removed


def _crash_point(step: str) -> None:
    """Kills this process after `step` when `RL_BAKERY_TEST_CRASH_AT` names it (tests only)."""
    if os.environ.get(CRASH_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def require_day(day: str) -> str:
    """Refuses partition keys that are not plain YYYY-MM-DD dates (they become folder names)."""
    try:
        datetime.date.fromisoformat(day)
    except ValueError as error:
        raise ValueError(f"partition key {day!r} is not a YYYY-MM-DD day") from error
    if len(day) != 10:
        raise ValueError(f"partition key {day!r} is not a YYYY-MM-DD day")
    return day

"""Reads one warehouse day folder exactly as real writers leave it.

Spark's `spark.read.parquet(<day folder>)` is not used on a day folder: its partition discovery
reads a `hour=23/` subfolder *instead of* the files beside it, it takes one file's schema for all
(a float64 file read as float32 fails or not depending on which file comes first), and it cannot
read nanosecond timestamps (pandas' and pyarrow's default). Instead:

1. The day folder is listed with `pyarrow.fs` on the driver (one listing, no data read). Names
   starting with `_` or `.` (`_SUCCESS`, `_temporary/`, `.crc` checksums, `_committed_*`) and
   names ending in `.crc`, `.part`, `.tmp`, `.inprogress` (other writers' bookkeeping and
   unfinished uploads) are ignored. Every other file is a data file and must be Parquet. A
   subfolder is refused unless the warehouse declares `subfolders="read"` (then its files are
   more rows of the day, with no column taken from the folder name).
2. Each data file's footer (schema and row count; no rows) is read with pyarrow, in a few
   threads. A file that is not Parquet, or has a column type Spark cannot read, is refused with
   a sentence naming the file and the column. Zero-row files are skipped (an untyped empty file
   written by pandas would otherwise force its `null` types on the day); a day whose files are
   all empty takes its columns from the best-typed one.
3. Files with the same schema are read by Spark together (the rows stay on the executors);
   each group's columns are cast to the widest type of any group (int8 < ... < int64, float32 <
   float64, integer with floating point → float64, timestamps of any unit → Spark timestamps),
   and the groups are unioned by name: the same result whatever the file order.

`pyarrow.fs` (rather than Hadoop's `FileSystem` through Spark's JVM) lists and reads footers
because it works the same with Spark Connect, where the driver has no JVM, and because the
trainer already reads storage with it; Spark reads the rows with the original URI, so a cluster
uses its own Hadoop connectors (`s3a://` is listed by pyarrow as `s3://`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

if TYPE_CHECKING:
    from pyarrow import fs
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType

IGNORED_PREFIXES = ("_", ".")
IGNORED_SUFFIXES = (".crc", ".part", ".tmp", ".inprogress")
MARKER = "_SUCCESS"
NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"
FOOTER_THREADS = 8

SubfolderRule = Literal["refuse", "read"]


class WarehouseReadError(ValueError):
    """A day folder cannot be read exactly; the message is one sentence naming the path."""


@dataclass(frozen=True)
class DataFile:
    path: str
    """Relative to the day folder, `/`-separated."""
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class DayListing:
    """What a day folder holds: its data files, what was ignored and the subfolders refused."""

    day: str
    folder: str
    data_files: tuple[DataFile, ...]
    ignored: tuple[str, ...]
    subfolders: tuple[str, ...]
    complete: bool

    @property
    def fingerprint(self) -> str:
        """Changes when a data file is added, removed, resized or rewritten (path, size, mtime)."""
        content = [(f.path, f.size, f.mtime_ns) for f in self.data_files] + [
            (s, -1, -1) for s in self.subfolders
        ]
        return hashlib.sha256(json.dumps(sorted(content)).encode()).hexdigest()[:16]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.data_files)


@dataclass(frozen=True)
class DayRead:
    """A day's rows (lazy, on Spark) and the record of what was read, for metadata."""

    frame: DataFrame
    listing: DayListing
    rows: int
    """From the files' footers, before any rule is applied."""
    skipped_empty: tuple[str, ...]

    def record(self) -> dict[str, int | str | bool]:
        return {
            "files": len(self.listing.data_files),
            "bytes": self.listing.bytes,
            "rows": self.rows,
            "fingerprint": self.listing.fingerprint,
            "complete": self.listing.complete,
        }


def pyarrow_uri(uri: str) -> str:
    """Hadoop's `s3a://`/`s3n://` are `s3://` to pyarrow."""
    for scheme in ("s3a://", "s3n://"):
        if uri.startswith(scheme):
            return "s3://" + uri.removeprefix(scheme)
    return uri


def _is_ignored(name: str) -> bool:
    return name.startswith(IGNORED_PREFIXES) or name.endswith(IGNORED_SUFFIXES)


def list_day(uri: str, day: str, subfolders: SubfolderRule = "refuse") -> DayListing:
    """Lists `<uri>/dt=<day>/` without reading data; raises nothing for unusual contents."""
    from pyarrow import fs

    folder = f"{uri.rstrip('/')}/dt={day}"
    filesystem, root = fs.FileSystem.from_uri(pyarrow_uri(folder))
    files: list[DataFile] = []
    ignored: list[str] = []
    refused: list[str] = []
    complete = False
    pending = [""]
    while pending:
        relative = pending.pop()
        base = f"{root}/{relative}".rstrip("/")
        for info in filesystem.get_file_info(fs.FileSelector(base, allow_not_found=True)):
            name = f"{relative}{info.base_name}"
            if relative == "" and info.base_name == MARKER:
                complete = True
            if _is_ignored(info.base_name):
                ignored.append(name)
            elif info.type == fs.FileType.Directory:
                if subfolders == "read":
                    pending.append(f"{name}/")
                else:
                    refused.append(name)
            else:
                files.append(DataFile(name, int(info.size or 0), int(info.mtime_ns or 0)))
    return DayListing(
        day=day,
        folder=folder,
        data_files=tuple(sorted(files, key=lambda f: f.path)),
        ignored=tuple(sorted(ignored)),
        subfolders=tuple(sorted(refused)),
        complete=complete,
    )


@dataclass(frozen=True)
class _Footer:
    file: DataFile
    schema: pa.Schema
    rows: int


def _read_footer(filesystem: fs.FileSystem, root: str, file: DataFile, folder: str) -> _Footer:
    import pyarrow.parquet as pq

    try:
        with filesystem.open_input_file(f"{root}/{file.path}") as handle:
            metadata = pq.ParquetFile(handle).metadata
            schema = metadata.schema.to_arrow_schema()
    except (OSError, pa.ArrowException) as error:
        raise WarehouseReadError(
            f"{folder}/{file.path} is not a readable Parquet file ({error}); a day folder may hold "
            "only Parquet data files and hidden bookkeeping (names starting with '_' or '.'): "
            "remove or rename it"
        ) from error
    return _Footer(file, schema.remove_metadata(), metadata.num_rows)


def _unreadable(type_: pa.DataType) -> str | None:
    """Why Spark cannot read this Arrow type, or None."""
    if pa.types.is_time(type_) or pa.types.is_duration(type_) or pa.types.is_interval(type_):
        return f"Parquet type {type_} (time of day/duration) has no Spark type"
    if pa.types.is_uint64(type_):
        return "unsigned 64-bit integers do not fit Spark's long"
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        return _unreadable(type_.value_type)
    if pa.types.is_struct(type_):
        return next((r for f in type_ for r in [_unreadable(f.type)] if r), None)
    return None


def _check_columns(footer: _Footer, folder: str) -> None:
    for field in footer.schema:
        reason = _unreadable(field.type)
        if reason:
            raise WarehouseReadError(
                f"{folder}/{footer.file.path}, column '{field.name}': {reason}; write it as a "
                "supported type (int, float, timestamp, string, list of numbers)"
            )


def _nanosecond_columns(schema: pa.Schema) -> dict[str, bool]:
    """Top-level nanosecond timestamp columns → whether they carry a time zone (an instant)."""
    return {
        f.name: f.type.tz is not None for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"
    }


def read_day(spark: SparkSession, uri: str, day: str, subfolders: SubfolderRule = "refuse") -> DayRead:
    """Reads exactly the data files of `<uri>/dt=<day>/`; see the module docstring for the rules."""
    from pyarrow import fs

    listing = list_day(uri, day, subfolders)
    if listing.subfolders:
        raise WarehouseReadError(
            f"{listing.folder} holds the subfolder(s) {', '.join(listing.subfolders)} beside its "
            "data files; only the files directly in a day folder are its rows (move the subfolder "
            "out, or declare ParquetWarehouse(subfolders='read') to read its files as more rows of "
            "the day)"
        )
    if not listing.data_files and not listing.ignored:
        raise WarehouseReadError(f"{listing.folder} does not exist or is empty: no logs for {day} yet")
    if not listing.data_files:
        raise WarehouseReadError(
            f"{listing.folder} holds no data files"
            + (f" (ignored: {', '.join(listing.ignored)})" if listing.ignored else "")
        )
    filesystem, root = fs.FileSystem.from_uri(pyarrow_uri(listing.folder))
    with ThreadPoolExecutor(FOOTER_THREADS) as pool:
        footers = list(
            pool.map(lambda f: _read_footer(filesystem, root, f, listing.folder), listing.data_files)
        )
    for footer in footers:
        _check_columns(footer, listing.folder)
    with_rows = [f for f in footers if f.rows > 0]
    skipped = tuple(f.file.path for f in footers if f.rows == 0)
    if not with_rows:
        # An empty day: its columns come from the best-typed file (Spark reads `null` as int, which
        # the contract casts); zero rows, so no value depends on it.
        typed = min(footers, key=lambda f: sum(pa.types.is_null(c.type) for c in f.schema))
        frame = spark.read.parquet(f"{listing.folder}/{typed.file.path}")
        return DayRead(frame, listing, 0, skipped)
    frame = _read_groups(spark, listing.folder, with_rows)
    return DayRead(frame, listing, sum(f.rows for f in footers), skipped)


def _read_groups(spark: SparkSession, folder: str, footers: Sequence[_Footer]) -> DataFrame:
    """One Spark read per distinct schema, cast to the widest type per column, unioned by name."""
    groups: dict[pa.Schema, list[_Footer]] = {}
    for footer in footers:
        groups.setdefault(footer.schema, []).append(footer)
    first = next(iter(groups))
    for schema, members in groups.items():
        if set(schema.names) != set(first.names):
            missing = sorted(set(first.names) ^ set(schema.names))
            raise WarehouseReadError(
                f"files of {folder} disagree on their columns: {members[0].file.path} and "
                f"{groups[first][0].file.path} differ in {missing}; every file of a day must "
                "have the same columns"
            )
    if any(_nanosecond_columns(schema) for schema in groups):
        # Spark refuses INT64 TIMESTAMP(NANOS) unless asked to read it as a long; we convert it back.
        spark.conf.set(NANOS_AS_LONG, "true")
    frames = []
    for schema, members in groups.items():
        frame = spark.read.parquet(*[f"{folder}/{m.file.path}" for m in members])
        nanos = _nanosecond_columns(schema)
        untyped = {f.name for f in schema if pa.types.is_null(f.type)}
        frames.append((members[0].file.path, frame, nanos, untyped))
    widest = _widest_types(
        folder, [(path, _spark_types(frame, nanos, untyped)) for path, frame, nanos, untyped in frames]
    )
    aligned = [
        frame.select(*[_column(c, nanos, c in untyped).cast(t).alias(c) for c, t in widest.items()])
        for _, frame, nanos, untyped in frames
    ]
    return reduce(lambda a, b: a.unionByName(b), aligned)


def _spark_types(frame: DataFrame, nanos: dict[str, bool], untyped: set[str]) -> dict[str, DataType]:
    """The group's Spark types, with the types its nanosecond and all-null columns will take."""
    from pyspark.sql import types as T

    types = {f.name: f.dataType for f in frame.schema.fields}
    for name in untyped:
        types[name] = T.NullType()
    for name, is_instant in nanos.items():
        types[name] = T.TimestampType() if is_instant else T.TimestampNTZType()
    return types


def _column(name: str, nanos: dict[str, bool], untyped: bool) -> Column:
    from pyspark.sql import functions as F

    if untyped:
        return F.lit(None)
    if name in nanos:
        micros = f"`{name}` div 1000"
        if nanos[name]:
            return F.expr(f"timestamp_micros({micros})")
        return F.expr(f"timestampadd(MICROSECOND, {micros}, TIMESTAMP_NTZ'1970-01-01 00:00:00')")
    return F.col(name)


def _widest_types(folder: str, groups: Sequence[tuple[str, dict[str, DataType]]]) -> dict[str, DataType]:
    widest = dict(groups[0][1])
    seen_in = {name: groups[0][0] for name in widest}
    for path, types in groups[1:]:
        for name, type_ in types.items():
            merged = widen(widest[name], type_)
            if merged is None:
                raise WarehouseReadError(
                    f"{folder}: column '{name}' is {widest[name].simpleString()} in {seen_in[name]} "
                    f"but {type_.simpleString()} in {path}; the files of a day must agree on each "
                    "column's kind (numbers of any width, timestamps of any unit)"
                )
            if merged != widest[name]:
                widest[name], seen_in[name] = merged, path
    return widest


_INTEGER_ORDER = ("tinyint", "smallint", "int", "bigint")


def widen(a: DataType, b: DataType) -> DataType | None:
    """The narrowest type holding both, or None when they are different kinds."""
    from pyspark.sql import types as T

    if a == b:
        return a
    if isinstance(a, T.NullType):
        return b
    if isinstance(b, T.NullType):
        return a
    if isinstance(a, T.IntegralType) and isinstance(b, T.IntegralType):
        order = _INTEGER_ORDER.index
        return a if order(a.simpleString()) >= order(b.simpleString()) else b
    if isinstance(a, T.NumericType) and isinstance(b, T.NumericType):
        return T.DoubleType()
    if isinstance(a, T.ArrayType) and isinstance(b, T.ArrayType):
        element = widen(a.elementType, b.elementType)
        return None if element is None else T.ArrayType(element, a.containsNull or b.containsNull)
    return None

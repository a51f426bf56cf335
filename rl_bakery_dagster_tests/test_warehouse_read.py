"""Warehouse days as real writers leave them are read exactly: every row, once, or a refusal naming the path.

Each case writes a day folder the way a real tool does (pandas and pyarrow with their defaults,
Spark with its bookkeeping, mixed precisions, subfolders, empty files) and compares what
`read_day` returns with what was written, computed independently of the reader.
"""

import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rl_bakery_dagster.warehouse import WarehouseReadError, read_day

DAY = "2024-01-01"


def folder(root: Path) -> Path:
    path = root / f"dt={DAY}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def rows_of(spark, root: Path, **options: str) -> list[dict]:
    read = read_day(spark, str(root), DAY, **options)  # type: ignore[arg-type]
    return sorted((r.asDict() for r in read.frame.collect()), key=lambda r: sorted(r.items(), key=str))


def test_pandas_and_pyarrow_default_nanosecond_timestamps_are_read(spark, tmp_path: Path) -> None:
    """pandas and pyarrow write nanosecond timestamps by default; Spark alone refuses them."""
    day = folder(tmp_path)
    naive = pd.DataFrame(
        {
            "user_id": [1, 2],
            "ts": pd.to_datetime(["2024-01-01 10:00:00.123456", "2024-01-01 23:59:59.000000"]),
        }
    )
    naive.to_parquet(day / "pandas.parquet")  # TIMESTAMP(NANOS, isAdjustedToUTC=false)
    assert pq.read_schema(day / "pandas.parquet").field("ts").type == pa.timestamp("ns")

    rows = rows_of(spark, tmp_path)
    assert [r["ts"] for r in sorted(rows, key=lambda r: r["user_id"])] == [
        datetime(2024, 1, 1, 10, 0, 0, 123456),
        datetime(2024, 1, 1, 23, 59, 59),
    ]


@pytest.mark.parametrize("unit", ["ns", "us", "ms"])  # every Parquet timestamp unit
def test_instants_in_every_unit_are_the_same_instant(spark, tmp_path: Path, unit: str) -> None:
    """A zone-aware timestamp is an instant whatever its unit: 10:00 UTC stays 10:00 UTC."""
    instant = datetime(2024, 1, 1, 10, 0, tzinfo=UTC)
    table = pa.table({"user_id": [7], "ts": pa.array([instant], pa.timestamp(unit, tz="UTC"))})
    pq.write_table(table, folder(tmp_path) / "part-0.parquet")
    read = read_day(spark, str(tmp_path), DAY)
    assert read.frame.schema["ts"].dataType.simpleString() == "timestamp"
    seconds = read.frame.selectExpr("unix_seconds(ts) AS s").first()["s"]
    assert seconds == int(instant.timestamp())


def test_a_spark_written_day_with_leftovers_is_read_exactly(spark, tmp_path: Path) -> None:
    """Spark's committer leaves `_SUCCESS`, `.crc` files and, when a job died, `_temporary/` attempts."""
    day = folder(tmp_path)
    spark.range(0, 50).selectExpr("id AS user_id", "CAST(id AS DOUBLE) AS x").coalesce(2).write.mode(
        "overwrite"
    ).parquet(str(day))
    written = sorted(os.listdir(day))
    assert "_SUCCESS" in written and any(n.endswith(".crc") for n in written)
    attempt = day / "_temporary" / "0" / "_temporary" / "attempt_0"
    attempt.mkdir(parents=True)
    pq.write_table(pa.table({"user_id": [999], "x": [9.0]}), attempt / "part-00009.parquet")
    in_flight = day / "part-00010.parquet.part"  # an upload not finished
    pq.write_table(pa.table({"user_id": [998], "x": [8.0]}), in_flight)
    (day / "_committed_1234").write_text("{}")  # another committer's marker

    read = read_day(spark, str(tmp_path), DAY)
    assert sorted(r.user_id for r in read.frame.collect()) == list(range(50))
    assert read.rows == 50
    assert "_temporary" in read.listing.ignored and "part-00010.parquet.part" in read.listing.ignored


@pytest.mark.parametrize(
    "names",
    [
        ("part-0.parquet", "part-1.parquet"),  # the float32 file sorts first
        ("part-1.parquet", "part-0.parquet"),  # the float64 file sorts first
    ],
)
def test_mixed_precisions_are_widened_whatever_the_file_order(
    spark, tmp_path: Path, names: tuple[str, str]
) -> None:
    """One exporter wrote float32/int32, another float64/int64: the day holds both, in either order."""
    day = folder(tmp_path)
    narrow = pa.table({"user_id": pa.array([1, 2], pa.int32()), "x": pa.array([0.5, 1.25], pa.float32())})
    wide = pa.table({"user_id": pa.array([3, 2**40], pa.int64()), "x": pa.array([0.1, 1e300], pa.float64())})
    pq.write_table(narrow, day / names[0])
    pq.write_table(wide, day / names[1])

    read = read_day(spark, str(tmp_path), DAY)
    types = {f.name: f.dataType.simpleString() for f in read.frame.schema.fields}
    assert types == {"user_id": "bigint", "x": "double"}
    got = {r.user_id: r.x for r in read.frame.collect()}
    assert got == {1: 0.5, 2: 1.25, 3: 0.1, 2**40: 1e300}


def test_a_subfolder_beside_the_day_files_is_refused_or_read_by_rule(spark, tmp_path: Path) -> None:
    """An export's `hour=23/` beside the day's files made Spark read only the subfolder (8 of 320 rows)."""
    from rl_bakery_dagster.application import ParquetWarehouse

    day = folder(tmp_path)
    pq.write_table(pa.table({"user_id": list(range(312))}), day / "part-0.parquet")
    (day / "hour=23").mkdir()
    pq.write_table(pa.table({"user_id": list(range(312, 320))}), day / "hour=23" / "part-0.parquet")

    with pytest.raises(WarehouseReadError, match=r"hour=23.*beside its data files"):
        read_day(spark, str(tmp_path), DAY)
    frame = ParquetWarehouse(str(tmp_path), subfolders="read").read(spark, DAY)
    assert sorted(r.user_id for r in frame.collect()) == list(range(320))
    assert frame.columns == ["user_id"]  # no `hour` column guessed from the folder name


def test_an_untyped_empty_file_is_skipped(spark, tmp_path: Path) -> None:
    """pandas writes an empty object column as Parquet `null`; it must not decide the day's types."""
    day = folder(tmp_path)
    pd.DataFrame({"user_id": pd.Series([], dtype=object), "x": pd.Series([], dtype=object)}).to_parquet(
        day / "part-0.parquet"
    )
    pd.DataFrame({"user_id": [1, 2], "x": [0.5, 1.5]}).to_parquet(day / "part-1.parquet")

    read = read_day(spark, str(tmp_path), DAY)
    assert read.skipped_empty == ("part-0.parquet",)
    assert {f.name: f.dataType.simpleString() for f in read.frame.schema.fields} == {
        "user_id": "bigint",
        "x": "double",
    }
    assert sorted((r.user_id, r.x) for r in read.frame.collect()) == [(1, 0.5), (2, 1.5)]


def test_a_day_of_untyped_empty_files_is_an_empty_day(spark, tmp_path: Path) -> None:
    """The product logged nothing and pandas wrote object columns: zero rows, columns kept."""
    pd.DataFrame({"user_id": pd.Series([], dtype=object), "version": pd.Series([], dtype=object)}).to_parquet(
        folder(tmp_path) / "part-0.parquet"
    )
    read = read_day(spark, str(tmp_path), DAY)
    assert read.frame.columns == ["user_id", "version"] and read.frame.count() == 0 and read.rows == 0


def test_a_column_that_is_all_null_in_one_file_takes_the_other_files_type(spark, tmp_path: Path) -> None:
    """A file whose optional column happens to be all None is typed `null` by pandas."""
    day = folder(tmp_path)
    pd.DataFrame({"user_id": [1], "version": [None]}).to_parquet(day / "part-0.parquet")
    pd.DataFrame({"user_id": [2], "version": ["v2"]}).to_parquet(day / "part-1.parquet")
    read = read_day(spark, str(tmp_path), DAY)
    assert sorted((r.user_id, r.version) for r in read.frame.collect()) == [(1, None), (2, "v2")]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        # a manifest beside the data files
        (
            lambda d: (d / "manifest.json").write_text('{"files": 1}'),
            r"manifest\.json is not a readable Parquet file",
        ),
        # a column Spark has no type for
        (
            lambda d: pq.write_table(
                pa.table({"user_id": [1], "t": pa.array([1], pa.time64("us"))}), d / "odd.parquet"
            ),
            r"odd\.parquet, column 't'",
        ),
        # two files that disagree on a column's kind
        (
            lambda d: pq.write_table(pa.table({"user_id": ["a"]}), d / "text.parquet"),
            r"column 'user_id' is .* in .*parquet but .* in .*parquet",
        ),
        # two files that disagree on the columns
        (
            lambda d: pq.write_table(pa.table({"user_id": [1], "extra": [1.0]}), d / "wide.parquet"),
            r"differ in \['extra'\]",
        ),
    ],
)
def test_an_unreadable_file_is_named_with_its_column(spark, tmp_path: Path, write, message: str) -> None:
    """The error names the file (and the column) first, not a JVM stack."""
    day = folder(tmp_path)
    pq.write_table(pa.table({"user_id": [1, 2]}), day / "good.parquet")
    write(day)
    with pytest.raises(WarehouseReadError, match=message) as error:
        read_day(spark, str(tmp_path), DAY)
    assert str(tmp_path) in str(error.value) and "\n\tat " not in str(error.value)


def test_a_day_with_only_bookkeeping_is_refused_naming_it(spark, tmp_path: Path) -> None:
    """`_SUCCESS` alone is not a day of logs: the read says what it ignored."""
    (folder(tmp_path) / "_SUCCESS").write_text("")
    with pytest.raises(WarehouseReadError, match=r"holds no data files \(ignored: _SUCCESS\)"):
        read_day(spark, str(tmp_path), DAY)


def test_the_fingerprint_changes_with_the_files_and_only_with_them(tmp_path: Path) -> None:
    """The data version Dagster compares: same files, same version; a late file, a new one."""
    from rl_bakery_dagster.warehouse import list_day

    day = folder(tmp_path)
    pq.write_table(pa.table({"user_id": np.arange(3)}), day / "part-0.parquet")
    (day / "_SUCCESS").write_text("")
    first = list_day(str(tmp_path), DAY)
    assert first.complete and list_day(str(tmp_path), DAY).fingerprint == first.fingerprint
    (day / ".part-0.parquet.crc").write_text("checksum")  # bookkeeping does not count
    assert list_day(str(tmp_path), DAY).fingerprint == first.fingerprint
    pq.write_table(pa.table({"user_id": np.arange(3, 5)}), day / "part-1.parquet")  # late rows
    assert list_day(str(tmp_path), DAY).fingerprint != first.fingerprint

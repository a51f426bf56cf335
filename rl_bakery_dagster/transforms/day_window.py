"""The day's time window: a timestamp timestep of day d must fall on day d.

Kept beside the row rules of `validation.py` but apart from them, because it needs the day and
the day folders' time zone, which the other rules do not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from rl_bakery_dagster.application import TimestepSchema
from rl_bakery_dagster.transforms.validation import SAMPLE_ROWS, Violation

DAY_WINDOW_RULE = "timestep_in_day"


def day_window(day: str, time_zone: str) -> tuple[datetime, datetime]:
    """Local midnight of `day` and of the next day in `time_zone`, as UTC instants (DST-aware)."""
    first = date.fromisoformat(day)
    zone = ZoneInfo(time_zone)
    start = datetime.combine(first, time.min, zone)
    end = datetime.combine(first + timedelta(days=1), time.min, zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def day_window_violations(timesteps: DataFrame, schema: TimestepSchema, day: str) -> list[Violation]:
    """Refuses rows whose timestamp timestep lies outside day `day` in the day folders' zone.

    A timestamp with a zone (an instant) must lie in [local midnight of day, local midnight of
    the next day); one without a zone is wall-clock time in `schema.day_time_zone` and must lie
    in [day 00:00, next day 00:00). Integer timestep ids carry no time and are not checked.
    Rows of another day are refused rather than moved: the day they belong to may already be
    trained, and a row silently moved there would never be seen (repair: write it to its day).
    One aggregate pass; sample rows are fetched only when some row is outside.
    """
    column = schema.timestep_column
    kind = timesteps.schema[column].dataType
    start, end = day_window(day, schema.day_time_zone)
    if isinstance(kind, T.TimestampNTZType):
        first = date.fromisoformat(day)
        low = F.lit(f"{first} 00:00:00").cast(T.TimestampNTZType())
        high = F.lit(f"{first + timedelta(days=1)} 00:00:00").cast(T.TimestampNTZType())
    elif isinstance(kind, T.TimestampType):
        low = F.timestamp_micros(F.lit(int(start.timestamp()) * 1_000_000))
        high = F.timestamp_micros(F.lit(int(end.timestamp()) * 1_000_000))
    else:
        return []
    value = F.col(column)
    offending = value.isNotNull() & ((value < low) | (value >= high))
    count = timesteps.agg(F.sum(F.when(offending, 1).otherwise(0)).alias("n")).first()["n"] or 0
    if not count:
        return []
    keys = [*schema.env_id_columns, column]
    outside = timesteps.filter(offending).select(*keys).orderBy(column).limit(SAMPLE_ROWS)
    window = f"[{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) UTC"
    return [
        Violation(
            DAY_WINDOW_RULE,
            (column,),
            f"must fall on {day} in {schema.day_time_zone} (the day folder dt={day}), i.e. in "
            f"{window}; write rows of another day to that day's folder, or declare the folders' "
            "zone with TimestepSchema(day_time_zone=...)",
            count,
            [r.asDict() for r in outside.collect()],
        )
    ]

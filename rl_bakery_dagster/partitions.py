"""Daily partitions and the partition mappings that wire the graph (DESIGN.md).

Every asset of an application shares one partitions definition (dagster#19625) and runs a
backfill range in one run (`single_run`), so the checkpoint chain trains day by day in order.
"""

from __future__ import annotations

import datetime
import warnings

import dagster as dg

single_run = dg.BackfillPolicy.single_run()
"""Every asset runs a backfill range in one run (beta in Dagster 1.13; its warning is silenced)."""
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def _time_window_mapping(start_offset: int, end_offset: int) -> dg.TimeWindowPartitionMapping:
    """A mapping that lets the first days run although their upstream days do not exist."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=start_offset,
            end_offset=end_offset,
            allow_nonexistent_upstream_partitions=True,
        )


previous_day = _time_window_mapping(-1, -1)
"""agent_checkpoint[d] ← agent_checkpoint[d-1]; the first day has no previous checkpoint."""


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC")


def lookback(days: int) -> dg.TimeWindowPartitionMapping:
    """timesteps[d-days .. d], for windows whose first timesteps fall before midnight."""
    return _time_window_mapping(-days, 0)


def earlier_days(days: int) -> dg.TimeWindowPartitionMapping:
    """timesteps[d-days .. d-1]: the stored days that day d is validated against."""
    return _time_window_mapping(-days, -1)


def training_window(lag_days: int, window_days: int) -> dg.TimeWindowPartitionMapping:
    """trajectories[d-lag-window+1 .. d-lag]: the transitions agent_checkpoint[d] trains on."""
    return _time_window_mapping(-(lag_days + window_days - 1), -lag_days)


def shift_day(day: str, days: int) -> str:
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=days)).isoformat()


def window_days(day: str, lag_days: int, window_days: int) -> list[str]:
    """The days of `training_window(lag_days, window_days)` for `day`, oldest first."""
    last = shift_day(day, -lag_days)
    return [shift_day(last, -offset) for offset in reversed(range(window_days))]


def days_between(first: str, last: str) -> int:
    return (datetime.date.fromisoformat(last) - datetime.date.fromisoformat(first)).days

"""A day is read only once the warehouse says its logs are complete, whatever launched the run.

The check lives at the start of `timesteps` rather than in the sensor alone, so the schedule,
the UI's *Materialize*, the CLI and backfills all refuse a half-written day the same way.
"""

from collections.abc import Sequence

import dagster as dg

from rl_bakery_dagster.application import Application


def incomplete_days(app: Application, days: Sequence[str]) -> list[str]:
    """The days of `days` that the warehouse does not yet list as complete (none when not required)."""
    if not app.require_complete_days:
        return []
    complete = set(app.warehouse.complete_days())
    return [day for day in days if day not in complete]


def refuse_incomplete_days(app: Application, days: Sequence[str]) -> None:
    """Fails the step, before anything is read, when one of `days` is not complete."""
    missing = incomplete_days(app, days)
    if missing:
        raise dg.Failure(
            description=(
                f"{app.name}: the warehouse's logs for {', '.join(missing)} are not complete "
                "(a ParquetWarehouse marks a finished day with dt=<day>/_SUCCESS), so the day is "
                "not read: it may still be being written. Run it again once the writer has "
                "finished; a warehouse that writes no markers needs "
                "Application(require_complete_days=False)."
            ),
            metadata={"incomplete_days": ", ".join(missing)},
        )

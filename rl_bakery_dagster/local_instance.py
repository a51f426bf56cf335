"""The embedded Dagster instance: a folder under the bakery home, with one run per application at a time."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

MARKER = "# Written by rl_bakery_dagster"

DAGSTER_YAML = f"""\
{MARKER}: one run per application at a time. Every asset of an application is in the pool
# rl_bakery_<app> (rl_bakery_dagster/concurrency.py); with run granularity and a limit of 1 the
# run queue holds a second run of that application until the first ends, however it was
# launched (UI, sensor, schedule, backfill). The tag limit is kept for runs of older versions.
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: "rl_bakery/app"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    granularity: run
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home(home: Path) -> Path:
    """Sets `DAGSTER_HOME` to `<home>/dagster` unless set, and writes its `dagster.yaml`.

    A `dagster.yaml` this package wrote earlier is brought up to date; one written by anyone
    else is left alone.
    """
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists() or config.read_text().startswith(MARKER):
        config.write_text(DAGSTER_YAML)
    return dagster_home


def local_instance(home: Path) -> dg.DagsterInstance:
    ensure_dagster_home(home)
    return dg.DagsterInstance.get()


if __name__ == "__main__":
    from rl_bakery_dagster.definitions import bakery_home

    print(ensure_dagster_home(bakery_home()))

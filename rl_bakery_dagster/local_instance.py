"""The embedded Dagster instance: a folder under the bakery home, with one run per application at a time."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

DAGSTER_YAML = """\
# Written by rl_bakery_dagster: runs of one application queue one behind the other, so a
# backfill of one run per day trains its checkpoint chain in order.
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: "rl_bakery/app"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""


def ensure_dagster_home(home: Path) -> Path:
    """Sets `DAGSTER_HOME` to `<home>/dagster` unless set, and writes its `dagster.yaml` once."""
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    return dagster_home


def local_instance(home: Path) -> dg.DagsterInstance:
    ensure_dagster_home(home)
    return dg.DagsterInstance.get()


if __name__ == "__main__":
    from rl_bakery_dagster.definitions import bakery_home

    print(ensure_dagster_home(bakery_home()))

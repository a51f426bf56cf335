"""The Open Bandit Dataset demo: real logs in, a daily bandit trained, judged off-policy each day.

Fetches the public sample (or reads `--source`), writes it to the local warehouse as daily
folders, and materialises 2019-11-24 .. 2019-11-30 through the `daily_training` job. Each day
prints the logging policies' observed click rates beside the off-policy estimates of our policy
(trained through the day before) on that day's logs; the last line is the table as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.local_instance import local_instance

GATE_CONFIG = {"ops": {"obd__policy_evaluation": {"config": {"model_free_check": True}}}}
"""The logging policies explore broadly (uniform, Thompson sampling) and the reward model is weak on
these sparse clicks, so the deployment gate also asks IPS."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="folder with random/all.csv, bts/all.csv")
    parser.add_argument("--days", type=int, default=7, help="days to train, from 2019-11-24")
    args = parser.parse_args()

    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    home = bakery_home()
    instance = local_instance(home)
    from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD
    from rl_bakery_dagster.examples.obd.application import START_DATE, warehouse_uri
    from rl_bakery_dagster.examples.obd.data import default_source, download_sample, write_warehouse
    from rl_bakery_dagster.examples.obd.definitions import defs
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.partitions import shift_day
    from rl_bakery_dagster.resources.io_managers import read_json
    from rl_bakery_dagster.resources.storage import StorageRoot

    source = args.source or download_sample(default_source(home))
    days = write_warehouse(source, warehouse_uri())[: args.days]
    print(f"warehouse: {warehouse_uri()} ({len(days)} days from {source})")
    job = defs.resolve_job_def(DAILY_JOB)
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)  # type: ignore[union-attr]
    rows = []
    started = time.monotonic()
    print(
        f"{'day':<11} {'rows':>5} {'random':>7} {'bts':>7} {'ours (DR, 95% CI)':>26} "
        f"{'IPS':>8} {'SNIPS':>8}  gate"
    )
    for offset, day in enumerate(days):
        assert day == shift_day(START_DATE, offset), (
            f"the sample has no logs on {shift_day(START_DATE, offset)}"
        )
        result = job.execute_in_process(partition_key=day, instance=instance, run_config=GATE_CONFIG)
        if not result.success:
            raise SystemExit(f"{day}: the run failed; see the Dagster UI (bash scripts/ui.sh)")
        uri = storage.read_uri(["obd", "policy_evaluation"], day)
        record = read_json(f"{uri}/{EVALUATION_RECORD}")
        estimates, observed = record["estimates"], record["logging_policies"]
        dr = estimates["dr"]
        row = {
            "day": day,
            "rows": record["rows"],
            **{f"observed_{p}": observed.get(p, {}).get("value", math.nan) for p in ("random", "bts")},
            **{name: estimates[name]["value"] for name in ("logging", "ips", "snips", "dm", "dr")},
            "dr_lower": dr["lower"],
            "dr_upper": dr["upper"],
            "accepted": record["accepted"],
        }
        rows.append(row)
        print(
            f"{day:<11} {row['rows']:>5} {row['observed_random']:>7.4f} {row['observed_bts']:>7.4f} "
            f"{dr['value']:>8.4f} [{dr['lower']:>7.4f}, {dr['upper']:>7.4f}] {row['ips']:>8.4f} "
            f"{row['snips']:>8.4f}  {'accepted' if record['accepted'] else 'REFUSED'}"
        )
    print(f"{len(days)} days in {time.monotonic() - started:.0f}s; estimates are click rates per impression")
    print(json.dumps({"days": rows}))


if __name__ == "__main__":
    main()

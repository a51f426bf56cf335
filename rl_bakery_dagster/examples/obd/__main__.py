"""The Open Bandit Dataset demo: real logs in, a daily bandit trained, judged off-policy each day.

Fetches the public sample (or reads `--source`, any OBD campaign in obp's layout or the flat one),
checks it, writes it to the local warehouse as daily folders, and materialises each logged day
through the `daily_training` job. Each day prints the logging policies' observed click rates beside
the off-policy estimates of our policy (trained through the day before) on that day's logs and the
gate's outcome; the table is also written as a JSON results file, and the last line is that JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rl_bakery_dagster.definitions import bakery_home
from rl_bakery_dagster.local_instance import local_instance

if TYPE_CHECKING:
    import pandas as pd

    from rl_bakery_dagster.resources.agents import TFAgentsResource

GATE_CONFIG = {"ops": {"obd__policy_evaluation": {"config": {"model_free_check": True}}}}
"""The logging policies explore broadly (uniform, Thompson sampling) and the reward model is weak on
these sparse clicks, so the deployment gate also asks IPS, which needs no model."""


def day_row(record: dict) -> dict:
    """One line of the table from a day's `evaluation.json`."""
    estimates, observed = record["estimates"], record["logging_policies"]
    dr = estimates["dr"]
    return {
        "day": record["day"],
        "rows": record["rows"],
        **{f"observed_{p}": observed.get(p, {}).get("value", math.nan) for p in ("random", "bts")},
        **{name: estimates[name]["value"] for name in ("logging", "ips", "snips", "dm", "dr")},
        "dr_lower": dr["lower"],
        "dr_upper": dr["upper"],
        "dr_normal_lower": dr["normal_lower"],
        "dr_normal_upper": dr["normal_upper"],
        "ips_upper": estimates["ips"]["upper"],
        "effective_sample_size": record["effective_sample_size"],
        "max_weight": record["max_weight"],
        "reward_model_mean_prediction": record["reward_model"]["mean_prediction"],
        "outcome": record["outcome"],
        "deployed": record["deployment"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help="a folder with an OBD campaign")
    parser.add_argument(
        "--campaign", default=None, help="the campaign (all, men, women); default: the only one"
    )
    parser.add_argument("--days", type=int, default=None, help="days to run, from the first logged day")
    parser.add_argument("--results", type=Path, default=None, help="JSON results file")
    args = parser.parse_args()

    from rl_bakery_dagster.examples.obd.data import (
        CampaignError,
        SampleUnavailable,
        campaign_days,
        default_source,
        download_sample,
        find_campaign,
        read_logs,
    )

    home = bakery_home()
    try:
        source = args.source or download_sample(default_source(home))
    except SampleUnavailable as error:
        raise SystemExit(f"cannot run the OBD example: {error}") from None
    try:  # every check runs before anything is written
        campaign = find_campaign(source, args.campaign)
        logs = read_logs(campaign)
        campaign_days(logs)
    except CampaignError as error:
        raise SystemExit(f"cannot run the OBD example: {error}") from None
    results = args.results or home / "results" / f"obd_{campaign.name}.json"
    run(campaign.name, campaign.items, logs, results, args.days, home)


def run(
    campaign: str,
    items: int,
    logs: pd.DataFrame,
    results: Path,
    days_to_run: int | None,
    home: Path,
    agent: TFAgentsResource | None = None,
) -> dict:
    """Writes the warehouse, materialises each day, prints the table and writes it to `results`."""
    os.environ.setdefault("RL_BAKERY_SPARK_CONF", '{"spark.log.level": "ERROR"}')
    instance = local_instance(home)
    from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD
    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster.examples.obd.application import obd_application, warehouse_uri
    from rl_bakery_dagster.examples.obd.data import write_warehouse
    from rl_bakery_dagster.jobs import DAILY_JOB
    from rl_bakery_dagster.resources.io_managers import read_json
    from rl_bakery_dagster.resources.storage import StorageRoot

    days = write_warehouse(logs, warehouse_uri())
    days = days[:days_to_run] if days_to_run else days
    print(
        f"warehouse: {warehouse_uri()} (campaign {campaign}: {items} items, {len(days)} days from {days[0]})"
    )
    defs = build_definitions(obd_application(agent, items=items, start_date=days[0]))
    job = defs.resolve_job_def(DAILY_JOB)
    storage = StorageRoot(defs.resources["checkpoint_io_manager"].root_uri)  # type: ignore[union-attr]
    rows = []
    started = time.monotonic()
    print(
        f"{'day':<11} {'rows':>5} {'random':>7} {'bts':>7} {'ours (DR, 95% CI)':>26} "
        f"{'IPS':>8} {'SNIPS':>8} {'ESS':>6}  gate"
    )
    for day in days:
        result = job.execute_in_process(partition_key=day, instance=instance, run_config=GATE_CONFIG)
        if not result.success:
            raise SystemExit(f"{day}: the run failed; see the Dagster UI (bash scripts/ui.sh)")
        uri = storage.read_uri(["obd", "policy_evaluation"], day)
        row = day_row(read_json(f"{uri}/{EVALUATION_RECORD}"))
        rows.append(row)
        print(
            f"{day:<11} {row['rows']:>5} {row['observed_random']:>7.4f} {row['observed_bts']:>7.4f} "
            f"{row['dr']:>8.4f} [{row['dr_lower']:>7.4f}, {row['dr_upper']:>7.4f}] {row['ips']:>8.4f} "
            f"{row['snips']:>8.4f} {row['effective_sample_size']:>6.0f}  {row['outcome'].replace('_', ' ')}"
        )
    print(f"{len(days)} days in {time.monotonic() - started:.0f}s; estimates are click rates per impression")
    table = {"campaign": campaign, "items": items, "days": rows}
    results.parent.mkdir(parents=True, exist_ok=True)
    staging = results.with_suffix(".json.tmp")
    staging.write_text(json.dumps(table, indent=2) + "\n")
    staging.replace(results)
    print(f"results: {results}")
    print(json.dumps(table))
    return table


if __name__ == "__main__":
    main()

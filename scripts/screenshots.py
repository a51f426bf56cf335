"""Screenshots of the running Dagster UI: the lineage, agent_checkpoint's plots and the latest run.

Checks in a real (headless) browser what a user sees after the demo. Needs a UI already running
(`bash scripts/ui.sh`) and Debian's Chromium (`apt-get install -y chromium`); Playwright is not
in the locked environment and never downloads a browser here:

    uv run --frozen --with playwright python scripts/screenshots.py [--url http://127.0.0.1:3000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

LATEST_RUN = "{ runsOrError(limit: 50) { ... on Runs { results { runId jobName } } } }"


def latest_run(url: str) -> str | None:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": LATEST_RUN}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        runs = json.load(response)["data"]["runsOrError"].get("results", [])
    training = [r for r in runs if r["jobName"] != "observe_warehouse"]  # a run that trained, if any
    return (training or runs)[0]["runId"] if runs else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the running Dagster UI")
    parser.add_argument("--app", default="cartpole", help="the application (asset group and location)")
    parser.add_argument("--gate", action="store_true", help="also policy_evaluation's events and checks")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser executable")
    default_out = Path(os.environ.get("RL_BAKERY_HOME", ".rl_bakery")) / "screenshots"
    parser.add_argument("--out", type=Path, default=default_out, help="where the PNG files go")
    args = parser.parse_args()

    url, app = args.url.rstrip("/"), args.app
    day = re.compile(r"\d{4}-\d{2}-\d{2}")
    pages: dict[str, tuple[str, str | re.Pattern[str]]] = {  # name -> (address, text once data is in)
        "lineage": (f"{url}/locations/{app}/asset-groups/{app}/lineage", re.compile(r"filled")),
        "checkpoint_plots": (f"{url}/assets/{app}/agent_checkpoint", re.compile(r"^Plots$")),
        "checkpoint_events": (
            f"{url}/assets/{app}/agent_checkpoint?view=events",
            re.compile("materialized in run"),
        ),
        "checkpoint_partitions": (f"{url}/assets/{app}/agent_checkpoint?view=partitions", day),
    }
    if args.gate:  # an application with the RL or bandit deployment gate
        pages["evaluation_events"] = (
            f"{url}/assets/{app}/policy_evaluation?view=events",
            re.compile("materialized in run"),
        )
        pages["evaluation_checks"] = (f"{url}/assets/{app}/policy_evaluation?view=checks", "deployment_gate")
    run_id = latest_run(url)
    if run_id:
        pages["run"] = (f"{url}/runs/{run_id}", re.compile(r"Finished|Started"))
    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium, headless=True, args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        for name, (address, ready) in pages.items():
            page.goto(address, wait_until="networkidle", timeout=120_000)
            page.get_by_text(ready).first.wait_for(timeout=180_000)
            page.wait_for_timeout(3_000)  # charts and the graph layout render after the data arrives
            page.keyboard.press("Escape")  # closes the first visit's "Join the Dagster community" dialog
            skip = page.get_by_role("button", name="Skip")
            if skip.count():  # the dialog, when Escape came before it opened
                skip.first.click()
            for _ in range(120):  # the code location, then the graph's nodes, load after the page
                if page.get_by_text(re.compile(r"^Loading")).count() == 0:
                    break
                page.wait_for_timeout(1_000)
            if name == "checkpoint_plots":  # the metadata section's Table/Plots toggle
                page.get_by_role("button", name="Plots").first.click()
                page.wait_for_timeout(3_000)
            target = args.out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"{name}: {address} -> {target}")
        browser.close()


if __name__ == "__main__":
    main()

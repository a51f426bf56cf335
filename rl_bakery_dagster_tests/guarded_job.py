"""A job whose only asset takes the application's turn, records when it held it, and holds it.

Cheap to launch many times at once from the shell, so `test_run_guard.py` can show that runs
which never pass through the run queue still take turns. With `GUARD_MEET=k` the holder keeps
its turn until k runs of the application exist, so the runs surely meet however slowly the
processes start on a loaded machine.
"""

import json
import os
import time
from pathlib import Path

import dagster as dg

from rl_bakery_dagster.run_guard import APPLICATION_TAG, ApplicationRunGuard


@dg.asset
def turn_taker(context: dg.AssetExecutionContext, run_guard: ApplicationRunGuard) -> dg.MaterializeResult:
    record = Path(os.environ["GUARD_RECORD"])
    start = time.time()
    meet = int(os.environ.get("GUARD_MEET", "0"))
    deadline = time.monotonic() + 240
    runs = dg.RunsFilter(tags={APPLICATION_TAG: "guarded"})
    while len(context.instance.get_run_records(filters=runs)) < meet and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(float(os.environ.get("GUARD_HOLD_SECONDS", "3")))
    with record.open("a") as out:
        out.write(json.dumps({"run": context.run_id, "start": start, "end": time.time()}) + "\n")
    return dg.MaterializeResult()


defs = dg.Definitions(
    assets=[turn_taker],
    jobs=[dg.define_asset_job("take_turn", [turn_taker])],
    resources={"run_guard": ApplicationRunGuard(application="guarded", poll_seconds=0.2)},
    executor=dg.in_process_executor,
)

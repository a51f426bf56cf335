"""One run per application at a time, whichever way the run was launched.

Every asset of an application carries the same Dagster pool, `application_pool(name)`, and the
embedded instance (`local_instance.py`) gives pools a limit of 1 at **run** granularity. The run
queue then holds back any run that needs a pool some in-progress run already holds, whatever
launched it: the UI's *Materialize* (the implicit `__ASSET_JOB`, which carries no job tags), the
daily job, the sensor, the schedule, backfills and `dagster job launch`. A blocked run waits in
the queue; it does not fail. A run-tag limit could not do this, because the UI's asset runs
carry only `dagster/*` tags. Runs that never enter the queue (`dagster job execute`,
`execute_in_process`) take the application's turn in `run_guard.py` instead.
"""

from rl_bakery_dagster.application import require_safe_name


def application_pool(name: str) -> str:
    """The Dagster pool shared by every asset of application `name`."""
    return f"rl_bakery_{require_safe_name(name, 'application name')}"

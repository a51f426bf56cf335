"""One run per application at a time, also for runs that never pass through the run queue.

The instance's queue (`concurrency.py`, `local_instance.py`) holds back a second *queued* run of
an application, but `dagster job execute`, `dagster asset materialize` and `execute_in_process`
run in the caller's process and never enter the queue. So every asset of an application starts
by taking a turn here, through the instance's own run storage, whatever launched its run.

Why Lamport's bakery algorithm rather than a file lock or a timestamp: the only store every
launch path shares is the Dagster instance, and the only things a run may write there through
the public API are its tags. The bakery algorithm needs exactly that — each run writes only its
own "choosing" flag and ticket and reads everyone else's — and it is correct without an atomic
compare-and-set and without clocks that agree. A run whose ticket is the smallest (ties broken
by run id) among the application's runs in progress goes first; the others wait, logging which
run they wait for. Tickets of finished runs no longer count, so a crashed run's turn ends as soon
as Dagster marks it failed.

A run killed outright (SIGKILL, a lost machine) stays "STARTED" in the instance until someone or
Dagster's run monitoring marks it failed. Its holder's host and pid are recorded (the
application's definitions use the in-process executor, so that pid is the run's own process for
its whole life): on the same host a run whose process is gone is skipped with a warning; on
another host the waiting run says which run to mark failed (the UI's *Terminate* on that run),
and gives up after `wait_timeout_minutes`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dagster as dg

APPLICATION_TAG = "rl_bakery/app"
CHOOSING_TAG = "rl_bakery/choosing"
TICKET_TAG = "rl_bakery/ticket"
HOLDER_TAG = "rl_bakery/holder"
IN_PROGRESS = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class Turn:
    """What one in-progress run of the application has written about its turn."""

    run_id: str
    choosing: bool
    ticket: int | None
    host: str | None
    pid: int | None

    @classmethod
    def of(cls, run: dg.DagsterRun) -> Turn:
        ticket = run.tags.get(TICKET_TAG)
        host, _, pid = run.tags.get(HOLDER_TAG, "").rpartition(":")
        return cls(
            run_id=run.run_id,
            choosing=run.tags.get(CHOOSING_TAG) == "1",
            ticket=int(ticket) if ticket and ticket.isdigit() else None,
            host=host or None,
            pid=int(pid) if pid.isdigit() else None,
        )

    def process_is_gone(self) -> bool:
        """True only when the holder ran on this host and its process no longer exists."""
        if self.host != socket.gethostname() or self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def goes_before(self, ticket: int, run_id: str) -> bool:
        return self.choosing or (self.ticket is not None and (self.ticket, self.run_id) < (ticket, run_id))


def turns_in_progress(instance: dg.DagsterInstance, application: str, exclude: str) -> list[Turn]:
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={APPLICATION_TAG: application})
    )
    return [Turn.of(r.dagster_run) for r in records if r.dagster_run.run_id != exclude]


def take_ticket(instance: dg.DagsterInstance, application: str, run: dg.DagsterRun) -> int:
    """The bakery's doorway: raise the flag, take one more than every ticket in sight, lower it."""
    stored = instance.get_run_by_id(run.run_id)
    existing = (stored or run).tags.get(TICKET_TAG)
    if existing is not None and existing.isdigit():
        return int(existing)
    holder = f"{socket.gethostname()}:{os.getpid()}"
    instance.add_run_tags(run.run_id, {APPLICATION_TAG: application, CHOOSING_TAG: "1", HOLDER_TAG: holder})
    others = turns_in_progress(instance, application, exclude=run.run_id)
    ticket = 1 + max((t.ticket or 0 for t in others), default=0)
    instance.add_run_tags(run.run_id, {TICKET_TAG: str(ticket), CHOOSING_TAG: "0"})
    return ticket


def describe(turns: Iterable[Turn]) -> str:
    return ", ".join(
        f"{t.run_id} ({'choosing' if t.choosing else f'ticket {t.ticket}'}"
        f"{f', {t.host}:{t.pid}' if t.host else ''})"
        for t in turns
    )


class TurnTimeout(dg.Failure):
    pass


def wait_for_turn(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    application: str,
    log: dg.DagsterLogManager | logging.Logger | None,
    poll_seconds: float,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Returns once no other in-progress run of `application` goes before `run`."""
    ticket = take_ticket(instance, application, run)
    deadline = time.monotonic() + timeout_seconds
    reported: set[str] = set()
    logger = log if log is not None else logging.getLogger(__name__)
    while True:
        ahead = []
        for turn in turns_in_progress(instance, application, exclude=run.run_id):
            if not turn.goes_before(ticket, run.run_id):
                continue
            if turn.process_is_gone():
                if turn.run_id not in reported:
                    logger.warning(
                        f"run {turn.run_id} of {application} is marked in progress but its process "
                        f"{turn.pid} on this host is gone (killed?); not waiting for it. Mark it "
                        "failed in the UI (Terminate) to tidy the run list."
                    )
                    reported.add(turn.run_id)
                continue
            ahead.append(turn)
        if not ahead:
            return
        if time.monotonic() >= deadline:
            raise TurnTimeout(
                f"{application}: gave up after {timeout_seconds / 60:.0f} min waiting for run(s) "
                f"{describe(ahead)} of the same application to end. Only one run of an application "
                "may write its partitions at a time. If those runs are dead, mark them failed (the "
                "UI's Terminate on the run page), then re-run this one."
            )
        key = describe(ahead)
        if key not in reported:
            logger.info(
                f"{application}: waiting for run(s) {key} to end before reading or writing "
                "partitions (one run per application at a time)."
            )
            reported.add(key)
        sleep(poll_seconds)


class ApplicationRunGuard(dg.ConfigurableResource):
    """One run of the application reads and writes its partitions at a time, however launched.

    Both IO managers depend on this resource, so a step takes its turn when its resources are set
    up: before any input partition is read or any output written. A second run (the shell, the
    UI, a sensor, a backfill) waits until the first ends.
    """

    application: str
    poll_seconds: float = 5.0
    wait_timeout_minutes: float = 12 * 60.0

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.dagster_run
        if run is None or context.instance is None:
            return
        wait_for_turn(
            context.instance,
            run,
            self.application,
            context.log,
            self.poll_seconds,
            self.wait_timeout_minutes * 60.0,
        )

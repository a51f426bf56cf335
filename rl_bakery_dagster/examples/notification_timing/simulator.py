"""A simulated product that sends one push notification per user per day, at a chosen time slot.

The world (everything here is numpy; nothing learns):

- Actions: `SLOTS` = 8 three-hour slots of the UTC day; slot `k` sends at UTC `3k + 1.5` h.
  Eight slots rather than 24 hours: the task stays non-trivial (the best slot depends on five
  features, one of them through a modular time-zone shift) while a day of 100,000 uniformly
  random notifications still shows every slot about 12,500 times.
- Context (6 float columns, already scaled the way a feature store would serve them):
  `utc_offset` (time zone, hours / 12), `age_bucket` (0..5, / 5), `activity` (log1p of the
  sessions per day over the last week; refreshed daily), `weekday_share` (share of sessions
  on weekdays), `evening_score` (-1 early bird .. +1 night owl), `android` (0/1, no effect: a
  distractor).
- Hidden preference: the user's preferred *local* hour is a fixed function of the context,
  `12.5 + 3 * evening_score + 0.6 * (2.5 - age) + 6 * (weekday_share - 0.7)`, plus a fresh
  N(0, 1 h) draw every user-day that nobody observes. The preferred UTC hour is that minus the
  time-zone offset (mod 24).
- Click probability when sent at UTC hour `s`: `BASE + amplitude(activity) * G(s - preferred)`
  with `G(d) = exp(-d^2 / (2 * WIDTH^2))` on the 24-hour circle (WIDTH = 1.5 h). Active users
  click more.

Because the daily noise is independent of everything observable, the expected click
probability of a slot given the context is analytic: the Gaussian bump convolved with the
N(0, 1 h) noise is a wider Gaussian. The **oracle** sends every user at the slot with the
highest expected probability (the best any policy can do from the context), **random** picks
a slot uniformly; both are reported as exact expectations over the same contexts.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.partitions import shift_day

SLOTS = 8
SLOT_HOURS = 24 // SLOTS
FEATURES = ("utc_offset", "age_bucket", "activity", "weekday_share", "evening_score", "android")
TIME_ZONES = np.array([-8.0, -6.0, -5.0, -3.0, 0.0, 1.0, 2.0, 5.5, 8.0, 9.0])
TIME_ZONE_WEIGHTS = np.array([0.12, 0.08, 0.15, 0.07, 0.10, 0.15, 0.08, 0.10, 0.07, 0.08])
BASE = 0.01
WIDTH = 1.5
"""Hours: how quickly interest falls off away from the preferred hour."""
DAILY_NOISE = 1.0
"""Hours: the unobservable day-to-day wobble of the preferred hour."""


def send_hours() -> np.ndarray:
    """UTC hour at which each slot's notifications go out (its middle)."""
    return np.arange(SLOTS) * SLOT_HOURS + SLOT_HOURS / 2


def circular_bump(distance: np.ndarray, width: float) -> np.ndarray:
    """`exp(-d^2 / 2 width^2)` summed over the neighbouring days, so 23:00 is near 01:00."""
    return sum(np.exp(-((distance + 24.0 * k) ** 2) / (2 * width**2)) for k in (-1, 0, 1))


@dataclass
class NotificationWorld:
    """A fixed population of `users` with static traits, and the daily click model around them."""

    users: int
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 0])
        n = self.users
        self.user_id = np.arange(n, dtype=np.int64)
        self.utc_offset_hours = rng.choice(TIME_ZONES, size=n, p=TIME_ZONE_WEIGHTS)
        self.age = rng.integers(0, 6, size=n).astype(np.float64)
        self.mean_sessions = rng.gamma(2.0, 1.0, size=n)
        self.weekday_share = rng.uniform(0.4, 1.0, size=n)
        self.evening_score = rng.uniform(-1.0, 1.0, size=n)
        self.android = (rng.uniform(size=n) < 0.55).astype(np.float64)

    def _day_rng(self, day: str, stream: int) -> np.random.Generator:
        ordinal = datetime.date.fromisoformat(day).toordinal()
        return np.random.default_rng([self.seed, ordinal, stream])

    def contexts(self, send_day: str) -> pd.DataFrame:
        """The context of every user as known the evening before `send_day` (activity refreshed daily)."""
        rng = self._day_rng(send_day, 1)
        sessions = rng.poisson(self.mean_sessions * 7) / 7
        frame = pd.DataFrame(
            {
                "user_id": self.user_id,
                "utc_offset": self.utc_offset_hours / 12,
                "age_bucket": self.age / 5,
                "activity": np.log1p(sessions),
                "weekday_share": self.weekday_share,
                "evening_score": self.evening_score,
                "android": self.android,
            }
        )
        return frame.astype({c: np.float64 for c in FEATURES})

    @staticmethod
    def preferred_utc_hour(contexts: pd.DataFrame) -> np.ndarray:
        """The mean preferred UTC hour implied by the context (before the daily noise)."""
        age = contexts["age_bucket"].to_numpy() * 5
        local = (
            12.5
            + 3.0 * contexts["evening_score"].to_numpy()
            + 0.6 * (2.5 - age)
            + 6.0 * (contexts["weekday_share"].to_numpy() - 0.7)
        )
        return np.mod(local - contexts["utc_offset"].to_numpy() * 12, 24.0)

    @staticmethod
    def amplitude(contexts: pd.DataFrame) -> np.ndarray:
        sessions = np.expm1(contexts["activity"].to_numpy())
        return 0.35 * sessions / (sessions + 1.5)

    def expected_click_probabilities(self, contexts: pd.DataFrame) -> np.ndarray:
        """[users, SLOTS]: the exact click probability of each slot given the context only."""
        preferred = self.preferred_utc_hour(contexts)[:, None]
        wide = np.hypot(WIDTH, DAILY_NOISE)
        bump = (WIDTH / wide) * circular_bump(send_hours()[None, :] - preferred, wide)
        return BASE + self.amplitude(contexts)[:, None] * bump

    def click_probabilities(self, contexts: pd.DataFrame, actions: np.ndarray, day: str) -> np.ndarray:
        """The realised click probability of the chosen slots, with the day's hidden noise drawn."""
        noise = self._day_rng(day, 2).normal(0.0, DAILY_NOISE, size=len(contexts))
        preferred = self.preferred_utc_hour(contexts) + noise
        distance = send_hours()[actions] - preferred
        return BASE + self.amplitude(contexts) * circular_bump(distance, WIDTH)

    def log_day(
        self,
        day: str,
        contexts: pd.DataFrame,
        actions: np.ndarray,
        action_prob: np.ndarray,
        policy_version: np.ndarray | str,
    ) -> pd.DataFrame:
        """The product's logs of `day`: context, slot sent, its propensity, the policy, and the click."""
        actions = np.asarray(actions, dtype=np.int64)
        clicked = self._day_rng(day, 3).uniform(size=len(contexts)) < self.click_probabilities(
            contexts, actions, day
        )
        midnight = int(datetime.datetime.fromisoformat(day).replace(tzinfo=datetime.UTC).timestamp())
        logs = contexts.copy()
        logs["ts"] = midnight + (send_hours()[actions] * 3600).astype(np.int64)
        logs["action"] = actions
        logs["reward"] = clicked.astype(np.float64)
        logs["action_prob"] = np.asarray(action_prob, dtype=np.float64)
        logs["policy_version"] = policy_version
        return logs

    def uniform_day(self, day: str) -> pd.DataFrame:
        """`day` served by the uniformly random logging policy (propensity 1 / SLOTS)."""
        contexts = self.contexts(day)
        actions = self._day_rng(day, 4).integers(0, SLOTS, size=len(contexts))
        return self.log_day(day, contexts, actions, np.full(len(contexts), 1 / SLOTS), "uniform_random")


@dataclass(frozen=True)
class DayReport:
    """Click rates of one day's deployed batch, against random and the oracle on the same contexts."""

    day: str
    policy_version: str
    logged_click_rate: float
    expected_click_rate: float
    greedy_expected_click_rate: float
    random_click_rate: float
    oracle_click_rate: float
    greedy_is_oracle_slot: float

    @property
    def gap_closed(self) -> float:
        """(policy - random) / (oracle - random) of the logged click rate (1 = as good as the oracle)."""
        return (self.logged_click_rate - self.random_click_rate) / (
            self.oracle_click_rate - self.random_click_rate
        )

    @property
    def expected_gap_closed(self) -> float:
        return (self.expected_click_rate - self.random_click_rate) / (
            self.oracle_click_rate - self.random_click_rate
        )


def report_day(
    world: NotificationWorld, day: str, contexts: pd.DataFrame, batch: pd.DataFrame, logs: pd.DataFrame
) -> DayReport:
    """Scores the batch that served `day` (rows aligned with `contexts` and `logs`)."""
    expected = world.expected_click_probabilities(contexts)
    rows = np.arange(len(contexts))
    best = expected.argmax(axis=1)
    greedy = batch["greedy_action"].to_numpy(np.int64)
    versions = batch["policy_version"].unique()
    return DayReport(
        day=day,
        policy_version=", ".join(sorted(str(v) for v in versions)),
        logged_click_rate=float(logs["reward"].mean()),
        expected_click_rate=float(expected[rows, batch["action"].to_numpy(np.int64)].mean()),
        greedy_expected_click_rate=float(expected[rows, greedy].mean()),
        random_click_rate=float(expected.mean()),
        oracle_click_rate=float(expected[rows, best].mean()),
        greedy_is_oracle_slot=float((greedy == best).mean()),
    )


@dataclass(frozen=True)
class DayResult:
    """One simulated day: the report of the batch deployed on day d (served on d+1) and its timings."""

    report: DayReport
    pipeline_seconds: float
    simulator_seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            **asdict(self.report),
            "gap_closed": self.report.gap_closed,
            "expected_gap_closed": self.report.expected_gap_closed,
            "pipeline_seconds": round(self.pipeline_seconds, 1),
            "simulator_seconds": round(self.simulator_seconds, 1),
        }


def serve_day(
    world: NotificationWorld, day: str, batch_uri: str, warehouse_uri: str, contexts: pd.DataFrame
) -> DayReport:
    """The product on day d+1: sends what `action_batch[d]` says, logs the clicks, writes dt=d+1."""
    send_day = shift_day(day, 1)
    columns = ["user_id", "action", "action_prob", "greedy_action", "policy_version"]
    batch = pd.read_parquet(batch_uri, columns=columns)
    if len(batch) != len(contexts) or batch["user_id"].duplicated().any():
        raise ValueError(f"{batch_uri}: {len(batch)} rows for {len(contexts)} users")
    batch = contexts[["user_id"]].merge(batch, on="user_id", how="left", validate="one_to_one")
    if batch["action"].isna().any():
        raise ValueError(f"{batch_uri} has no action for {int(batch['action'].isna().sum())} users")
    logs = world.log_day(
        send_day,
        contexts,
        batch["action"].to_numpy(np.int64),
        batch["action_prob"].to_numpy(np.float64),
        batch["policy_version"].to_numpy(),
    )
    write_day(logs, warehouse_uri, send_day)
    return report_day(world, day, contexts, batch, logs)


def simulate(
    world: NotificationWorld,
    start: str,
    days: int,
    warehouse_uri: str,
    population_uri: str,
    batch_uri: Callable[[str], str],
    materialise: Callable[[str], None],
    on_day: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Day 1 is served uniformly at random; then, each day d: write the population (who gets a
    notification on d+1), `materialise(d)` (the Dagster run), serve d+1 from `action_batch[d]`."""
    write_day(world.uniform_day(start), warehouse_uri, start)
    results = []
    for offset in range(days):
        day = shift_day(start, offset)
        contexts = world.contexts(shift_day(day, 1))
        write_day(contexts, population_uri, day)
        started = time.monotonic()
        materialise(day)
        pipeline_seconds = time.monotonic() - started
        report = serve_day(world, day, batch_uri(day), warehouse_uri, contexts)
        result = DayResult(report, pipeline_seconds, time.monotonic() - started - pipeline_seconds)
        results.append(result)
        if on_day is not None:
            on_day(result)
    return results

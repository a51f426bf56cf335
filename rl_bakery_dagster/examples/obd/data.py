"""Obtains the Open Bandit Dataset sample and lays it out as a daily warehouse.

The small public sample (ZOZO, Inc., CC BY 4.0) ships inside the `obp` 0.5.7 source distribution
on PyPI. It is found through the package index's simple API (what `pip download` reads, set
`OBD_PACKAGE_INDEX` for a mirror), so no `pip` is needed in the environment; only the CSVs are
read out of the archive. The archive is checked against `SDIST_SHA256`, pinned here: a hash read
from the same page as the link would vouch for nothing a compromised index or mirror serves.
Offline, or behind an index without obp, the example stops with one sentence saying how to give
it the files instead (`--source`, `OBD_SOURCE`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from rl_bakery_dagster.examples.gym_simulator import write_day

PACKAGE_INDEX = "https://pypi.org/simple"
SDIST = "obp-0.5.7.tar.gz"
SDIST_SHA256 = "3060d67fedfcfadf1e7a6f2608987f74412b5eb74d2c567edeb147595c68f2a0"
"""SHA-256 of obp-0.5.7.tar.gz as published on PyPI (1,306,068 bytes; its random/all.csv is the
sample in `../shared/data/obd`)."""
LOGGING_POLICIES = ("random", "bts")
CAMPAIGN = "all"
FILES = ("all.csv", "item_context.csv")


class SampleUnavailable(RuntimeError):
    """The sample could not be downloaded; the message says how to provide it instead."""

    def __init__(self, index: str, reason: object):
        super().__init__(
            f"could not download the Open Bandit Dataset sample ({SDIST}) from {index} ({reason}); "
            "give the example the CSVs instead: run it with --source <folder> or set "
            "OBD_SOURCE=<folder>, a folder holding random/all.csv and bts/all.csv (for example "
            "obp/dataset/obd/ out of `pip download --no-deps --no-binary :all: obp==0.5.7`)."
        )


def sdist_link(index: str) -> str:
    """The url of the obp 0.5.7 sdist on a PEP 503 simple index page."""
    page_url = f"{index.rstrip('/')}/obp/"
    if page_url.startswith("file:"):
        page_url += "index.html"  # a local index folder, read the way pip reads one
    with urllib.request.urlopen(page_url, timeout=60) as response:
        page = response.read().decode()
    match = re.search(rf'href="([^"#]*/{re.escape(SDIST)})(#[^"]*)?"', page)
    if not match:
        raise SampleUnavailable(index, f"{page_url} lists no {SDIST}")
    return urllib.parse.urljoin(page_url, match.group(1))


def download_sample(destination: Path, index: str | None = None, sha256: str = SDIST_SHA256) -> Path:
    """Downloads the obp sdist once and extracts `<policy>/all.csv` for both logging policies.

    Raises `SampleUnavailable` when the index or the archive cannot be reached, and
    `RuntimeError` when the archive is not the pinned one (`sha256`).
    """
    if all((destination / p / "all.csv").is_file() for p in LOGGING_POLICIES):
        return destination
    index = index or os.environ.get("OBD_PACKAGE_INDEX", PACKAGE_INDEX)
    try:
        url = sdist_link(index)
        with urllib.request.urlopen(url, timeout=300) as response:
            archive = response.read()
    except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, a malformed index URL
        raise SampleUnavailable(index, getattr(error, "reason", None) or error) from None
    digest = hashlib.sha256(archive).hexdigest()
    if digest != sha256:
        raise RuntimeError(
            f"{url}: sha256 {digest} is not the pinned {sha256} of {SDIST}; refusing the archive "
            "(give the CSVs with --source or OBD_SOURCE instead)"
        )
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            # <sdist>/obp/dataset/obd/<policy>/<campaign>/<file>
            wanted = len(parts) >= 4 and parts[-4] == "obd" and parts[-3] in LOGGING_POLICIES
            if wanted and parts[-2] == CAMPAIGN and parts[-1] in FILES and member.isfile():
                target = destination / parts[-3] / parts[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                extracted = tar.extractfile(member)
                assert extracted is not None
                target.write_bytes(extracted.read())
    missing = [p for p in LOGGING_POLICIES if not (destination / p / "all.csv").is_file()]
    if missing:
        raise RuntimeError(f"the obp 0.5.7 sdist holds no {CAMPAIGN}.csv for {missing}")
    return destination


class CampaignError(ValueError):
    """A folder that does not hold a readable OBD campaign; the message is one sentence for the user."""


@dataclass(frozen=True)
class Campaign:
    """One OBD campaign found in a folder: its name, item count and each logging policy's CSV."""

    name: str
    items: int
    logs: dict[str, Path]
    item_context: Path | None


def _campaign_files(folder: Path) -> dict[str, tuple[Path, Path | None]]:
    """campaign -> (its CSV, its item_context.csv) under one logging policy's folder, in either layout."""
    found: dict[str, tuple[Path, Path | None]] = {}
    for path in sorted(folder.glob("*/*.csv")):  # obp: <policy>/<campaign>/<campaign>.csv
        if path.stem == path.parent.name:
            context = path.parent / "item_context.csv"
            found[path.stem] = (path, context if context.is_file() else None)
    for path in sorted(folder.glob("*.csv")):  # flat: <policy>/<campaign>.csv
        if path.name != "item_context.csv" and path.stem not in found:
            context = folder / "item_context.csv"
            found[path.stem] = (path, context if context.is_file() else None)
    return found


def find_campaign(source: Path, campaign: str | None = None) -> Campaign:
    """The campaign's files and item count, checked before anything is written.

    Reads obp's layout (`<policy>/<campaign>/<campaign>.csv` beside `item_context.csv`) or the flat
    one (`<policy>/<campaign>.csv`, `<policy>/item_context.csv`), for the logging policies
    `random` and `bts` (at least one). Without `campaign`, the folder must hold exactly one.
    """
    if not source.is_dir():
        raise CampaignError(f"{source} is not a folder; give a folder with random/ and/or bts/ inside")
    per_policy = {p: _campaign_files(source / p) for p in LOGGING_POLICIES if (source / p).is_dir()}
    if not per_policy:
        raise CampaignError(
            f"{source} has neither a random/ nor a bts/ folder: expected <policy>/<campaign>/<campaign>.csv "
            "(obp's layout) or <policy>/<campaign>.csv"
        )
    names = sorted({name for files in per_policy.values() for name in files})
    if campaign is None:
        if len(names) != 1:
            listed = ", ".join(names) or "none"
            raise CampaignError(f"{source} holds campaigns {listed}; choose one with --campaign")
        campaign = names[0]
    logs = {p: files[campaign][0] for p, files in per_policy.items() if campaign in files}
    if not logs:
        raise CampaignError(
            f"{source} has no logs of campaign {campaign!r} (it has: {', '.join(names) or 'none'})"
        )
    contexts = [files[campaign][1] for files in per_policy.values() if campaign in files]
    item_context = next((c for c in contexts if c is not None), None)
    header = {p: list(pd.read_csv(path, nrows=0).columns) for p, path in logs.items()}
    affinities = {p: sum(c.startswith("user-item_affinity_") for c in cols) for p, cols in header.items()}
    if len(set(affinities.values())) != 1:
        raise CampaignError(
            f"the logging policies' CSVs of {campaign!r} disagree on the item count: {affinities}"
        )
    items = next(iter(affinities.values()))
    if item_context is not None:
        context_items = len(pd.read_csv(item_context, usecols=["item_id"]))
        if context_items != items:
            raise CampaignError(
                f"{item_context} lists {context_items} items but the logs have {items} "
                "user-item affinity columns"
            )
    for policy, cols in header.items():
        required = REQUIRED_COLUMNS + tuple(f"user-item_affinity_{i}" for i in range(items))
        missing = [c for c in required if c not in cols]
        if items == 0 or missing:
            lacking = ", ".join(missing[:6]) or "user-item_affinity_*"
            raise CampaignError(f"{logs[policy]} is not an OBD log: it lacks the columns {lacking}")
    return Campaign(campaign, items, logs, item_context)


REQUIRED_COLUMNS = (
    "timestamp",
    "item_id",
    "position",
    "click",
    "propensity_score",
    "user_feature_0",
    "user_feature_1",
    "user_feature_2",
    "user_feature_3",
)


def _bad_rows(frame: pd.DataFrame, mask: pd.Series, rule: str, path: Path) -> None:
    if mask.any():
        sample = frame.loc[mask, ["item_id", "position", "click", "propensity_score"]].head(3)
        raise CampaignError(
            f"{path}: {int(mask.sum())} rows break the rule '{rule}', e.g. {sample.to_dict('records')}"
        )


def read_logs(campaign: Campaign | Path) -> pd.DataFrame:
    """Both logging policies' impressions with an id, a timestamp in microseconds and the day, validated."""
    if isinstance(campaign, Path):
        campaign = find_campaign(campaign)
    frames = []
    for policy, path in campaign.logs.items():
        frame = pd.read_csv(path, index_col=0)
        _bad_rows(
            frame,
            ~frame["item_id"].between(0, campaign.items - 1),
            f"item_id in 0..{campaign.items - 1}",
            path,
        )
        _bad_rows(frame, ~frame["click"].isin([0, 1]), "click is 0 or 1", path)
        _bad_rows(
            frame,
            ~frame["propensity_score"].between(0, 1, inclusive="right"),
            "propensity_score in (0, 1]",
            path,
        )
        _bad_rows(frame, ~frame["position"].isin([1, 2, 3]), "position is 1, 2 or 3", path)
        stamp = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce")
        _bad_rows(frame, stamp.isna(), "timestamp is a date and time", path)
        frame.insert(0, "impression_id", [f"{policy}-{i}" for i in frame.index])
        frame["ts"] = (stamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
        frame["day"] = stamp.dt.strftime("%Y-%m-%d")
        frame["logging_policy"] = policy
        frames.append(frame.drop(columns=["timestamp"]))
    logs = pd.concat(frames, ignore_index=True)
    logs.columns = [c.replace("-", "_") for c in logs.columns]
    return logs


def campaign_days(logs: pd.DataFrame) -> list[str]:
    """The logged days, which must follow each other (the daily chain trains day after day)."""
    days = sorted(logs["day"].unique())
    expected = pd.date_range(days[0], days[-1], freq="D").strftime("%Y-%m-%d").tolist()
    gaps = sorted(set(expected) - set(days))
    if gaps:
        raise CampaignError(
            f"the logs have no impressions on {', '.join(gaps)}, between {days[0]} and {days[-1]}"
        )
    return days


def write_warehouse(source: Path | pd.DataFrame, warehouse_uri: str) -> list[str]:
    """Writes one `dt=` folder (with `_SUCCESS`) per day, as the product's warehouse would."""
    logs = source if isinstance(source, pd.DataFrame) else read_logs(source)
    days = campaign_days(logs)
    for day in days:
        write_day(logs[logs["day"] == day].drop(columns=["day"]), warehouse_uri, day)
    return days


def default_source(home: Path) -> Path:
    """`OBD_SOURCE` (a folder with an OBD campaign, see `find_campaign`), else a download under `home`."""
    configured = os.environ.get("OBD_SOURCE")
    return Path(configured) if configured else home / "data" / "obd"

"""Obtains the Open Bandit Dataset sample and lays it out as a daily warehouse.

The small public sample (ZOZO, Inc., CC BY 4.0) ships inside the `obp` 0.5.7 source distribution
on PyPI. It is found through the package index's simple API (what `pip download` reads, set
`OBD_PACKAGE_INDEX` for a mirror) and checked against the index's SHA-256, so no `pip` is needed
in the environment; only the CSVs are read out of the archive.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

import pandas as pd

from rl_bakery_dagster.examples.gym_simulator import write_day

PACKAGE_INDEX = "https://pypi.org/simple"
SDIST = "obp-0.5.7.tar.gz"
LOGGING_POLICIES = ("random", "bts")
CAMPAIGN = "all"
FILES = ("all.csv", "item_context.csv")


def sdist_link(index: str) -> tuple[str, str]:
    """(url, sha256) of the obp 0.5.7 sdist on a PEP 503 simple index page."""
    page_url = f"{index.rstrip('/')}/obp/"
    if page_url.startswith("file:"):
        page_url += "index.html"  # a local index folder, read the way pip reads one
    with urllib.request.urlopen(page_url, timeout=60) as response:
        page = response.read().decode()
    match = re.search(rf'href="([^"#]*/{re.escape(SDIST)})#sha256=([0-9a-f]{{64}})"', page)
    if not match:
        raise RuntimeError(f"{page_url} lists no {SDIST}")
    return urllib.parse.urljoin(page_url, match.group(1)), match.group(2)


def download_sample(destination: Path, index: str | None = None) -> Path:
    """Downloads the obp sdist once and extracts `<policy>/all.csv` for both logging policies."""
    if all((destination / p / "all.csv").is_file() for p in LOGGING_POLICIES):
        return destination
    url, sha256 = sdist_link(index or os.environ.get("OBD_PACKAGE_INDEX", PACKAGE_INDEX))
    with urllib.request.urlopen(url, timeout=300) as response:
        archive = response.read()
    digest = hashlib.sha256(archive).hexdigest()
    if digest != sha256:
        raise RuntimeError(f"{url}: sha256 {digest} differs from the index's {sha256}")
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


def read_logs(source: Path) -> pd.DataFrame:
    """Both logging policies' impressions with an id, a timestamp in microseconds and the day."""
    frames = []
    for policy in LOGGING_POLICIES:
        frame = pd.read_csv(source / policy / "all.csv", index_col=0)
        stamp = pd.to_datetime(frame["timestamp"], utc=True)
        frame.insert(0, "impression_id", [f"{policy}-{i}" for i in frame.index])
        frame["ts"] = (stamp - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
        frame["day"] = stamp.dt.strftime("%Y-%m-%d")
        frame["logging_policy"] = policy
        frames.append(frame.drop(columns=["timestamp"]))
    logs = pd.concat(frames, ignore_index=True)
    logs.columns = [c.replace("-", "_") for c in logs.columns]
    return logs


def write_warehouse(source: Path, warehouse_uri: str) -> list[str]:
    """Writes one `dt=` folder (with `_SUCCESS`) per day, as the product's warehouse would."""
    logs = read_logs(source)
    days = sorted(logs["day"].unique())
    for day in days:
        write_day(logs[logs["day"] == day].drop(columns=["day"]), warehouse_uri, day)
    return days


def default_source(home: Path) -> Path:
    """`OBD_SOURCE` (a folder with random/all.csv and bts/all.csv), else a download under `home`."""
    configured = os.environ.get("OBD_SOURCE")
    return Path(configured) if configured else home / "data" / "obd"

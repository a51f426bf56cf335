"""The Open Bandit Dataset example on the real sample in `../shared/data/obd`.

Its off-policy report must agree with the logs themselves: the logging value and each logging
policy's observed click rate are recomputed here with pandas from the CSVs.
"""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD
from rl_bakery_dagster.evaluation import NOT_ENOUGH_EVIDENCE, OUTCOMES
from rl_bakery_dagster.examples.obd import __main__ as obd_main
from rl_bakery_dagster.examples.obd.__main__ import GATE_CONFIG
from rl_bakery_dagster.examples.obd.application import OBSERVATION_COLUMNS, START_DATE, obd_application
from rl_bakery_dagster.examples.obd.data import (
    SDIST,
    CampaignError,
    SampleUnavailable,
    download_sample,
    find_campaign,
    read_logs,
    write_warehouse,
)
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import read_json
from rl_bakery_dagster_tests.apps import definitions, stored

# ../shared next to the repository, or next to the folder of worktrees the repository sits in
SAMPLE = next(
    (
        root / "shared" / "data" / "obd"
        for root in Path(__file__).resolve().parents[2:4]
        if (root / "shared" / "data" / "obd" / "random" / "all.csv").exists()
    ),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "obd",
)
needs_sample = pytest.mark.skipif(
    not (SAMPLE / "random" / "all.csv").exists(), reason="no ../shared/data/obd"
)


@needs_sample
def test_daily_bandit_on_real_logs_reports_what_the_logs_say(spark, home: Path) -> None:
    warehouse = str(home / "warehouse")
    days = write_warehouse(SAMPLE, warehouse)
    assert days == [shift_day(START_DATE, i) for i in range(7)]
    agent = TFAgentsResource(
        algorithm="neural_epsilon_greedy", fc_layer_params=[16], batch_size=128, train_steps_per_day=10
    )
    job = definitions(home, obd_application(agent=agent, warehouse=warehouse)).resolve_job_def(DAILY_JOB)
    for day in days[:2]:
        assert job.execute_in_process(partition_key=day, run_config=GATE_CONFIG).success

    record = read_json(str(stored(home, "obd", "policy_evaluation", days[1]) / EVALUATION_RECORD))
    logs = read_logs(SAMPLE)
    day = logs[logs.day == days[1]]
    assert record["rows"] == len(day)
    assert record["estimates"]["logging"]["value"] == pytest.approx(day.click.mean())
    observed = day.groupby("logging_policy").click.mean()
    for policy in ("random", "bts"):
        assert record["logging_policies"][policy]["value"] == pytest.approx(observed[policy])
    for name in ("ips", "snips", "dm", "dr"):
        estimate = record["estimates"][name]
        assert np.isfinite(estimate["value"]) and estimate["lower"] <= estimate["value"] <= estimate["upper"]
    assert record["estimates"]["ips"]["value"] >= 0
    # Issue 13 on real logs: the normal IPS interval (kept as metadata) lies wholly below the observed
    # click rate, which refused every day before; the finite-sample interval does not claim that much
    # from a few clicks at an effective sample size of tens, so the outcome is "not enough evidence".
    ips, logged = record["estimates"]["ips"], record["estimates"]["logging"]
    assert ips["normal_upper"] < logged["value"], record
    assert ips["upper"] > logged["value"], record
    assert record["outcome"] == NOT_ENOUGH_EVIDENCE, record["reason"]
    assert record["reward_model"]["observed_mean_reward"] == pytest.approx(day.click.mean())
    timesteps = pd.read_parquet(stored(home, "obd", "timesteps", days[1]))
    assert len(timesteps) == len(day)
    # every impression gets exactly one of the 8 hash buckets of each user feature and one position
    buckets = [c for c in OBSERVATION_COLUMNS if "_bucket_" in c]
    assert (timesteps[buckets].sum(axis=1) == 4).all()
    assert (timesteps[[c for c in OBSERVATION_COLUMNS if c.startswith("position_")]].sum(axis=1) == 1).all()


def test_the_sample_is_fetched_from_a_package_index_and_its_hash_checked(tmp_path: Path) -> None:
    """A local PEP 503 index serves a tiny sdist laid out like obp 0.5.7's. The hash the index page
    gives is not trusted: only the hash pinned in code (or given by the caller) admits an archive."""
    content = {f"obp-0.5.7/obp/dataset/obd/{p}/all/all.csv": f"{p} csv\n".encode() for p in ("random", "bts")}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in content.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    fake_sha256 = hashlib.sha256(archive).hexdigest()
    index = tmp_path / "simple"
    (index / "obp").mkdir(parents=True)
    (tmp_path / SDIST).write_bytes(archive)
    # a compromised index: its page vouches for its own archive
    link = f"{(tmp_path / SDIST).as_uri()}#sha256={fake_sha256}"
    (index / "obp" / "index.html").write_text(f'<a href="{link}">{SDIST}</a>')

    with pytest.raises(RuntimeError, match="is not the pinned"):
        download_sample(tmp_path / "pinned", index=index.as_uri())
    assert not (tmp_path / "pinned" / "random" / "all.csv").exists()

    destination = download_sample(tmp_path / "data", index=index.as_uri(), sha256=fake_sha256)
    assert (destination / "random" / "all.csv").read_bytes() == b"random csv\n"
    assert (destination / "bts" / "all.csv").read_bytes() == b"bts csv\n"

    (tmp_path / SDIST).write_bytes(archive + b"tampered")
    with pytest.raises(RuntimeError, match="sha256"):
        download_sample(tmp_path / "other", index=index.as_uri(), sha256=fake_sha256)


@pytest.mark.parametrize(
    "index",
    [
        "http://127.0.0.1:9/simple",  # nothing listens (offline, a firewall): connection refused
        "file:///nonexistent/simple",  # a mirror path that is not there
        "not a url",  # a mistyped OBD_PACKAGE_INDEX
    ],
)
def test_a_failed_download_says_how_to_provide_the_files(tmp_path: Path, index: str) -> None:
    """Offline the example stopped with a raw URLError; now one sentence names --source and OBD_SOURCE."""
    with pytest.raises(SampleUnavailable) as raised:
        download_sample(tmp_path / "data", index=index)
    message = str(raised.value)
    assert "--source" in message and "OBD_SOURCE" in message and "\n" not in message
    assert message.count(". ") == 0  # one sentence


def test_the_example_stops_with_that_sentence_offline(tmp_path: Path) -> None:
    """What a user sees: the command exits non-zero with the sentence, no traceback."""
    env = {
        **os.environ,
        "RL_BAKERY_HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "OBD_PACKAGE_INDEX": "http://127.0.0.1:9/simple",
    }
    env.pop("OBD_SOURCE", None)
    done = subprocess.run(
        [sys.executable, "-m", "rl_bakery_dagster.examples.obd"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("cannot run the OBD example: could not download")
    assert "--source <folder>" in lines[-1] and "OBD_SOURCE=<folder>" in lines[-1]


def build_campaign(sample: Path, folder: Path, items: int, name: str) -> Path:
    """A second campaign in obp's layout (`<policy>/<name>/<name>.csv` + `item_context.csv`), made from the
    sample by keeping the impressions of items 0..items-1 and their affinity columns. Propensities are
    rescaled by 80 / items (the uniform policy's 1/80 becomes 1/items), as if those were all the items."""
    for policy in ("random", "bts"):
        logs = pd.read_csv(sample / policy / "all.csv", index_col=0)
        logs = logs[logs.item_id < items]
        logs = logs.drop(columns=[f"user-item_affinity_{i}" for i in range(items, 80)])
        logs["propensity_score"] = np.minimum(logs.propensity_score * 80 / items, 1.0)
        target = folder / policy / name
        target.mkdir(parents=True)
        logs.to_csv(target / f"{name}.csv")
        context = pd.read_csv(sample / policy / "item_context.csv", index_col=0)
        context[context.item_id < items].to_csv(target / "item_context.csv")
    return folder


@needs_sample
def test_the_example_runs_on_a_second_campaign(spark, home: Path, tmp_path: Path) -> None:
    """Issue 13: item count and dates come from the data, obp's own layout is read, and the per-day
    table is also a JSON results file; values are checked against pandas on the campaign's CSVs."""
    source = build_campaign(SAMPLE, tmp_path / "obd", 34, "men")
    campaign = find_campaign(source)
    assert (campaign.name, campaign.items) == ("men", 34)
    assert campaign.item_context == source / "random" / "men" / "item_context.csv"
    logs = read_logs(campaign)
    agent = TFAgentsResource(
        algorithm="neural_epsilon_greedy", fc_layer_params=[16], batch_size=128, train_steps_per_day=10
    )
    results = tmp_path / "results" / "obd_men.json"
    table = obd_main.run(campaign.name, campaign.items, logs, results, 2, home, agent=agent)

    assert json.loads(results.read_text()) == json.loads(json.dumps(table))
    csv = pd.concat(pd.read_csv(source / p / "men" / "men.csv") for p in ("random", "bts"))
    csv["day"] = pd.to_datetime(csv.timestamp, utc=True).dt.strftime("%Y-%m-%d")
    first_days = sorted(csv.day.unique())[:2]
    assert [row["day"] for row in table["days"]] == first_days
    for row in table["days"]:
        day = csv[csv.day == row["day"]]
        assert row["rows"] == len(day)
        assert row["logging"] == pytest.approx(day.click.mean())
        assert row["outcome"] in OUTCOMES
        assert row["dr_lower"] <= row["dr"] <= row["dr_upper"]
    timesteps = pd.read_parquet(stored(home, "obd", "timesteps", first_days[1]))
    assert timesteps.action.between(0, 33).all()
    assert sum(c.startswith("user_item_affinity_") for c in timesteps.columns) == 34


def test_a_bad_folder_gets_one_sentence_before_anything_is_written(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No traceback and no warehouse for a folder that is not an OBD campaign; each rule named."""
    header = "timestamp,item_id,position,click,propensity_score," + ",".join(
        f"user_feature_{k}" for k in range(4)
    )

    def campaign(folder: Path, rows: list[str], affinities: int = 2, name: str = "c") -> Path:
        (folder / "random").mkdir(parents=True, exist_ok=True)
        columns = ",".join(f"user-item_affinity_{i}" for i in range(affinities))
        lines = [f",{header},{columns}"] + [f"{i},{row}" for i, row in enumerate(rows)]
        (folder / "random" / f"{name}.csv").write_text("\n".join(lines) + "\n")
        return folder

    def not_obd(folder: Path) -> Path:
        (folder / "random").mkdir(parents=True)
        (folder / "random" / "x.csv").write_text(",a\n0,1\n")
        return folder

    good = "2019-11-24 00:00:01+00:00,1,1,0,0.5,a,b,c,d,0.1,0.2"
    (tmp_path / "empty").mkdir()
    cases = {
        "empty": (tmp_path / "empty", "neither a random/ nor a bts/ folder"),
        "two campaigns": (
            campaign(campaign(tmp_path / "two", [good], name="men"), [good], name="women"),
            "holds campaigns men, women; choose one with --campaign",
        ),
        "item out of range": (
            campaign(tmp_path / "items", [good.replace(",1,1,0,", ",7,1,0,")]),
            "rule 'item_id in 0..1'",
        ),
        "propensity": (
            campaign(tmp_path / "propensity", [good.replace(",0.5,", ",0,")]),
            "rule 'propensity_score in (0, 1]'",
        ),
        "gap": (
            campaign(tmp_path / "gap", [good, good.replace("11-24", "11-26")]),
            "no impressions on 2019-11-25",
        ),
        "columns": (not_obd(tmp_path / "columns"), "is not an OBD log: it lacks the columns timestamp"),
    }
    for name, (folder, sentence) in cases.items():
        monkeypatch.setattr("sys.argv", ["obd", "--source", str(folder)])
        with pytest.raises(SystemExit) as raised:
            obd_main.main()
        message = str(raised.value)
        assert message.startswith("cannot run the OBD example: ") and sentence in message, (name, message)
        assert "\n" not in message, name
    assert not (home / "warehouse").exists() and not (home / "storage").exists()
    with pytest.raises(CampaignError, match="not a folder"):
        find_campaign(tmp_path / "missing")

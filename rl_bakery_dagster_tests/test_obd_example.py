"""The Open Bandit Dataset example on the real sample in `../shared/data/obd`.

Its off-policy report must agree with the logs themselves: the logging value and each logging
policy's observed click rate are recomputed here with pandas from the CSVs.
"""

import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rl_bakery_dagster.assets.evaluation import EVALUATION_RECORD
from rl_bakery_dagster.examples.obd.__main__ import GATE_CONFIG
from rl_bakery_dagster.examples.obd.application import OBSERVATION_COLUMNS, START_DATE, obd_application
from rl_bakery_dagster.examples.obd.data import SDIST, download_sample, read_logs, write_warehouse
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster.partitions import shift_day
from rl_bakery_dagster.resources.agents import TFAgentsResource
from rl_bakery_dagster.resources.io_managers import read_json
from rl_bakery_dagster_tests.apps import definitions, stored

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "obd"
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
    # IPS needs no reward model; with the demo's gate it refuses a policy its interval puts below
    # the observed click rate, whatever the (poor) reward model says
    ips, logged = record["estimates"]["ips"], record["estimates"]["logging"]
    assert ips["upper"] < logged["value"], record
    assert not record["accepted"] and "IPS" in record["reason"], record["reason"]
    timesteps = pd.read_parquet(stored(home, "obd", "timesteps", days[1]))
    assert len(timesteps) == len(day)
    # every impression gets exactly one of the 8 hash buckets of each user feature and one position
    buckets = [c for c in OBSERVATION_COLUMNS if "_bucket_" in c]
    assert (timesteps[buckets].sum(axis=1) == 4).all()
    assert (timesteps[[c for c in OBSERVATION_COLUMNS if c.startswith("position_")]].sum(axis=1) == 1).all()


def test_the_sample_is_fetched_from_a_package_index_and_its_hash_checked(tmp_path: Path) -> None:
    """A local PEP 503 index serves a tiny sdist laid out like obp 0.5.7's."""
    content = {f"obp-0.5.7/obp/dataset/obd/{p}/all/all.csv": f"{p} csv\n".encode() for p in ("random", "bts")}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in content.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    index = tmp_path / "simple"
    (index / "obp").mkdir(parents=True)
    (tmp_path / SDIST).write_bytes(archive)
    link = f"{(tmp_path / SDIST).as_uri()}#sha256={hashlib.sha256(archive).hexdigest()}"
    (index / "obp" / "index.html").write_text(f'<a href="{link}">{SDIST}</a>')

    destination = download_sample(tmp_path / "data", index=index.as_uri())
    assert (destination / "random" / "all.csv").read_bytes() == b"random csv\n"
    assert (destination / "bts" / "all.csv").read_bytes() == b"bts csv\n"

    (tmp_path / SDIST).write_bytes(archive + b"tampered")
    with pytest.raises(RuntimeError, match="sha256"):
        download_sample(tmp_path / "other", index=index.as_uri())

"""Per-run Spark settings merge over the application's and the environment's; bad settings read as sentences.

A run config that sets one key of the `pyspark` resource's `spark_config` used to replace the
whole dict, so the run lost its master (a cluster run fell back to local), the UTC time zone
and the local folders. The session is checked in a fresh process (a fresh JVM), because the
master of a running SparkContext can no longer change.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rl_bakery_dagster.resources.spark import spark_config

MATERIALISE = """
import json, sys
from pathlib import Path
import dagster as dg
from rl_bakery_dagster.resources.spark import spark_resource

@dg.asset
def session_settings(context: dg.AssetExecutionContext, pyspark: dg.ResourceParam[object]) -> None:
    spark = pyspark.spark_session
    seen = {
        "master": spark.sparkContext.master,
        "time_zone": spark.conf.get("spark.sql.session.timeZone"),
        "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
        "local_dir": spark.sparkContext.getConf().get("spark.local.dir"),
        "hour": spark.sql("SELECT hour(to_timestamp('1970-01-01 00:00:00')) AS h").first().h,
    }
    print("SEEN " + json.dumps(seen), flush=True)

one_key = {"resources": {"pyspark": {"config": {"spark_config": {"spark.sql.shuffle.partitions": "3"}}}}}
result = dg.materialize(
    [session_settings], resources={"pyspark": spark_resource(Path(sys.argv[1]))}, run_config=one_key
)
raise SystemExit(0 if result.success else 1)
"""


def test_a_one_key_run_override_keeps_master_time_zone_and_folders(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RL_BAKERY_")},
        "RL_BAKERY_SPARK_MASTER": "local[1]",  # not the embedded default local[*]
        "TZ": "America/New_York",  # the JVM's own zone: a lost UTC setting would show
    }
    run = subprocess.run(
        [sys.executable, "-c", MATERIALISE, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seen = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("SEEN "))[5:])
    assert seen == {
        "master": "local[1]",
        "time_zone": "UTC",
        "shuffle_partitions": "3",  # the run's own key
        "local_dir": str(tmp_path / "spark-tmp"),
        "hour": 0,
    }


@pytest.mark.parametrize(
    "value, message",
    [
        ('{"spark.executor.memory": "8g"', "RL_BAKERY_SPARK_CONF is not valid JSON"),  # unclosed object
        ("spark.executor.memory=8g", "RL_BAKERY_SPARK_CONF is not valid JSON"),  # the spark-submit form
        ('["spark.executor.memory", "8g"]', "RL_BAKERY_SPARK_CONF must be a JSON object"),  # not an object
    ],
)
def test_invalid_spark_conf_names_the_variable(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spark_config(tmp_path, {"RL_BAKERY_SPARK_CONF": value})


def test_invalid_spark_conf_fails_definition_loading_with_the_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user meets the sentence when the definitions load, before any run starts."""
    from rl_bakery_dagster.definitions import build_definitions
    from rl_bakery_dagster_tests.apps import tiny_cartpole

    monkeypatch.setenv("RL_BAKERY_SPARK_CONF", "{'single': 'quotes'}")
    with pytest.raises(ValueError, match=r"RL_BAKERY_SPARK_CONF is not valid JSON .* Give a JSON object"):
        build_definitions(tiny_cartpole(tmp_path), home=tmp_path)


def test_embedded_spark_listens_on_loopback_and_runs_this_interpreter(tmp_path: Path) -> None:
    """For local masters only: a cluster's executors do not have the driver's interpreter path."""
    local = spark_config(tmp_path, {})
    assert local["spark.driver.bindAddress"] == local["spark.driver.host"] == "127.0.0.1"
    assert local["spark.pyspark.python"] == sys.executable
    assert "spark.pyspark.python" not in spark_config(tmp_path, {"PYSPARK_PYTHON": "/opt/python"})
    cluster = spark_config(tmp_path, {"RL_BAKERY_SPARK_MASTER": "spark://10.0.0.5:7077"})
    assert not {"spark.driver.bindAddress", "spark.driver.host", "spark.pyspark.python"} & set(cluster)

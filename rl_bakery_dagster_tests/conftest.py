"""Shared fixtures: one real local SparkSession for the whole run, a fresh bakery home per test."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import rl_bakery_dagster  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from pyspark.sql import SparkSession

    from rl_bakery_dagster.resources.spark import spark_config

    home = tmp_path_factory.mktemp("spark_home")
    config = spark_config(home, {"RL_BAKERY_SPARK_MASTER": "local[2]"})
    config["spark.sql.shuffle.partitions"] = "2"
    config["spark.ui.enabled"] = "false"
    builder = SparkSession.builder
    for key, value in config.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("RL_BAKERY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    os.makedirs(home / "dagster", exist_ok=True)
    return home

"""The cluster path by configuration only: one daily partition on a real Spark standalone cluster.

`scripts/standalone_cluster.sh` starts a master and a worker on 127.0.0.1 from the pip `pyspark`
package, runs `dagster job execute` against `spark://127.0.0.1:<port>` in a subprocess, checks on
the master that the application ran there, and stops both. The script runs in a process group of
its own, so a timeout or a failure here still ends the cluster's JVMs; the suite's shared
SparkSession (`conftest.spark`) is never touched.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from rl_bakery_dagster_tests.apps import stored

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "standalone_cluster.sh"
TIMEOUT_SECONDS = 300
DAY = "2024-01-01"


def master_port() -> int:
    """7077 as documented, unless something already listens there (then any free loopback port)."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 7077)) != 0:
            return 7077
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """Ends whatever is left of the script's process group (the script normally leaves nothing)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


@pytest.mark.slow
def test_daily_partition_runs_on_a_standalone_cluster(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("RL_BAKERY_SPARK_MASTER", "RL_BAKERY_SPARK_REMOTE", "RL_BAKERY_SPARK_CONF", "SPARK_HOME")
    }
    env |= {
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CARTPOLE_WAREHOUSE_URI": str(home / "warehouse" / "cartpole"),
        "CARTPOLE_EVAL_EPISODES": "3",
    }
    port = master_port()
    command = ["bash", str(SCRIPT), "--day", DAY, "--port", str(port), "--envs", "4", "--steps-per-env", "60"]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        stop_group(process)
        output, _ = process.communicate()
        pytest.fail(f"the standalone cluster run took over {TIMEOUT_SECONDS}s:\n{output[-4000:]}")
    finally:
        stop_group(process)

    assert process.returncode == 0, output[-4000:]
    assert f"master spark://127.0.0.1:{port}: application app-" in output, output[-4000:]
    assert "standalone cluster stopped" in output
    for asset in ("timesteps", "trajectories", "agent_checkpoint"):
        assert stored(home, "cartpole", asset, DAY).is_dir(), asset
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the master still listens after the script"

"""The UI's own path: the webserver's GraphQL API launches a partition and reads the results back.

Every other test materialises through the Python API or the CLI. The UI's *Materialize* button
calls the webserver's `launchPipelineExecution` mutation with an asset selection and a
`dagster/partition` tag; the asset pages then read partitions, metadata and check results through
GraphQL. This starts a real `dagster-webserver` on loopback (a free port, a temporary
`DAGSTER_HOME`) on a tiny application and goes through exactly that API.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from rl_bakery_dagster_tests.apps import START, log_random_days

LOCATION = "ui_app"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = """
query Status($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"""
ASSET = """
query Asset($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) {
    __typename
    ... on AssetNode {
      partitionStats { numMaterialized numPartitions }
      assetMaterializations(limit: 5) {
        partition
        metadataEntries {
          label
          ... on IntMetadataEntry { intValue }
          ... on FloatMetadataEntry { floatValue }
        }
      }
      assetChecksOrError {
        ... on AssetChecks {
          checks { name executionForLatestMaterialization { status evaluation { success } } }
        }
      }
    }
  }
}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(port: int, query: str, variables: dict[str, object]) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer["errors"]
    return answer["data"]


def wait_until_serving(port: int, server: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert server.poll() is None, "the webserver exited"
        try:
            graphql(port, "{ version }", {})
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(1)
    raise AssertionError("the webserver did not answer in time")


def test_materialize_one_partition_through_the_webserver_graphql_api(home: Path) -> None:
    log_random_days(home, 1)
    dagster_home = home / "dagster"
    (dagster_home / "dagster.yaml").write_text(  # the run starts at once: no daemon to dequeue it
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: rl_bakery_dagster_tests.graphql_app\n"
        f"      location_name: {LOCATION}\n"
    )
    port = free_port()
    env = {**os.environ, "RL_BAKERY_HOME": str(home), "DAGSTER_HOME": str(dagster_home)}
    webserver = Path(sys.executable).with_name("dagster-webserver")
    command = [str(webserver), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    log = (home / "webserver.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=Path(__file__).parents[1], stdout=log, stderr=log)
    try:
        wait_until_serving(port, server, time.monotonic() + 120)
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "pipelineName": "__ASSET_JOB",
                "assetSelection": [{"path": ["cartpole", name]} for name in ("timesteps", "trajectories")],
            },
            "mode": "default",
            "runConfigData": "{}",
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": START}]},
        }
        launched = graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        deadline, status = time.monotonic() + 180, "STARTING"
        while status not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
            time.sleep(2)
            status = graphql(port, RUN_STATUS, {"runId": run_id})["runOrError"]["status"]
        assert status == "SUCCESS", (home / "webserver.log").read_text()[-3000:]

        node = graphql(port, ASSET, {"key": {"path": ["cartpole", "timesteps"]}})["assetNodeOrError"]
        assert node["partitionStats"]["numMaterialized"] == 1
        [materialization] = node["assetMaterializations"]
        assert materialization["partition"] == START
        metadata = {
            e["label"]: e.get("intValue", e.get("floatValue")) for e in materialization["metadataEntries"]
        }
        assert metadata["dagster/row_count"] == 4 * 40  # log_random_days: 4 players x 40 steps
        checks = node["assetChecksOrError"]["checks"]
        assert len(checks) >= 5
        for check in checks:
            execution = check["executionForLatestMaterialization"]
            assert execution["status"] == "SUCCEEDED" and execution["evaluation"]["success"], check
        trajectories = graphql(port, ASSET, {"key": {"path": ["cartpole", "trajectories"]}})
        assert trajectories["assetNodeOrError"]["partitionStats"]["numMaterialized"] == 1
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()

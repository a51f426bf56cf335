"""However it is started, a run behaves the same: the package applies its own launch defaults.

One day of a tiny CartPole app with a population (so `action_batch` scores users with Python
workers on Spark's executors) runs through `uv run dagster job execute`, the venv's interpreter
started directly with a `PATH` that has no venv on it (the first `python3` there lacks pandas
and TensorFlow), and the Python API. None of them gets `scripts/env.sh`'s variables. Each run
must succeed, listen only on loopback while it runs (read from `/proc`, for the run's whole
process tree: the driver, Spark's JVM and its Python workers) and train the same checkpoint
bytes from the same logs.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rl_bakery_dagster.examples.cartpole.application import OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import write_day
from rl_bakery_dagster.jobs import DAILY_JOB
from rl_bakery_dagster_tests.apps import START, log_random_days, stored

MODULE = "rl_bakery_dagster_tests.launch_app"
REPO = Path(__file__).resolve().parents[1]
TAGS = f'{{"dagster/partition": "{START}"}}'
SET_BY_SCRIPTS = (
    "SPARK_LOCAL_IP",
    "PYSPARK_PYTHON",
    "TF_USE_LEGACY_KERAS",
    "TF_CPP_MIN_LOG_LEVEL",
    "VIRTUAL_ENV",
)
PYTHON_API = (
    "import dagster as dg\n"
    f"from {MODULE} import defs\n"
    f"result = defs.resolve_job_def({DAILY_JOB!r}).execute_in_process("
    f"partition_key={START!r}, instance=dg.DagsterInstance.get())\n"
    "raise SystemExit(0 if result.success else 1)\n"
)


def launches() -> dict[str, list[str]]:
    uv = shutil.which("uv")
    execute = ["job", "execute", "-m", MODULE, "-j", DAILY_JOB, "--tags", TAGS]
    return {
        # `uv run` as the README shows (the venv's `dagster` when uv is not installed)
        "uv run dagster": [uv, "run", "--frozen", "--project", str(REPO), "dagster", *execute]
        if uv
        else [str(Path(sys.executable).with_name("dagster")), *execute],
        "venv python, no venv on PATH": [sys.executable, "-m", "dagster", *execute],
        "python API": [sys.executable, "-c", PYTHON_API],
    }


def environment(home: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env = {k: v for k, v in os.environ.items() if k not in SET_BY_SCRIPTS and not k.startswith("RL_BAKERY_")}
    env.pop("DAGSTER_HOME", None)  # the package defaults it to `$RL_BAKERY_HOME/dagster`
    return {
        **env,
        "PATH": os.pathsep.join(path or ["/usr/bin", "/bin"]),
        "RL_BAKERY_HOME": str(home),
        "RL_BAKERY_SPARK_MASTER": "local[2]",
        "PYTHONPATH": str(REPO),
    }


def seed_home(home: Path) -> None:
    """The same logs and population in every home (seeded), so every run trains the same agent."""
    home.mkdir(parents=True)
    log_random_days(home, 1)
    rng = np.random.default_rng(3)
    users = pd.DataFrame(rng.uniform(-0.2, 0.2, (200, 4)), columns=list(OBSERVATION_COLUMNS))
    users.insert(0, "user_id", np.arange(200, dtype=np.int64))
    write_day(users, str(home / "population"), START)


def process_tree(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return tree


def socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def address(hex_address: str) -> str:
    """`/proc/net/tcp{,6}` local address (hex, host byte order per 32-bit word) to text."""
    import ipaddress

    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1, and IPv4 loopback mapped into IPv6 (`::ffff:7f00:1` as Python prints it)."""
    import ipaddress

    ip = ipaddress.ip_address(host)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def listening(pids: set[int]) -> set[str]:
    """`address:port` of every TCP socket in LISTEN state that one of `pids` holds."""
    inodes = socket_inodes(pids)
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:
                host, port = local.split(":")
                found.add(f"{address(host)}:{int(port, 16)}")
    return found


def checkpoint_digest(folder: Path) -> str:
    """The TF checkpoint's index and data files (the `checkpoint` state file names local paths)."""
    hashes = hashlib.sha256()
    for path in sorted((folder / "checkpoint").iterdir()):
        if path.name != "checkpoint":
            hashes.update(path.name.encode() + path.read_bytes())
    return hashes.hexdigest()


def test_every_launch_path_binds_loopback_and_trains_the_same_checkpoint(tmp_path: Path) -> None:
    homes = {name: tmp_path / f"home{index}" for index, name in enumerate(launches())}
    processes = {}
    for name, command in launches().items():
        seed_home(homes[name])
        processes[name] = subprocess.Popen(
            command,
            cwd=tmp_path,  # the CLI puts its temporary instance (no DAGSTER_HOME) in the working directory
            env=environment(homes[name]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    sockets: dict[str, set[str]] = {name: set() for name in processes}
    started, took = time.monotonic(), {}
    deadline = started + 3000  # about 3 min on an idle 2-core machine; far more when it is shared
    while any(p.poll() is None for p in processes.values()) and time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is None:
                sockets[name] |= listening(process_tree(process.pid))
            else:
                took.setdefault(name, round(time.monotonic() - started))
        time.sleep(0.5)
    print(f"seconds per launch path: {took}; listening sockets: {sockets}")
    outputs = {}
    for name, process in processes.items():
        if process.poll() is None:
            process.kill()
        outputs[name] = process.communicate()[0]
        assert process.returncode == 0, f"{name} failed:\n{outputs[name][-4000:]}"

    for name in processes:
        assert sockets[name], f"{name}: no listening socket seen (the Spark driver listens while it runs)"
        outside = {s for s in sockets[name] if not is_loopback(s.rsplit(":", 1)[0])}
        assert not outside, f"{name} listened beyond loopback: {sorted(outside)}"
        assert (homes[name] / "dagster" / "dagster.yaml").is_file(), f"{name}: no instance under the home"
        batch = pd.read_parquet(stored(homes[name], "cartpole", "action_batch", START))
        assert sorted(batch.user_id) == list(range(200)), name
    digests = {
        name: checkpoint_digest(stored(home, "cartpole", "agent_checkpoint", START))
        for name, home in homes.items()
    }
    assert len(set(digests.values())) == 1, digests

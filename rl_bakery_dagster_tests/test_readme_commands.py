"""The README's commands run when copied in order after the Quick start, in a fresh home.

A new user copies the README's blocks one after another; a command that needs data no earlier
command wrote (a day the demo did not simulate) fails for them. This runs every command of the
README's bash blocks, in order, with `bash` in the repository root and a fresh `RL_BAKERY_HOME`,
on tiny settings. A command is skipped only when it is listed in `NOT_RUN` with the reason, and
every entry there must still match a command, so the list cannot rot.
"""

import os
import re
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).parents[1]

TINY_DEMO = "--days 2 --envs 4 --steps-per-env 40"

NOT_RUN = {
    "bash scripts/test.sh": "the test suite itself",
    "bash scripts/ui.sh": "a server that runs until stopped (test_ui_graphql.py starts the webserver)",
    "uv run tensorboard": "a server that runs until stopped (test_tensorboard.py reads the event files)",
    "uv run --frozen --with playwright": "needs a running UI and Chromium; run by hand",
    "uv run python -m rl_bakery_dagster.examples.obd": "downloads the Open Bandit Dataset sample",
    "uv run python -m rl_bakery_dagster.examples.notification_timing": "100,000 users for 7 days",
    "bash scripts/standalone_cluster.sh": "its own test (test_standalone_cluster.py)",
    "export RL_BAKERY_SPARK_MASTER=spark://spark-master.internal": "needs that cluster",
    "export RL_BAKERY_SPARK_CONF=": "for that cluster",
    "export RL_BAKERY_STORAGE_URI=s3://": "needs that bucket",
    "uv run dagster job execute -m my_app.definitions": "an application of the reader's own",
    "export RL_BAKERY_HOME=/var/lib/rl_bakery": "a service's setup on a server",
    "/opt/rl_bakery/.venv/bin/": "a service's long-running processes",
    "uv run ruff check . && uv run ruff format .": "rewrites the working tree; scripts/test.sh runs ruff",
}


def readme_commands() -> list[str]:
    """Every command of the README's ```bash blocks, continuation lines joined, in order."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        quoted_newlines = re.sub(r"'[^']*'", lambda m: m.group(0).replace("\n", " "), joined)
        commands += [line.strip() for line in quoted_newlines.splitlines() if line.strip()]
    return commands


def test_readme_commands_run_in_order_in_a_fresh_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {
        **os.environ,
        "RL_BAKERY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CARTPOLE_TRAIN_STEPS_PER_DAY": "20",
        "CARTPOLE_EVAL_EPISODES": "2",
    }
    commands = readme_commands()
    unmatched = [prefix for prefix in NOT_RUN if not any(c.startswith(prefix) for c in commands)]
    assert not unmatched, f"NOT_RUN lists commands the README no longer has: {unmatched}"
    to_run = [c for c in commands if not any(c.startswith(prefix) for prefix in NOT_RUN)]
    assert to_run[0].startswith("bash scripts/demo.sh"), to_run  # the Quick start comes first
    assert len(to_run) >= 6, to_run
    timings = []
    for command in to_run:
        if command.startswith("bash scripts/demo.sh"):
            command = command.replace("bash scripts/demo.sh", f"bash scripts/demo.sh {TINY_DEMO}", 1)
        started = time.monotonic()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        timings.append(f"{time.monotonic() - started:.0f}s {command[:80]}")
        assert done.returncode == 0, (
            f"README command failed after {timings}:\n{command}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    print("\n".join(timings))
    storage = home / "storage" / "cartpole" / "agent_checkpoint"
    trained = sorted(p.name for p in storage.glob("dt=*") if (p / "_CURRENT").exists())
    assert len(trained) == 3, trained  # the demo's two days and the next day the product wrote

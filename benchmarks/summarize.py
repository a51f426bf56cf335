"""Prints the PERFORMANCE.md tables from the JSON lines in benchmarks/results/ (no figure typed by hand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def seconds(value: float | None) -> str:
    return "not run" if value is None else f"{value:,.2f} s"


def times(value: float | None, suffix: str = "x") -> str:
    return "—" if value is None else f"{value:,.2f}{suffix}"


def trajectories(folder: Path) -> list[str]:
    lines = [
        "| timesteps (envs) | Spark local[2] | Spark, proposed setting | Polars floor | naive lean "
        "| naive RL Bakery | Spark vs naive lean (proposed) | Spark vs naive RL Bakery "
        "| Spark / floor (proposed) | outputs agree |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("trajectories_1e5", "trajectories_1e6", "trajectories_1e7"):
        r = load(folder, name)
        if r is None:
            continue
        s, q = r["seconds"], r["ratios"]
        lines.append(
            f"| {r['rows']:,} ({r['environments']:,}) | {seconds(s['spark'])} "
            f"| {seconds(s['spark_proposed_setting'])} | {seconds(s['polars_floor'])} "
            f"| {seconds(s['naive_lean'])} | {seconds(s['naive_rl_bakery'])} "
            f"| {times(q['spark_speedup_vs_naive_lean'])} "
            f"({times(q['spark_proposed_speedup_vs_naive_lean'])}) "
            f"| {times(q['spark_speedup_vs_naive_rl_bakery'])} "
            f"| {times(q['spark_over_polars_floor'])} ({times(q['spark_proposed_over_polars_floor'])}) "
            f"| {r['outputs_agree']} |"
        )
    return lines


def training(folder: Path) -> list[str]:
    r = load(folder, "training_input")
    if r is None:
        return []
    rates, memory, share = (
        r["steps_per_second_median"],
        r["peak_rss_mib"],
        r["ratios"]["rate_over_in_memory_replay"],
    )
    # results from before the blocks change was merged also measured it as a separate mode
    blocks = "stream_blocks" in rates
    lines = [
        "| training days | transitions | in-memory replay steps/s | stream steps/s (ratio) "
        + (
            "| stream, proposed blocks steps/s (ratio) | peak RSS replay / stream / blocks (MiB) |"
            if blocks
            else "| peak RSS replay / stream (MiB) |"
        ),
        "|---|---|---|---|---|---|" if blocks else "|---|---|---|---|---|",
    ]
    for days in map(str, r["days"]):
        line = (
            f"| {days} | {int(days) * r['transitions_per_day']:,} | {rates['replay'][days]:,.0f} "
            f"| {rates['stream'][days]:,.0f} ({share['stream'][days]:.2f}) "
        )
        if blocks:
            line += f"| {rates['stream_blocks'][days]:,.0f} ({share['stream_blocks'][days]:.2f}) "
        line += f"| {memory['replay'][days]:,.0f} / {memory['stream'][days]:,.0f} "
        line += f"/ {memory['stream_blocks'][days]:,.0f} |" if blocks else "|"
        lines.append(line)
    return lines


def simulation(folder: Path) -> list[str]:
    r = load(folder, "simulation")
    if r is None:
        return []
    lines = ["| simulator | envs | policy | env steps/s |", "|---|---|---|---|"]
    for row in r["ours"]["tf_collect_policy"]:
        lines.append(
            f"| ours (`BatchedGym`, arrays) | {row['envs']:,} | DQN collect policy (SavedModel) "
            f"| {row['env_steps_per_second']:,} |"
        )
    for row in r["ours"]["random_policy"]:
        lines.append(
            f"| ours (`BatchedGym`, arrays) | {row['envs']:,} | random | {row['env_steps_per_second']:,} |"
        )
    for policy, row in r["per_env_gym"].items():
        lines.append(
            f"| one gym env at a time (previous stepping) | {row['envs']:,} | {policy} "
            f"| {row['env_steps_per_second']:,} |"
        )
    for row in r["tf_agents_driver"]:
        lines.append(
            f"| TF-Agents `DynamicStepDriver` ({row['mode']}) | 1 | DQN collect policy "
            f"| {row['env_steps_per_second']:,} |"
        )
    return lines


def daily(folder: Path) -> list[str]:
    r = load(folder, "daily_run")
    if r is None:
        return []
    lines = ["| phase | day 1, in process (s) | day 2, `dagster job execute` (s) |", "|---|---|---|"]
    a, b = r["in_process_day_1"], r["cli_day_2"]
    rows = [
        (
            "process start, imports, definitions load",
            a["definitions_import_and_load_seconds"],
            b["process_start_imports_and_load_seconds"],
        ),
        (
            "run start → first step (resources: SparkSession start)",
            a["before_first_step_seconds"],
            b["before_first_step_seconds"],
        ),
    ]
    rows += [(f"asset `{k}`", v, b["steps_seconds"].get(k)) for k, v in a["steps_seconds"].items()]
    for k, v in a["agent_checkpoint_split_seconds"].items():
        rows.append((f"  of which {k.replace('_', ' ')}", v, b["agent_checkpoint_split_seconds"].get(k)))
    rows += [
        (
            "between steps and after the last",
            a["between_steps_seconds"] + a["after_last_step_seconds"],
            b["between_steps_seconds"] + b["after_last_step_seconds"],
        ),
        ("**wall** (day 1: the run; day 2: the whole CLI process)", a["wall_seconds"], b["wall_seconds"]),
        ("overhead = wall - asset steps", a["overhead_seconds"], b["overhead_seconds"]),
    ]
    for label, x, y in rows:
        lines.append(f"| {label} | {x:.2f} | {'' if y is None else f'{y:.2f}'} |")
    return lines


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("results"))
    for title, table in (
        ("Trajectories", trajectories(folder)),
        ("Training input", training(folder)),
        ("Simulation", simulation(folder)),
        ("Daily run", daily(folder)),
    ):
        if table:
            print(f"\n### {title}\n")
            print("\n".join(table))


if __name__ == "__main__":
    main()

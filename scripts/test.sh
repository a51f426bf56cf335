#!/usr/bin/env bash
# Sets everything up, then runs the test suite (real Spark, TF-Agents and Dagster).
source "$(dirname "$0")/env.sh"
uv run --frozen ruff check rl_bakery_dagster rl_bakery_dagster_tests
exec uv run --frozen pytest "$@"

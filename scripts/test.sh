#!/usr/bin/env bash
# Sets everything up, then runs the test suite (real Spark, TF-Agents and Dagster).
# Test files run on RL_BAKERY_TEST_WORKERS processes (default 2; 1 runs them in this process):
# many tests wait on subprocesses, daemons and the JVM, so two workers overlap that waiting.
source "$(dirname "$0")/env.sh"
uv run --frozen ruff check rl_bakery_dagster rl_bakery_dagster_tests
workers="${RL_BAKERY_TEST_WORKERS:-2}"
if [ "$workers" = 1 ]; then
  exec uv run --frozen pytest "$@"
fi
exec uv run --frozen pytest -n "$workers" --dist loadfile "$@"

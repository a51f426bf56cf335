#!/usr/bin/env bash
# Sets everything up, then simulates CartPole days and trains on each through the Dagster graph.
source "$(dirname "$0")/env.sh"
exec uv run --frozen python -m rl_bakery_dagster.examples.cartpole "$@"

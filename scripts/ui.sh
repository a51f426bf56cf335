#!/usr/bin/env bash
# The Dagster UI on http://127.0.0.1:3000 (loopback only), with the daemon for sensors and backfills.
source "$(dirname "$0")/env.sh"
exec uv run --frozen dagster dev -w workspace.yaml -h 127.0.0.1 -p "${PORT:-3000}"

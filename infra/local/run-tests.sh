#!/usr/bin/env bash
# Runs every Rust test of the workspace: with cargo-nextest when it is installed (one process per
# test), else with cargo test.
set -euo pipefail
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --no-fail-fast
fi
exec cargo test --workspace --no-fail-fast

#!/usr/bin/env bash
# Runs every check and test. Installs what the tests need (moto) when it is missing, so it works
# on a fresh machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools"
MOTO_SERVER=$(scripts/install-test-tools.sh)
export MOTO_SERVER
echo "moto_server: $MOTO_SERVER"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (unit, reconcile scenarios, CRD, moto)"
cargo test --workspace --locked --all-targets

step "local quickstart (the README's run command) until the example is Ready"
env -u KUBECONFIG scripts/run-local.sh --until-ready

#!/usr/bin/env bash
# Runs every check and test. Installs what the tests need (moto, helm, kubernetes-validate, lua)
# when missing, so it works on a fresh machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step "test tools"
MOTO_SERVER=$(scripts/install-test-tools.sh)
export MOTO_SERVER
echo "moto_server: $MOTO_SERVER"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "local quickstart (the README's run command) until the example is Ready"
env -u KUBECONFIG scripts/run-local.sh --until-ready

step "cargo tests: unit, reconcile scenarios, CRD, moto, end to end, API emulator"
cargo test --workspace --locked --all-targets 2>&1 | tee "$log"

# One closing line for the whole run.
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '; ([0-9]+) failed' "$log" | grep -Eo '[0-9]+' | awk '{s += $1} END {print s + 0}')
echo
echo "all tests: $passed passed, $failed failed"

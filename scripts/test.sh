#!/usr/bin/env bash
# Runs every check and test. Installs what the tests need (moto, helm, kubernetes-validate, lua,
# buildah) when missing, so it works on a fresh machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step "test tools"
scripts/install-test-tools.sh
. .tools/env

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "local quickstart (the README's run command) until the example is Ready"
env -u KUBECONFIG scripts/run-local.sh --until-ready

step "container image: built from the debug binary, its entrypoint run as 65532 until the example is Ready"
scripts/image-smoke.sh target/debug/integration-response-operator

step "Helm chart: lint, render, strict validation, Pod Security, RBAC, values schema"
python3 -m pytest -q tests/chart 2>&1 | tee -a "$log"

step "GitHub workflows: the release pipeline against the GitHub workflow schema"
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

step "Argo CD health check (Lua 5.1)"
lua5.1 argocd/health_test.lua | tee -a "$log"

step "cargo tests: unit, reconcile scenarios, CRD, moto, end to end, API emulator"
cargo test --workspace --locked --all-targets 2>&1 | tee -a "$log"

# One closing line for the whole run.
# cargo: "test result: ok. N passed; M failed"; pytest: "N passed"; lua: "N passed, M failed".
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "all tests: $passed passed, $failed failed"

#!/usr/bin/env bash
# Builds the release operator and runs the benchmark; prints a table of figures.
# Usage: bench/run.sh [--objects 1000,10000] [--rps 0,10] [--max-paced-seconds 400] [--aws moto|fake]
#        [--resync-seconds 30]   (100,000 objects: --objects 100000 --rps 0 --aws fake --resync-seconds 60)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-tools.sh
. .tools/env
cargo build --release --locked -p integration-response-operator --bin integration-response-operator
cargo build --release --locked -p bench
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
exec target/release/bench "$@"

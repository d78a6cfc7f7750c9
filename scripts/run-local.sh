#!/usr/bin/env bash
# Runs the operator locally.
#
# With no cluster (KUBECONFIG unset): starts the bundled local stack, moto (AWS emulator) and the
# project's Kubernetes API emulator, makes a WebSocket API and integration in moto, runs the
# operator, applies examples/integration-response.yaml and shows it becoming Ready. Ctrl-C stops
# everything it started. `--until-ready` exits once the example is Ready (used by CI).
#
# With KUBECONFIG set: installs the CRD with kubectl and runs the operator against that cluster,
# with AWS credentials and region from the standard AWS chain.
set -euo pipefail
cd "$(dirname "$0")/.."
until_ready=false
[ "${1:-}" = "--until-ready" ] && until_ready=true

if [ -n "${KUBECONFIG:-}" ]; then
  echo "==> using the cluster in KUBECONFIG=$KUBECONFIG"
  kubectl apply -f crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml
  exec cargo run --locked --release --bin integration-response-operator
fi

echo "==> tools and build"
scripts/install-test-tools.sh
. .tools/env
cargo build --locked --bin integration-response-operator --bin kube-emulator -p integration-response-operator -p kube-emulator

work=$(mktemp -d)
pids=()
cleanup() {
  # Newest first: the operator stops before the servers it talks to.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

helper() { python3 scripts/local_stack.py "$@"; }
moto_port=$(helper free-port)
kube_port=$(helper free-port)
admin_port=$(helper free-port)

echo "==> moto on 127.0.0.1:$moto_port, Kubernetes API emulator on 127.0.0.1:$kube_port"
"$MOTO_SERVER" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
target/debug/kube-emulator --listen "127.0.0.1:$kube_port" \
  --crd crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml \
  --kubeconfig "$work/kubeconfig" >"$work/emulator.log" 2>&1 &
pids+=($!)
helper wait-port "$moto_port"
helper wait-port "$kube_port"

read -r api_id integration_id < <(helper moto-integration "http://127.0.0.1:$moto_port")
echo "==> WebSocket API $api_id with MOCK integration $integration_id in moto"

echo "==> operator (admin endpoints on http://127.0.0.1:$admin_port)"
KUBECONFIG="$work/kubeconfig" \
AWS_ENDPOINT_URL_APIGATEWAYV2="http://127.0.0.1:$moto_port" \
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
AWS_EC2_METADATA_DISABLED=true \
ADMIN_ADDR="127.0.0.1:$admin_port" RESYNC_PERIOD=30s \
  target/debug/integration-response-operator &
pids+=($!)

helper apply-and-wait "http://127.0.0.1:$kube_port" examples/integration-response.yaml "$api_id" "$integration_id"
if $until_ready; then
  exit 0
fi
echo "==> running; the kubeconfig is $work/kubeconfig. Ctrl-C stops everything."
wait

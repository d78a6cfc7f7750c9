#!/usr/bin/env bash
# Runs the operator locally.
#
# With no cluster (KUBECONFIG unset): starts the bundled local stack, moto (AWS emulator) and the
# project's Kubernetes API emulator, makes a WebSocket API and integration in moto, runs the
# operator, applies examples/integration-response.yaml (with kubectl when it is installed: KUBECTL,
# as .tools/env sets it, or on PATH; else with a plain POST) and shows it becoming Ready, then
# prints kubectl commands to try. Ctrl-C stops everything it started. `--until-ready` exits once
# the example is Ready and `kubectl get`, `wait` and `describe` work on it (used by CI).
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
read -r namespace name < <(helper example-ref examples/integration-response.yaml)
echo "==> WebSocket API $api_id with MOCK integration $integration_id in moto"

echo "==> operator (admin endpoints on http://127.0.0.1:$admin_port)"
KUBECONFIG="$work/kubeconfig" \
AWS_ENDPOINT_URL_APIGATEWAYV2="http://127.0.0.1:$moto_port" \
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
AWS_EC2_METADATA_DISABLED=true \
ADMIN_ADDR="127.0.0.1:$admin_port" RESYNC_PERIOD=30s \
  target/debug/integration-response-operator &
pids+=($!)

kubectl=${KUBECTL:-$(command -v kubectl || true)}
if [ -z "$kubectl" ]; then
  echo "==> no kubectl (KUBECTL unset, none on PATH): applying the example with a plain POST"
  helper apply-and-wait "http://127.0.0.1:$kube_port" examples/integration-response.yaml "$api_id" "$integration_id"
  if $until_ready; then
    echo "kubectl is needed for the smoke test: run scripts/install-test-tools.sh" >&2
    exit 1
  fi
  echo "==> running; the kubeconfig is $work/kubeconfig. Ctrl-C stops everything."
  wait
  exit
fi

k() { KUBECONFIG="$work/kubeconfig" "$kubectl" "$@"; }
echo "==> kubectl apply -f examples/integration-response.yaml (ids from moto), then waiting for Ready"
helper render-example examples/integration-response.yaml "$api_id" "$integration_id" | k apply -f -
k wait --for=condition=Ready --timeout=60s -n "$namespace" "integrationresponse/$name"
k get -n "$namespace" integrationresponse "$name"
if $until_ready; then
  # The smoke test: the commands the README suggests must work against the emulator.
  k get -n "$namespace" apigwir "$name" -o yaml >/dev/null
  described=$(k describe -n "$namespace" apigwir "$name")
  echo "$described" | sed -n '/^Events:/,$p'
  if ! echo "$described" | grep -Eq '^ +Normal +Created '; then
    echo "kubectl describe shows no Created event:" >&2
    echo "$described" >&2
    exit 1
  fi
  exit 0
fi
k describe -n "$namespace" apigwir "$name"
cat <<EOF

==> running. Try kubectl against it (Ctrl-C here stops everything):
  export KUBECONFIG=$work/kubeconfig
  $kubectl get apigwir
  $kubectl describe apigwir $name
  $kubectl get apigwir $name -o yaml
  $kubectl explain integrationresponses.spec
  $kubectl get events
  $kubectl wait --for=condition=Ready apigwir/$name
  $kubectl apply --server-side -f my-integration-response.yaml   (apiId $api_id, integrationId $integration_id)
EOF
wait

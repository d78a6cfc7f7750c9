#!/usr/bin/env bash
# Builds the operator image with scripts/build-image.sh and runs its entrypoint as user 65532
# against the local stack (moto and the Kubernetes API emulator, as scripts/run-local.sh starts
# them) until examples/integration-response.yaml is Ready; then stops everything it started.
#
# Usage: scripts/image-smoke.sh [BINARY]   (default: target/debug/integration-response-operator)
#
# CI passes the debug binary the tests already built: the image recipe is the same as the release
# one (scripts/image-rootfs.sh, the Dockerfile's final stage), and a release build would add minutes.
#
# Checked:
#   - the image config: user 65532:65532, the entrypoint, port 8080;
#   - its files: all owned by root and not writable by anyone else; a passwd entry for 65532;
#   - the CA bundle at /etc/ssl/certs/ca-certificates.crt (where rustls-native-certs looks first on
#     Linux, for the AWS SDK and kube's platform verifier) parses and holds the Amazon roots;
#   - the run: the entrypoint runs as uid/gid 65532 and brings the example to Ready, talking to moto
#     over TLS. moto's certificate comes from a test CA appended to that bundle in the working
#     container (never in the image), so Ready also proves the SDK reads that very file as 65532.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/debug/integration-response-operator}
started=$SECONDS
say() { printf '==> %s\n' "$*"; }
die() { echo "image-smoke: $*" >&2; exit 1; }

scripts/install-test-tools.sh
. .tools/env
cargo build --locked --bin integration-response-operator --bin kube-emulator -p integration-response-operator -p kube-emulator

say "image from $binary"
version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/integration-response-operator/Chart.yaml)
# Its own tag, so a release image built under the version tag is never replaced by this one.
image=${IMAGE:-integration-response-operator:$version-smoke}
export IMAGE=$image
build_started=$SECONDS
scripts/build-image.sh "$binary"
build_seconds=$((SECONDS - build_started))

work=$(mktemp -d)
pids=()
container=
operator=
cleanup() {
  # The operator first (its whole process group: buildah and what it started), then the servers.
  if [ -n "$operator" ]; then kill -- "-$operator" 2>/dev/null || true; fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$container" ]; then buildah rm "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "image config"
buildah inspect --type image "$image" > "$work/image.json"
entrypoint=$(python3 - "$work/image.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))["OCIv1"]["config"]
def check(ok, what):
    if not ok:
        sys.exit(f"image config: {what}: {json.dumps(config)}")
check(config.get("User") == "65532:65532", "User is not 65532:65532")
check(config.get("Entrypoint") == ["/usr/local/bin/integration-response-operator"], "unexpected Entrypoint")
check("8080/tcp" in config.get("ExposedPorts", {}), "port 8080 is not exposed")
print(config["Entrypoint"][0])
PY
)
echo "user 65532:65532, entrypoint $entrypoint, port 8080"

say "image files"
container=$(buildah from --pull=false "$image")
root=$(buildah mount "$container")
bundle=$root/etc/ssl/certs/ca-certificates.crt
writable=$(find "$root" -mindepth 1 \( ! -uid 0 -o ! -gid 0 -o -perm /022 \) -printf '%M %U:%G /%P\n')
[ -z "$writable" ] || die "files not owned by root or writable by others: $writable"
grep -qx 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' "$root/etc/passwd" || die "no passwd entry for 65532"
python3 - "$bundle" <<'PY'
import ssl, sys
path = sys.argv[1]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.load_verify_locations(cafile=path)  # fails on a missing or malformed bundle
roots = context.get_ca_certs()
names = {v for cert in roots for rdn in cert["subject"] for k, v in rdn if k == "commonName"}
missing = {"Amazon Root CA 1", "Amazon Root CA 2", "Amazon Root CA 3", "Amazon Root CA 4"} - names
if len(roots) < 100 or missing:
    sys.exit(f"{path}: {len(roots)} certificates, missing {sorted(missing)}")
print(f"/etc/ssl/certs/ca-certificates.crt: {len(roots)} CA certificates, Amazon Root CA 1-4 among them")
PY
buildah run --isolation chroot --user 65532:65532 "$container" -- "$entrypoint" --help >/dev/null \
  || die "the entrypoint does not start as 65532 (--help)"
echo "all files root-owned and read-only to 65532; $entrypoint --help runs as 65532"

say "local stack: moto over TLS from a test CA, the Kubernetes API emulator"
python3 - "$work" <<'PY'
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

work = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("image-smoke test CA")).issuer_name(name("image-smoke test CA"))
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
      .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
      .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                   data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                   crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
open(f"{work}/ca.pem", "wb").write(ca.public_bytes(serialization.Encoding.PEM))
open(f"{work}/moto.pem", "wb").write(cert.public_bytes(serialization.Encoding.PEM))
open(f"{work}/moto-key.pem", "wb").write(pem(key))
PY
# The working container's copy of the bundle only; the image keeps the one checked above.
cat "$work/ca.pem" >> "$bundle"
buildah umount "$container" >/dev/null

helper() { python3 scripts/local_stack.py "$@"; }
moto_port=$(helper free-port)
kube_port=$(helper free-port)
admin_port=$(helper free-port)
"$MOTO_SERVER" -H 127.0.0.1 -p "$moto_port" -c "$work/moto.pem" -k "$work/moto-key.pem" >"$work/moto.log" 2>&1 &
pids+=($!)
target/debug/kube-emulator --listen "127.0.0.1:$kube_port" \
  --crd crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml \
  --kubeconfig "$work/kubeconfig" >"$work/emulator.log" 2>&1 &
pids+=($!)
helper wait-port "$moto_port"
helper wait-port "$kube_port"
read -r api_id integration_id < <(AWS_CA_BUNDLE="$work/ca.pem" helper moto-integration "https://127.0.0.1:$moto_port")
echo "moto on https://127.0.0.1:$moto_port (WebSocket API $api_id, integration $integration_id)," \
  "emulator on http://127.0.0.1:$kube_port"

say "the image's entrypoint as 65532:65532 (buildah run, chroot isolation, host network)"
chmod 0644 "$work/kubeconfig"
setsid buildah run --isolation chroot --network host --user 65532:65532 \
  --volume "$work/kubeconfig:/etc/kubeconfig:ro" \
  --env KUBECONFIG=/etc/kubeconfig \
  --env AWS_ENDPOINT_URL_APIGATEWAYV2="https://127.0.0.1:$moto_port" \
  --env AWS_ACCESS_KEY_ID=testing --env AWS_SECRET_ACCESS_KEY=testing --env AWS_REGION=us-east-1 \
  --env AWS_EC2_METADATA_DISABLED=true \
  --env ADMIN_ADDR="127.0.0.1:$admin_port" --env RESYNC_PERIOD=30s \
  "$container" -- "$entrypoint" >"$work/operator.log" 2>&1 &
operator=$!

if ! helper apply-and-wait "http://127.0.0.1:$kube_port" examples/integration-response.yaml "$api_id" "$integration_id"; then
  echo "--- operator log (last 40 lines)"; tail -n 40 "$work/operator.log"
  die "the example did not become Ready with the operator running from the image"
fi

# The operator process (in buildah's process group) runs as 65532 for real, ids and all.
uids=
for pid in $(ps -o pid= --sid "$operator"); do
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "integration-res" ]; then
    uids=$(awk '/^Uid:|^Gid:/ {printf "%s %s %s %s %s; ", $1, $2, $3, $4, $5}' "/proc/$pid/status")
  fi
done
[ -n "$uids" ] || die "the operator process is not running"
[ "$uids" = "Uid: 65532 65532 65532 65532; Gid: 65532 65532 65532 65532; " ] || die "the operator runs with $uids"
echo "operator process: $uids"
if grep -qi 'native root CA' "$work/operator.log"; then
  grep -i 'native root CA' "$work/operator.log"; die "the operator could not load the CA bundle"
fi

echo "image smoke: passed; image built in ${build_seconds}s, whole step $((SECONDS - started))s"

#!/usr/bin/env bash
# Builds the operator image with buildah from a binary built here, with no registry and no daemon:
# scripts/image-rootfs.sh assembles the root filesystem (as the Dockerfile's build stage does), and
# the Dockerfile's final stage (FROM scratch) is built over it, its `COPY --from=build /rootfs/ /`
# reading the assembled directory instead. Tags integration-response-operator:<chart appVersion>
# (IMAGE overrides) and prints the image's size.
#
# Usage: scripts/build-image.sh [BINARY]   (default: target/release/integration-response-operator)
# Runs as root with buildah's default storage (overlay, under /var/lib/containers).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/integration-response-operator}
die() { echo "build-image: $*" >&2; exit 1; }
command -v buildah >/dev/null 2>&1 || die "buildah is missing (scripts/install-test-tools.sh installs it)"

version=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' charts/integration-response-operator/Chart.yaml)
[ -n "$version" ] || die "no appVersion in charts/integration-response-operator/Chart.yaml"
image=${IMAGE:-integration-response-operator:$version}

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
scripts/image-rootfs.sh "$binary" "$context/rootfs"

# The final stage: from the last FROM to the end, with its one COPY from the build stage rewritten.
awk '/^FROM /{stage = ""} {stage = stage $0 "\n"} END {printf "%s", stage}' Dockerfile \
  | sed 's|^COPY --from=build /rootfs/ /$|COPY rootfs/ /|' > "$context/Containerfile"
head -n1 "$context/Containerfile" | grep -qx 'FROM scratch' || die "the Dockerfile's final stage is not FROM scratch"
if [ "$(grep -c '^COPY' "$context/Containerfile")" != 1 ] || ! grep -qx 'COPY rootfs/ /' "$context/Containerfile"; then
  die "the Dockerfile's final stage must copy only the rootfs: COPY --from=build /rootfs/ /"
fi

previous=$(buildah images --quiet --no-trunc "$image" 2>/dev/null || true)
buildah bud --quiet --isolation chroot --pull=false --layers=false \
  --file "$context/Containerfile" --tag "$image" "$context" >/dev/null
# The image this one replaces under the tag, unless a container still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(buildah images --quiet --no-trunc "$image")" ]; then
  buildah rmi "$previous" >/dev/null 2>&1 || true
fi
# Size as a registry stores it before compression: the one layer's tar plus the config.
buildah inspect --type image --format '{{.Manifest}}' "$image" | python3 -c '
import json, sys
manifest = json.load(sys.stdin)
layers = manifest["layers"]
size = manifest["config"]["size"] + sum(layer["size"] for layer in layers)
print(f"{sys.argv[1]}: {size / 2**20:.1f} MiB uncompressed, {len(layers)} layer")' "$image"

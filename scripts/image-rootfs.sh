#!/usr/bin/env bash
# Assembles the root filesystem of the operator image: the one place that says what the image holds.
# The Dockerfile's build stage runs it on the release binary, and scripts/build-image.sh runs it on
# any binary built here; the Dockerfile's final stage (FROM scratch) copies the result to /.
#
# Usage: scripts/image-rootfs.sh BINARY OUTDIR
#
# OUTDIR gets:
#   /usr/local/bin/integration-response-operator   the binary
#   the shared libraries `ldd BINARY` names (glibc, libgcc_s) and the dynamic loader, at those paths
#   /etc/ssl/certs/ca-certificates.crt              the CA bundle: the first file rustls-native-certs
#                                                   (openssl-probe) looks for on Linux, which the AWS
#                                                   SDK's HTTPS client and kube's platform verifier read
#   /etc/passwd, /etc/group                         root and nonroot (65532), as distroless names them
#   /etc/nsswitch.conf                              hosts: files, then DNS
#   /usr/share/doc/PACKAGE/copyright                the licences of the Debian packages copied in
# Everything is owned by the user running this (root in the image build) and not writable by others.
# CA_BUNDLE overrides where the CA bundle is taken from.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BINARY OUTDIR" >&2; exit 2; }
binary=$1
out=$2
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
die() { echo "image-rootfs: $*" >&2; exit 1; }

[ -x "$binary" ] || die "$binary is not an executable file"
[ -s "$ca_bundle" ] || die "no CA bundle at $ca_bundle (Debian: apt-get install ca-certificates)"
grep -q -- '-----BEGIN CERTIFICATE-----' "$ca_bundle" || die "$ca_bundle holds no PEM certificate"
if [ -e "$out" ] && [ -n "$(ls -A "$out")" ]; then die "$out is not empty"; fi
umask 022
mkdir -p "$out"

install -D -m 0755 "$binary" "$out/usr/local/bin/integration-response-operator"

# Libraries and the loader, from ldd's "name => /path (addr)" and "/path (addr)" lines. Each is
# copied as a regular file to the path ldd prints (the loader's path is the one in the binary's
# PT_INTERP); with no ld.so.cache the loader searches its default directories, which hold them.
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u)
[ -n "$libs" ] || die "ldd names no libraries for $binary (a static binary needs no loader; this script expects a glibc one)"
if ldd "$binary" | grep -q 'not found'; then die "ldd cannot resolve every library of $binary"; fi
for lib in $libs; do
  install -D -m 0755 "$(readlink -f "$lib")" "$out$lib"
done

install -D -m 0644 "$ca_bundle" "$out/etc/ssl/certs/ca-certificates.crt"

# Numeric ids are what Kubernetes checks (runAsNonRoot); names make `ps` and logs readable.
install -d -m 0755 "$out/etc"
cat > "$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin
PASSWD
cat > "$out/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
echo 'hosts: files dns' > "$out/etc/nsswitch.conf"
chmod 0644 "$out/etc/passwd" "$out/etc/group" "$out/etc/nsswitch.conf"

# Licences of what was copied in from Debian packages (glibc, gcc's runtime, the CA bundle).
if command -v dpkg >/dev/null 2>&1; then
  packages=ca-certificates
  for lib in $libs; do
    packages+=" $( (dpkg -S "$lib" || dpkg -S "$(readlink -f "$lib")") 2>/dev/null | head -n1 | cut -d: -f1 || true)"
  done
  for pkg in $(echo "$packages" | tr ' ' '\n' | sed '/^$/d' | sort -u); do
    if [ -f "/usr/share/doc/$pkg/copyright" ]; then
      install -D -m 0644 "/usr/share/doc/$pkg/copyright" "$out/usr/share/doc/$pkg/copyright"
    fi
  done
fi

echo "image-rootfs: $(find "$out" -type f | wc -l) files, $(du -sh "$out" | cut -f1) in $out" >&2

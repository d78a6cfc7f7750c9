#!/usr/bin/env bash
# Installs the tools the tests use, from the package registries only; quick when present.
set -euo pipefail

if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing moto (AWS emulator) from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6'
fi
command -v moto_server >/dev/null || { echo "moto_server is not on PATH after install" >&2; exit 1; }

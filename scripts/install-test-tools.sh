#!/usr/bin/env bash
# Installs the tools the tests use, from the package registries only; quick when present.
# Prints nothing else on stdout but the path of moto_server (the caller exports it).
set -euo pipefail

python_scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
if ! command -v moto_server >/dev/null 2>&1 && [ ! -x "$python_scripts/moto_server" ]; then
  echo "installing moto (AWS emulator) from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' >&2
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash >&2 || true; fi
fi
if [ -x "$python_scripts/moto_server" ]; then
  echo "$python_scripts/moto_server"
else
  command -v moto_server || { echo "moto_server not found after install" >&2; exit 1; }
fi

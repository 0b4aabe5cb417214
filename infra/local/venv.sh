#!/usr/bin/env bash
# Creates the project-local Python environment (.venv) with the pinned packages of
# infra/local/requirements.txt, unless it is already there and up to date.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.venv"
requirements="$root/infra/local/requirements.txt"
stamp="$venv/.requirements.sha256"

want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "setting up $venv (moto and boto3, pinned)" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"

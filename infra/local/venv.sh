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
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
  echo "python3 is $(python3 --version 2>&1); moto needs Python 3.9 or later" >&2
  exit 1
fi
echo "setting up $venv (moto, boto3, cfn-lint, jsonschema; pinned in $requirements)" >&2
python3 -m venv "$venv" || {
  echo "python3 -m venv failed: on Debian or Ubuntu install the python3-venv package" >&2
  exit 1
}
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"

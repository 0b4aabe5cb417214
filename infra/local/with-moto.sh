#!/usr/bin/env bash
# Runs a command with a fresh moto server (SQS, DynamoDB, S3, Secrets Manager) on a free
# loopback port, and the standard AWS settings pointing at it. Stops the server afterwards.
#   usage: infra/local/with-moto.sh COMMAND [ARGS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
"$root/infra/local/venv.sh"

port=$("$root/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp -t moto.XXXXXX.log)
"$root/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
stop_moto() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; rm -f "$log"; }
trap stop_moto EXIT

for _ in $(seq 1 100); do
  if "$root/.venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto did not start:" >&2; cat "$log" >&2; exit 1
  fi
  sleep 0.2
done

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN
export AWS_EC2_METADATA_DISABLED=true
"$@"

#!/usr/bin/env bash
# Offline checks of the deployment artefacts, run by `make test`:
#   1. cfn-lint on infra/template.yaml, informational findings included;
#   2. the job examples in samplconfig/ against docs/schemas/, and a broken job must be refused
#      (so a validator that accepts everything cannot pass);
#   3. the schema tags in docs/schemas/ are the ones src/domain/job.rs writes.
# Exits non-zero on the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/infra/local/venv.sh"
python="$root/.venv/bin/python"

echo "cfn-lint infra/template.yaml"
"$root/.venv/bin/cfn-lint" --include-checks I -- infra/template.yaml

echo "job examples against their schemas"
"$python" infra/validate_jobs.py docs/schemas/fax-job.v1.schema.json samplconfig/sample-fax-job.json
"$python" infra/validate_jobs.py docs/schemas/sms-job.v1.schema.json samplconfig/sample-sms-job.json

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$python" - "$scratch" <<'PY'
import json, sys
fax = json.load(open("samplconfig/sample-fax-job.json"))
sms = json.load(open("samplconfig/sample-sms-job.json"))
fax["recipients"] = ["0299998888"]
sms["documents"] = []
json.dump(fax, open(f"{sys.argv[1]}/national-number.json", "w"))
json.dump(sms, open(f"{sys.argv[1]}/sms-with-documents.json", "w"))
PY
refused() {
  if "$python" infra/validate_jobs.py "$1" "$2" >/dev/null 2>&1; then
    echo "FAIL: $(basename "$2") was accepted by $(basename "$1")" >&2
    exit 1
  fi
}
refused docs/schemas/fax-job.v1.schema.json "$scratch/national-number.json"
refused docs/schemas/sms-job.v1.schema.json "$scratch/sms-with-documents.json"
refused docs/schemas/sms-job.v1.schema.json samplconfig/sample-fax-job.json

echo "schema tags match src/domain/job.rs"
for channel in fax sms; do
  schema="docs/schemas/$channel-job.v1.schema.json"
  tag=$(grep -o "\"graph-mail-relay/$channel-job/v[0-9]*\"" "$schema" | head -n 1)
  if [ -z "$tag" ] || ! grep -qF "$tag" src/domain/job.rs; then
    echo "FAIL: $schema says $tag; src/domain/job.rs does not" >&2
    exit 1
  fi
done

echo "infra checks passed"

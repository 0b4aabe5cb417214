#!/usr/bin/env python3
"""Checks fax or SMS jobs against their JSON Schema (draft 2020-12).

    infra/validate_jobs.py SCHEMA FILE...

Each FILE (or - for standard input) holds one job as a JSON document, or one job per line (JSON
lines, as a consumer dumps a queue). Prints one line per invalid job, naming the file, the line
and the failing field, and exits 1 if any job is invalid, 2 if an input cannot be read at all.

jsonschema lives in the project's .venv; run from any Python, the script restarts itself there.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"

try:
    from jsonschema import Draft202012Validator
except ImportError:
    if VENV_PYTHON.exists() and Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])
    sys.exit("jsonschema is missing: run infra/local/venv.sh to set up .venv")


def read_jobs(name):
    """Yields (line number, job) pairs; line 1 for a whole-file document."""
    text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    try:
        yield 1, json.loads(text)
        return
    except json.JSONDecodeError:
        pass
    # Not one document: read it as JSON lines. A line that does not parse is reported as such.
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                yield number, ValueError(f"not JSON: {error.msg}")


def where(error):
    """The failing field as a JSON path, e.g. $.documents[0].sha256."""
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: infra/validate_jobs.py SCHEMA FILE...  (FILE may be - for stdin)")
    schema_path, inputs = argv[0], argv[1:]
    schema = json.loads(Path(schema_path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)

    checked = invalid = 0
    for name in inputs:
        try:
            jobs = list(read_jobs(name))
        except OSError as error:
            print(f"{name}: cannot read: {error.strerror}", file=sys.stderr)
            return 2
        for number, job in jobs:
            checked += 1
            if isinstance(job, ValueError):
                invalid += 1
                print(f"{name}:{number}: {job}")
                continue
            errors = sorted(validator.iter_errors(job), key=lambda e: list(e.absolute_path))
            if errors:
                invalid += 1
            for error in errors:
                print(f"{name}:{number}: {where(error)}: {error.message}")

    if checked == 0:
        print("no job found in the input", file=sys.stderr)
        return 1
    print(f"{Path(schema_path).name}: {checked - invalid} of {checked} jobs valid", file=sys.stderr)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

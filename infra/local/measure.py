"""Measures the Lambda binaries' cold start and memory against a hello-world Rust Lambda.

Each binary is started under a minimal Lambda Runtime API emulator on 127.0.0.1 (one per run,
on a free port) and measured for:

- init: from just before the process is spawned until its first
  `GET /2018-06-01/runtime/invocation/next`, the moment Lambda considers init done;
- first invocation (webhook and hello only): from the moment the event has been written to the
  runtime until its `POST .../response` arrives. The webhook gets Graph's validation request
  (events/webhook-validation-notify.json), which makes no outbound call; hello echoes the same
  event;
- peak RSS: VmHWM from /proc/PID/status, read just before the process is stopped.

The processor and the renewer are measured for init only: they get no event, since any event
would make them call AWS or Graph. Nothing can leave the machine in any case: AWS_ENDPOINT_URL
points at a closed loopback port and the instance metadata service is disabled.

Runs alternate between the binaries so that noise on this shared machine falls on all of them
alike. Prints a Markdown table of medians (min-max in brackets) and ratios to hello_lambda.

Build first:  cargo build --release --bins --example hello_lambda
Then:         .venv/bin/python infra/local/measure.py [--runs 15]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
API = "/2018-06-01/runtime"

# How long any one step may take before the run is declared failed.
STEP_TIMEOUT_S = 20.0

# (name, path under the target directory, event to send or None for init only)
BINARIES = [
    ("hello_lambda", "release/examples/hello_lambda", "webhook-validation-notify.json"),
    ("webhook", "release/webhook", "webhook-validation-notify.json"),
    ("processor", "release/processor", None),
    ("renewer", "release/renewer", None),
]


class Run:
    """What the emulator saw during one run of one binary."""

    def __init__(self, event):
        self.event = event
        self.request_id = str(uuid.uuid4())
        self.lock = threading.Lock()
        self.next_calls = []  # monotonic ns of each /next request
        self.event_sent_ns = None
        self.reply_ns = None
        self.reply_path = None
        self.reply_body = None
        self.first_next = threading.Event()
        self.second_next = threading.Event()
        self.replied = threading.Event()
        self.stop = threading.Event()


def make_handler(run):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != f"{API}/invocation/next":
                self.send_error(404)
                return
            with run.lock:
                run.next_calls.append(time.monotonic_ns())
                calls = len(run.next_calls)
            if calls == 1:
                run.first_next.set()
            else:
                run.second_next.set()
            if calls == 1 and run.event is not None:
                self.send_event()
                return
            # No more work: hold the long poll, as Lambda does, until the run is over.
            run.stop.wait(STEP_TIMEOUT_S)
            self.close_connection = True

        def send_event(self):
            deadline_ms = int(time.time() * 1000) + 30_000
            headers = {
                "Content-Type": "application/json",
                "Content-Length": str(len(run.event)),
                "Lambda-Runtime-Aws-Request-Id": run.request_id,
                "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": (
                    "arn:aws:lambda:us-east-1:123456789012:function:measure"
                ),
                "Lambda-Runtime-Trace-Id": (
                    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                ),
            }
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            # The runtime reads the whole body before it starts, so timing from here is fair.
            run.event_sent_ns = time.monotonic_ns()
            self.wfile.write(run.event)
            self.wfile.flush()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith(f"{API}/invocation/") and not run.replied.is_set():
                run.reply_ns = time.monotonic_ns()
                run.reply_path = self.path
                run.reply_body = body
                run.replied.set()
            elif self.path == f"{API}/init/error":
                run.reply_path = self.path
                run.reply_body = body
                run.replied.set()
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    return Handler


def environment(port):
    """A clean environment: what Lambda sets, plus the relay's settings. No HOME, as in Lambda."""
    return {
        "PATH": "/usr/bin:/bin",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": "measure",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/measure",
        "AWS_LAMBDA_LOG_STREAM_NAME": "measure",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "GRAPH_MAIL_RELAY_CONFIG": str(ROOT / "samplconfig" / "relay.toml"),
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        # Port 9 (discard) is closed on loopback: a call made by mistake fails at once.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def stop(process):
    """Stops the process this script started, by its pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def measure_once(name, binary, event):
    """One cold start. Returns (init ms, first invocation ms or None, peak RSS KiB)."""
    run = Run(event)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(run))
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    port = server.server_address[1]

    with tempfile.TemporaryFile() as log:
        process = None
        try:
            start_ns = time.monotonic_ns()
            process = subprocess.Popen(
                [str(binary)], env=environment(port), stdout=log, stderr=log, cwd=ROOT
            )
            if not wait_or_exit(run.first_next, process):
                fail(name, "no first /next", process, log)
            init_ms = (run.next_calls[0] - start_ns) / 1e6

            invoke_ms = None
            if event is not None:
                if not wait_or_exit(run.replied, process):
                    fail(name, "no reply to the event", process, log)
                check_reply(name, run, process, log)
                invoke_ms = (run.reply_ns - run.event_sent_ns) / 1e6
                # The runtime asks for the next event once it is done with this one.
                if not wait_or_exit(run.second_next, process):
                    fail(name, "no /next after the reply", process, log)

            rss = peak_rss_kib(process.pid)
            return init_ms, invoke_ms, rss
        finally:
            run.stop.set()
            if process is not None:
                stop(process)
            server.shutdown()
            server.server_close()


def wait_or_exit(flag, process):
    """Waits for the flag, bounded; False if the process exited or time ran out first."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        if flag.wait(0.002):
            return True
        if process.poll() is not None:
            return flag.is_set()
    return False


def check_reply(name, run, process, log):
    if run.reply_path != f"{API}/invocation/{run.request_id}/response":
        fail(name, f"reply to {run.reply_path}: {run.reply_body[:300]!r}", process, log)
    reply = json.loads(run.reply_body)
    if name == "webhook":
        token = "Validation: Testing client application reachability for subscription"
        if reply.get("statusCode") != 200 or not reply.get("body", "").startswith(token):
            fail(name, f"unexpected validation reply {reply!r}", process, log)


def fail(name, what, process, log):
    stop(process)
    log.seek(0)
    tail = log.read()[-2000:].decode(errors="replace")
    raise RuntimeError(f"{name}: {what} (exit {process.poll()}); output:\n{tail}")


def median_range(values, scale=1.0, digits=1):
    values = [v / scale for v in values]
    return (
        f"{statistics.median(values):.{digits}f} "
        f"({min(values):.{digits}f}–{max(values):.{digits}f})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="cold starts per binary")
    parser.add_argument("--target-dir", type=Path, default=ROOT / "target")
    args = parser.parse_args()
    if not 1 <= args.runs <= 200:
        parser.error("--runs must be between 1 and 200")

    binaries = []
    for name, path, event_file in BINARIES:
        binary = args.target_dir / path
        if not binary.is_file():
            if name == "hello_lambda":
                sys.exit(f"{binary} missing: cargo build --release --example hello_lambda")
            print(f"{binary} missing: not measured", file=sys.stderr)
            continue
        event = (EVENTS / event_file).read_bytes() if event_file else None
        binaries.append((name, binary, event))

    results = {name: {"init": [], "invoke": [], "rss": []} for name, _, _ in binaries}
    for _ in range(args.runs):
        for name, binary, event in binaries:
            init_ms, invoke_ms, rss = measure_once(name, binary, event)
            results[name]["init"].append(init_ms)
            if invoke_ms is not None:
                results[name]["invoke"].append(invoke_ms)
            results[name]["rss"].append(rss)

    hello = results["hello_lambda"]
    hello_init = statistics.median(hello["init"])
    hello_rss = statistics.median(hello["rss"])
    print(f"{args.runs} cold starts each; median (min–max)\n")
    print(
        "| binary | size MB | init ms | init ÷ hello | first invocation ms "
        "| peak RSS MiB | RSS ÷ hello |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, binary, _ in binaries:
        r = results[name]
        size_mb = binary.stat().st_size / 1e6
        invoke = median_range(r["invoke"], digits=2) if r["invoke"] else "not invoked"
        print(
            f"| {name} | {size_mb:.1f} | {median_range(r['init'], digits=2)} "
            f"| {statistics.median(r['init']) / hello_init:.1f} | {invoke} "
            f"| {median_range(r['rss'], scale=1024)} "
            f"| {statistics.median(r['rss']) / hello_rss:.1f} |"
        )


if __name__ == "__main__":
    main()

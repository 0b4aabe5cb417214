"""make demo: the main job end to end on the local stack.

Starts moto (AWS) and graph-sim (Microsoft Graph and the identity platform) on loopback ports,
provisions the queues, table, bucket and secret, runs the relay in serve mode, subscribes a fax
and an SMS mailbox, delivers one e-mail to each, and prints the two jobs read back from the
gateway queues as JSON lines. Stops everything it started. Exits 0 only if both jobs arrived and
are right.
"""

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
TENANT = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
CLIENT_ID = "0f5b8c1d-2e3f-4a5b-8c7d-9e0f1a2b3c4d"
CLIENT_SECRET = "demo-client-secret-" + os.urandom(8).hex()
FAX_MAILBOX = "fax1@contoso.example"
SMS_MAILBOX = "sms1@contoso.example"
FAX_TO = "+61299998888@fax.example.com"
SMS_TO = "0412345678@sms.example.com"


def say(text):
    print(f"demo: {text}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


def http_json(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read() or b"null")


class Processes:
    """The processes the demo starts; stopped in reverse order, by pid."""

    def __init__(self, logs):
        self.logs = logs
        self.running = []

    def start(self, name, argv, env=None):
        log = open(self.logs / f"{name}.log", "wb")
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=ROOT, start_new_session=True)
        self.running.append((name, process))
        return process

    def stop_all(self):
        for name, process in reversed(self.running):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


class LocalAws:
    """boto3 clients that can only reach the local moto server: every client is given its
    endpoint explicitly, so nothing falls back to a real AWS endpoint."""

    def __init__(self, endpoint):
        assert endpoint.startswith("http://127.0.0.1:"), endpoint
        self.endpoint = endpoint
        self.session = boto3.Session(aws_access_key_id="demo", aws_secret_access_key="demo",
                                     region_name="us-east-1")

    def client(self, service):
        return self.session.client(service, endpoint_url=self.endpoint)


def provision(session, work):
    """Queues, table, bucket and secret, as infra/template.yaml would create them."""
    sqs = session.client("sqs")
    queues = {name: sqs.create_queue(QueueName=f"demo-{name}")["QueueUrl"]
              for name in ("notifications", "fax-jobs", "sms-jobs")}
    session.client("dynamodb").create_table(
        TableName="demo-state",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST")
    session.client("s3").create_bucket(Bucket="demo-documents")
    session.client("secretsmanager").create_secret(
        Name="demo/graph-credentials",
        SecretString=json.dumps({"tenantId": TENANT, "clientId": CLIENT_ID,
                                 "clientSecret": CLIENT_SECRET}))
    return queues


def relay_config(path, sim_url, webhook_port, queues):
    path.write_text(f"""
[graph]
login_base = "{sim_url}"
graph_base = "{sim_url}"
credentials_secret = "demo/graph-credentials"

[webhook]
notification_url = "http://127.0.0.1:{webhook_port}/graph/notify"
lifecycle_url = "http://127.0.0.1:{webhook_port}/graph/lifecycle"

[aws]
internal_queue_url = "{queues['notifications']}"
fax_queue_url = "{queues['fax-jobs']}"
sms_queue_url = "{queues['sms-jobs']}"
state_table = "demo-state"
document_bucket = "demo-documents"
s3_path_style = true

[serve]
listen = "127.0.0.1:{webhook_port}"
subscribe_interval_seconds = 300

[[mailbox]]
address = "{FAX_MAILBOX}"
channel = "fax"
default_region = "AU"

[[mailbox]]
address = "{SMS_MAILBOX}"
channel = "sms"
default_region = "AU"
""")


def read_one(sqs, queue_url, seconds=30):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1).get("Messages", [])
        if messages:
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            return [json.loads(m["Body"]) for m in messages]
    return []


def check_jobs(fax_jobs, sms_jobs, pdf, s3):
    """The problems with the jobs, if any."""
    problems = []
    if len(fax_jobs) != 1 or len(sms_jobs) != 1:
        return [f"expected one fax job and one SMS job, got {len(fax_jobs)} and {len(sms_jobs)}"]
    fax, sms = fax_jobs[0], sms_jobs[0]
    expect = [
        (fax["schema"], "graph-mail-relay/fax-job/v1"),
        (fax["mailbox"], FAX_MAILBOX),
        (fax["recipients"], ["+61299998888"]),
        (fax["subject"], "Invoice 42"),
        (len(fax["documents"]), 1),
        (sms["schema"], "graph-mail-relay/sms-job/v1"),
        (sms["mailbox"], SMS_MAILBOX),
        (sms["recipients"], ["+61412345678"]),
        (sms["text"], "Your table for two is ready. Reply STOP to opt out."),
    ]
    problems += [f"got {got!r}, expected {want!r}" for got, want in expect if got != want]
    if not problems:
        document = fax["documents"][0]
        stored = s3.get_object(Bucket=document["bucket"], Key=document["key"])["Body"].read()
        if stored != pdf or document["sha256"] != hashlib.sha256(pdf).hexdigest():
            problems.append("the stored fax document differs from the PDF that was sent")
    validator = ROOT / "infra" / "validate_jobs.py"
    for schema, job in (("fax-job.v1", fax), ("sms-job.v1", sms)):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(job, f)
        result = subprocess.run([sys.executable, str(validator),
                                 str(ROOT / "docs" / "schemas" / f"{schema}.schema.json"),
                                 f.name], capture_output=True, text=True)
        os.unlink(f.name)
        if result.returncode != 0:
            problems.append(f"{schema} job fails its schema: {result.stdout}{result.stderr}")
    return problems


def main():
    work = Path(tempfile.mkdtemp(prefix="graph-mail-relay-demo-"))
    processes = Processes(work)
    ok = False
    try:
        moto_port = free_port()
        processes.start("moto", [str(ROOT / ".venv" / "bin" / "moto_server"),
                                 "-H", "127.0.0.1", "-p", str(moto_port)])
        moto_url = f"http://127.0.0.1:{moto_port}"
        wait_until("moto", lambda: urllib.request.urlopen(moto_url + "/moto-api/", timeout=1))
        say(f"moto (SQS, DynamoDB, S3, Secrets Manager) on {moto_url}")

        sim_config = work / "graph-sim.json"
        sim_config.write_text(json.dumps({
            "tenantId": TENANT, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
            "mailboxes": [
                {"address": FAX_MAILBOX, "userId": "5f0c1e2a-1111-2222-3333-444455556666"},
                {"address": SMS_MAILBOX, "userId": "6a1d2f3b-7777-8888-9999-aaaabbbbcccc"},
                {"address": "ceo@contoso.example", "userId": "7b2e3a4c-3333-4444-5555-666677778888"},
            ],
            # The Exchange administrator scoped the app to the two gateway mailboxes only.
            "outOfScope": ["ceo@contoso.example"],
        }))
        port_file = work / "graph-sim.port"
        processes.start("graph-sim", [str(TARGET / "graph-sim"), "--config", str(sim_config),
                                      "--listen", "127.0.0.1:0", "--port-file", str(port_file)])
        wait_until("graph-sim", lambda: port_file.exists() and port_file.read_text().strip())
        sim_url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        say(f"graph-sim (Graph + identity platform) on {sim_url}")

        env = dict(os.environ, AWS_ENDPOINT_URL=moto_url, AWS_ACCESS_KEY_ID="demo",
                   AWS_SECRET_ACCESS_KEY="demo", AWS_REGION="us-east-1",
                   AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        env.pop("AWS_PROFILE", None)
        session = LocalAws(moto_url)
        queues = provision(session, work)
        say("provisioned queues, state table, document bucket and the credentials secret")

        webhook_port = free_port()
        config = work / "relay.toml"
        relay_config(config, sim_url, webhook_port, queues)
        relay = [str(TARGET / "graph-mail-relay"), "--config", str(config)]
        processes.start("relay", relay + ["serve"], env=env)
        wait_until("the relay's webhook",
                   lambda: socket.create_connection(("127.0.0.1", webhook_port), timeout=1))
        say(f"relay in serve mode, webhook on http://127.0.0.1:{webhook_port}")

        # The serve-mode timer subscribes at start; the command is idempotent, so running it
        # here reports the same subscriptions (or waits while the timer holds a mailbox).
        for _ in range(30):
            result = subprocess.run(relay + ["subscribe"], env=env, capture_output=True,
                                    text=True, cwd=ROOT)
            if result.returncode != 3:
                break
            time.sleep(0.5)
        for line in result.stdout.splitlines():
            row = json.loads(line)
            say(f"subscription {row['outcome']}: {row['mailbox']} {row.get('subscriptionId')}")
        if result.returncode != 0:
            raise RuntimeError(f"subscribe failed:\n{result.stdout}{result.stderr}")

        pdf = (ROOT / "samplconfig" / "sample-fax.pdf").read_bytes()
        deliveries = [
            (FAX_MAILBOX, {"from": {"name": "Alice Example", "address": "alice@contoso.example"},
                           "to": [FAX_TO], "subject": "Invoice 42",
                           "body": "Please fax the attached invoice.", "bodyType": "text",
                           "attachments": [{"name": "invoice-42.pdf",
                                            "contentType": "application/pdf",
                                            "contentBase64": base64.b64encode(pdf).decode()}]}),
            (SMS_MAILBOX, {"from": {"name": "Bistro", "address": "bookings@contoso.example"},
                           "to": [SMS_TO], "subject": "",
                           "body": "<p>Your table for two is ready. Reply STOP to opt out.</p>",
                           "bodyType": "html", "attachments": []}),
        ]
        for mailbox, message in deliveries:
            status, answer = http_json("POST", f"{sim_url}/_sim/mailboxes/{mailbox}/messages",
                                       message)
            webhook_status = [n["status"] for n in answer["notifications"]]
            say(f"delivered mail to {mailbox}; Graph notified the webhook: {webhook_status}")

        sqs = session.client("sqs")
        fax_jobs = read_one(sqs, queues["fax-jobs"])
        sms_jobs = read_one(sqs, queues["sms-jobs"])
        for job in fax_jobs + sms_jobs:
            print(json.dumps(job), flush=True)

        problems = check_jobs(fax_jobs, sms_jobs, pdf, session.client("s3"))
        for problem in problems:
            say(f"PROBLEM: {problem}")
        ok = not problems
        say("both jobs arrived and are right" if ok else "the demo FAILED")
    except Exception as error:  # report, show the logs, and still stop everything
        say(f"FAILED: {error}")
    finally:
        processes.stop_all()
        if not ok:
            for log in sorted(work.glob("*.log")):
                say(f"--- {log.name} (last lines) ---")
                sys.stderr.write("\n".join(log.read_text(errors="replace").splitlines()[-25:]) + "\n")
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

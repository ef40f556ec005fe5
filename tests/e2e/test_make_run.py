"""End-to-end: `make run` (deploy/local/run.sh) does what README's quick start promises a newcomer.

run.sh is started as `make run` starts it, but beside the test session's Redis and Kafka broker (it starts its
own only when REDIS_URL / KAFKA_BROKERS are unset) and on free ports, with a topic prefix and group of its own.
The curl commands it prints are then run as printed, through a shell: create a webhook, post an event, and the
demo receiver prints the signed delivery; the delivery log and a test delivery as well. Ctrl-C stops it all.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

from conftest import wait_until
from support.services import free_port, port_open

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RunScript:
    """deploy/local/run.sh running in its own process group; its stdout collected line by line."""

    def __init__(self, env):
        self.proc = subprocess.Popen(["bash", os.path.join(REPO, "deploy/local/run.sh")], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.lines)

    def wait_for(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = predicate(self.text())
            if found:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"make run: no {what} in {timeout} s; its output:\n{self.text()[-4000:]}")

    def interrupt(self) -> int:
        """Ctrl-C, as a newcomer would: SIGINT to the whole foreground group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(60)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def printed_command(output: str, step: str) -> str:
    """The curl command printed under "<step>. ...", with its continuation lines, as one shell command."""
    block = output.split(f"\n{step}. ", 1)[1]
    lines = block.split("\n")[1:]
    command = []
    for line in lines:
        command.append(line.strip())
        if not line.endswith("\\"):
            break
    return "\n".join(command)


def shell(command: str) -> str:
    r = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (command, r.stdout, r.stderr)
    return r.stdout


def test_make_run_quick_start_works_as_printed(redis_server, kafka_broker, tmp_path):
    api_port, receiver_port, metrics_port = free_port(), free_port(), free_port()
    suffix = uuid.uuid4().hex[:8]
    env = dict(os.environ, REDIS_URL=redis_server.url, KAFKA_BROKERS=kafka_broker.bootstrap,
               API_PORT=str(api_port), RECEIVER_PORT=str(receiver_port),
               METRICS_ADDR=f"127.0.0.1:{metrics_port}", RUN_STATE_DIR=str(tmp_path / "run"),
               TOPIC_PREFIX=f"makerun{suffix}.", KAFKA_GROUP=f"makerun-{suffix}")
    env.setdefault("HOOKD_BIN", os.path.join(REPO, "bin"))
    run = RunScript(env)
    try:
        out = run.wait_for(lambda t: t if "\n3. See it arrive" in t and "A test delivery" in t else None, 120,
                           "instructions")
        assert f"producer-api: http://127.0.0.1:{api_port}" in out
        created = json.loads(shell(printed_command(out, "1")))
        assert created["url"] == f"https://127.0.0.1:{receiver_port}/hooks"
        assert created["event_type"] == "project.created" and created["status"] == "active"
        accepted = json.loads(shell(printed_command(out, "2")))
        event_id = accepted["id"]

        # the demo receiver prints the signed delivery of that very event
        delivery = run.wait_for(
            lambda t: t.split("=== delivery to /hooks", 1)[1] if f"webhook-id: {event_id}" in t else None, 60,
            f"delivery of {event_id}")
        assert re.search(r"^webhook-signature: v1,[A-Za-z0-9+/]{43}=$", delivery, re.M), delivery
        assert re.search(r'^  "type": "project.created"$', delivery, re.M), delivery
        assert re.search(r'^    "name": "Apollo"$', delivery, re.M), delivery

        # the delivery log and a test delivery, with the id step 1 printed
        commands = {m.group(1): m.group(2) for m in re.finditer(r"^   (Its delivery log|A test delivery): +(curl .*)$",
                                                                 out, re.M)}
        log_command = commands["Its delivery log"].replace("/ID/", f"/{created['id']}/")
        log = wait_until(lambda: json.loads(shell(log_command))["data"], 10, what="the delivery log")
        assert [(a["event_id"], a["status"]) for a in log] == [(event_id, 204)], log
        test = json.loads(shell(commands["A test delivery"].replace("/ID/", f"/{created['id']}/")))
        assert test["delivered"] is True and test["status"] == 204, test  # producer-api trusts the demo CA too
        run.wait_for(lambda t: f"webhook-id: {test['event_id']}" in t, 30, "the test delivery at the receiver")

        assert run.interrupt() is not None
        assert "stopped everything make run started." in run.text()
        for port in (api_port, receiver_port, metrics_port):  # producer-api, the receiver, the dispatcher: gone
            assert not port_open(port), port
    finally:
        run.kill()

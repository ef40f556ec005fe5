"""End-to-end: HTTP/2 with multiplexing, against nginx (skipped when nginx is not installed)."""

import collections
import shutil
import subprocess
import time

import pytest

from conftest import wait_until
from support.services import free_port, port_open
from test_delivery import project_event

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    log_format hookd '$server_protocol $connection $http_webhook_id $request_method $request_length';
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        http2_max_concurrent_streams 256;
        location / {{
            access_log {dir}/access.log hookd;
            # like a real receiver (which verifies the signature over the body), read the whole body before
            # answering: nginx buffers it and only then hands the request to the application below
            proxy_pass http://unix:{dir}/receiver.sock;
        }}
    }}
    server {{
        listen unix:{dir}/receiver.sock;
        location / {{
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


# A receiver that answers before reading the request body: nginx "return" discards the body and resets the
# HTTP/2 stream with RST_STREAM NO_ERROR once the response is out (RFC 9113 8.1 allows it).
EARLY_NGINX_CONF = NGINX_CONF.replace("proxy_pass http://unix:{dir}/receiver.sock;", "return 200 'early';")


def start_nginx(test_ca, tmp_path, template):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(template.format(dir=tmp_path, port=port, cert=test_ca.server_cert, key=test_ca.server_key))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), 10, what="nginx")
        yield port, tmp_path / "access.log"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def nginx_h2(test_ca, tmp_path):
    yield from start_nginx(test_ca, tmp_path, NGINX_CONF)


@pytest.fixture
def nginx_h2_early(test_ca, tmp_path):
    yield from start_nginx(test_ca, tmp_path, EARLY_NGINX_CONF)


def test_http2_multiplexed_on_few_connections(stack, nginx_h2):
    port, access_log = nginx_h2
    org = stack.new_org()
    for i in range(3):
        stack.api.create_webhook(org, f"https://127.0.0.1:{port}/h2/{i}", "project.created")
    d = stack.dispatcher().wait_ready()
    ids = stack.api.post_events([project_event(org, i) for i in range(200)])

    def lines():
        return access_log.read_text().splitlines() if access_log.exists() else []

    wait_until(lambda: len(lines()) >= 600, 30, what="600 requests at nginx")
    time.sleep(0.5)
    rows = [line.split() for line in lines()]
    assert len(rows) == 600
    assert {r[0] for r in rows} == {"HTTP/2.0"}
    assert {r[2] for r in rows} == set(ids)
    per_connection = collections.Counter(r[1] for r in rows)
    # a burst that arrives before the first connection is up may open extra connections (libcurl 7.88);
    # after that, transfers multiplex: one connection must carry many concurrent streams
    busiest = per_connection.most_common(1)[0][1]
    assert busiest >= 200, f"busiest connection carried {busiest} of 600 requests: not multiplexed"
    failed = [a for a in d.attempts() if a["outcome"] != "success"]
    assert not failed, f"{len(failed)} attempts failed, e.g. {failed[:3]}"


def test_receiver_answering_before_reading_the_body(stack, nginx_h2_early):
    """libcurl 7.88 fails an HTTP/2 transfer whose stream the receiver reset after answering early, usually
    before the status is visible; such a webhook must still get every event: the dispatcher takes a received
    status as the answer and moves the webhook to HTTP/1.1 after the first reset."""
    port, access_log = nginx_h2_early
    org = stack.new_org()
    hook = stack.api.create_webhook(org, f"https://127.0.0.1:{port}/early", "project.created")
    d = stack.dispatcher().wait_ready()
    blob = "x" * 200_000  # far past the first HTTP/2 flow-control window: nginx answers while the body is sent

    def post(first_id):
        return stack.api.post_events([{"type": "project.created", "organization_id": org,
                                       "data": {"id": first_id + i, "blob": blob}} for i in range(4)])

    def delivered():
        return {a["event_id"] for a in d.attempts() if a["outcome"] == "success"}

    def fallback_lines():
        return [line for line in d.proc.log_lines() if line.get("msg", "").startswith("receiver reset an HTTP/2")]

    # first wave over HTTP/2: a stream reset moves the webhook to HTTP/1.1 (the first retry is due 5 s after a
    # failed attempt)
    ids = post(0)
    wait_until(lambda: delivered() >= set(ids), 60, what="the first wave delivered to the early-answering receiver")
    wait_until(lambda: fallback_lines(), 10, what="the HTTP/1.1 fallback logged")
    # second wave, after the fallback: HTTP/1.1, so the early answer is a plain response
    ids += post(4)
    wait_until(lambda: delivered() == set(ids), 60, what="every event delivered to the early-answering receiver")
    assert [line["webhook_id"] for line in fallback_lines()] == [hook["id"]]
    protocols = collections.Counter(line.split()[0] for line in access_log.read_text().splitlines())
    assert protocols["HTTP/1.1"] >= 4, protocols
    failed = [a for a in d.attempts() if a["outcome"] != "success"]
    assert all(a["outcome"] == "network_error" and "HTTP/2" in a["error"] for a in failed), failed[:3]

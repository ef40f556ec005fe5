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


@pytest.fixture
def nginx_h2(test_ca, tmp_path):
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed")
    port = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path, port=port, cert=test_ca.server_cert, key=test_ca.server_key))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), 10, what="nginx")
        yield port, tmp_path / "access.log"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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

"""producer-api against a Redis that stalls: connections stay open, nothing answers (SIGSTOP).

Each test runs its own redis-server, so freezing it cannot disturb the session's shared one.
"""

import time

import requests

from support import memcheck
from support.producer_api import ProducerApi, closed_port
from support.services import RedisServer

WEBHOOKS = "/api/v1/webhooks"


def test_a_stalled_redis_costs_a_request_one_timeout_then_service_resumes(tmp_path, new_org):
    """A command that times out (REDIS_CONN_TIMEOUT_MS, 2 s) is not sent again on a new connection: the server is
    there but stalled, and the second try only doubled the wait. Before, each request against a frozen Redis took
    4.02-4.03 s to get its 503; now 2.01-2.02 s. When Redis answers again, the next requests succeed on a fresh
    connection (the timed-out one is dropped: its late reply must not be read as the next command's)."""
    redis = RedisServer(tmpdir=str(tmp_path)).start()
    api = ProducerApi(redis.url, f"127.0.0.1:{closed_port()}")
    try:
        token = api.token(org=new_org())
        headers = {"auth": token}
        created = requests.post(api.base_url + WEBHOOKS, headers=headers, timeout=10,
                                json={"url": "https://example.com/hook", "event_type": "project.created"})
        assert created.status_code == 200, created.text
        redis.freeze()
        try:
            waits = []
            for _ in range(2):
                start = time.monotonic()
                r = requests.get(api.base_url + WEBHOOKS, headers=headers, timeout=20)
                waits.append(time.monotonic() - start)
                assert r.status_code == 503, r.text
                assert r.json() == {"message": "storage unavailable, retry later"}
                assert r.headers.get("Retry-After") == "1"
        finally:
            redis.thaw()
        assert max(waits) < memcheck.scaled(3.0), waits  # one 2 s timeout, not two
        deadline = time.monotonic() + memcheck.scaled(5.0)
        while True:
            r = requests.get(api.base_url + WEBHOOKS, headers=headers, timeout=10)
            if r.status_code == 200:
                break
            assert time.monotonic() < deadline, f"still {r.status_code} after the stall: {r.text}"
            time.sleep(0.05)
        assert [w["id"] for w in r.json()["data"]] == [created.json()["id"]]
    finally:
        api.stop()
        api.cleanup()
        redis.stop()

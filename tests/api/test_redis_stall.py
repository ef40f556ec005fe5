"""producer-api against a Redis that stalls: connections stay open, nothing answers (SIGSTOP).

Each test runs its own redis-server, so freezing it cannot disturb the session's shared one.
"""

import concurrent.futures
import re
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
        r = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
            requests.get(api.base_url + WEBHOOKS, headers=headers, timeout=10)), 5.0, "200 after the stall")
        assert [w["id"] for w in r.json()["data"]] == [created.json()["id"]]
    finally:
        api.stop()
        api.cleanup()
        redis.stop()


def wait_for(predicate, limit_s: float, what: str):
    """predicate()'s first truthy value, polled every 20 ms; fails after limit_s (scaled under valgrind)."""
    deadline = time.monotonic() + memcheck.scaled(limit_s)
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {limit_s} s"
        time.sleep(0.02)


def redis_up(api) -> float:
    """hookd_api_redis_up from /metrics."""
    text = requests.get(api.base_url + "/metrics", timeout=5).text
    return float(re.search(r"^hookd_api_redis_up (\S+)$", text, re.M).group(1))


def test_a_refusing_redis_reads_as_down_within_moments(tmp_path, new_org):
    """hookd_api_redis_up follows the prober's PING (every 100 ms): 0 soon after Redis stops, 1 soon after it is
    back (producer-api's /metrics had no Redis signal; the dispatcher's has hookd_dispatcher_redis_up)."""
    redis = RedisServer(tmpdir=str(tmp_path)).start()
    api = ProducerApi(redis.url, f"127.0.0.1:{closed_port()}")
    try:
        assert redis_up(api) == 1
        redis.stop()
        wait_for(lambda: redis_up(api) == 0, 2.0, "hookd_api_redis_up 0")
        redis.resume()
        wait_for(lambda: redis_up(api) == 1, 5.0, "hookd_api_redis_up 1")
    finally:
        api.stop()
        api.cleanup()
        redis.stop()


def _concurrent_gets(api, headers, count):
    """count concurrent GETs, every fourth of /healthz, the rest of the webhooks list: [(path, status, seconds)]."""
    def one(i):
        path = "/healthz" if i % 4 == 0 else WEBHOOKS
        start = time.monotonic()
        r = requests.get(api.base_url + path, headers=headers, timeout=60)
        return path, r.status_code, time.monotonic() - start
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_a_stalled_redis_holds_no_request_past_the_first_timeout(tmp_path, new_org):
    """Redis calls run on the HTTP threads, so a request waiting out a timed-out command held every request of its
    thread, /healthz included (a liveness probe failing because Redis hangs): 40 concurrent requests against a
    frozen Redis took up to 16 s, and the next 40 as long again. Now the first timeout closes the pool's gate
    (store_pool.h): the first wave waits for that one timeout, the next is answered at once, and a prober opens
    the gate as soon as Redis answers again."""
    redis = RedisServer(tmpdir=str(tmp_path)).start()
    api = ProducerApi(redis.url, f"127.0.0.1:{closed_port()}")
    try:
        headers = {"auth": api.token(org=new_org())}
        assert requests.get(api.base_url + WEBHOOKS, headers=headers, timeout=10).status_code == 200
        assert redis_up(api) == 1
        redis.freeze()
        try:
            first = _concurrent_gets(api, headers, 40)
            second = _concurrent_gets(api, headers, 40)
            ready = requests.get(api.base_url + "/readyz", timeout=10)
            up_during = redis_up(api)
        finally:
            redis.thaw()
        for wave in (first, second):
            assert {status for path, status, _ in wave if path == "/healthz"} == {200}
            assert {status for path, status, _ in wave if path == WEBHOOKS} <= {503}
        assert max(s for _, _, s in first) < memcheck.scaled(3.5), sorted(round(s, 2) for _, _, s in first)
        assert max(s for _, _, s in second) < memcheck.scaled(0.5), sorted(round(s, 2) for _, _, s in second)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"] == "not answering"
        assert up_during == 0
        wait_for(lambda: requests.get(api.base_url + WEBHOOKS, headers=headers, timeout=10).status_code == 200,
                 3.0, "200 again after the stall")
        wait_for(lambda: redis_up(api) == 1, 3.0, "hookd_api_redis_up 1")
    finally:
        api.stop()
        api.cleanup()
        redis.stop()

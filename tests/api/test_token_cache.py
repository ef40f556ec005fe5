"""producer-api: the API token cache (producer-api/token_cache.c).

A token Redis confirmed is served from memory; `token revoke` bumps hookd:tokens:version and every producer-api
drops its cache within TOKEN_CACHE_REFRESH (100 ms by default, never trusted for more than twice that without
an answer from Redis). Black-box against bin/producer-api and real redis-server instances.
"""

import re
import time

import requests

from support import memcheck
from support.producer_api import ApiClient, ProducerApi, closed_port
from support.services import RedisServer

WEBHOOKS = "/api/v1/webhooks"


def lookups(api: ProducerApi) -> dict:
    """hookd_token_cache_lookups_total by result, from /metrics."""
    text = requests.get(api.base_url + "/metrics", timeout=5).text
    found = dict(re.findall(r'^hookd_token_cache_lookups_total\{result="(hit|miss)"\} (\d+)$', text, re.M))
    return {k: int(v) for k, v in found.items()}


def status_of(api: ProducerApi, token: str) -> int:
    return requests.get(api.base_url + WEBHOOKS, headers={"auth": token}, timeout=5).status_code


def wait_for_status(api: ProducerApi, token: str, want: int, limit_s: float) -> float:
    """Seconds until a request with token answers want; fails past limit_s."""
    start = time.monotonic()
    while True:
        got = status_of(api, token)
        elapsed = time.monotonic() - start
        if got == want:
            return elapsed
        assert elapsed < limit_s, f"still {got} after {elapsed:.2f} s, wanted {want}"
        time.sleep(0.005)


def test_a_valid_token_is_served_from_the_cache(webhooks_api, new_org):
    token = webhooks_api.token(org=new_org())
    c = ApiClient(webhooks_api, token)
    c.get(WEBHOOKS, expect=200)  # looked up in Redis, then cached
    before = lookups(webhooks_api)
    for _ in range(20):
        c.get(WEBHOOKS, expect=200)
    after = lookups(webhooks_api)
    # the refresher may drop the cache once in between (another test revoking): at most one more miss
    assert after["hit"] - before["hit"] >= 19, (before, after)
    assert after["miss"] - before["miss"] <= 1, (before, after)


def test_unknown_tokens_are_never_cached(webhooks_api):
    before = lookups(webhooks_api)
    for _ in range(5):
        assert status_of(webhooks_api, "hkd_not_a_real_token") == 401
    after = lookups(webhooks_api)
    assert after["miss"] - before["miss"] == 5 and after["hit"] == before["hit"], (before, after)


def test_revocation_reaches_a_warm_cache_within_the_refresh(webhooks_api, new_org):
    org = new_org()
    token, other = webhooks_api.token(org=org), webhooks_api.token(org=org)
    for t in (token, other):
        for _ in range(3):
            assert status_of(webhooks_api, t) == 200  # both cached
    before = lookups(webhooks_api)
    webhooks_api.revoke(token)
    # 100 ms refresh: the next check after the revocation drops the cache (slack for a loaded machine)
    took = wait_for_status(webhooks_api, token, 401, memcheck.scaled(1.0))
    assert ApiClient(webhooks_api, token).get(WEBHOOKS, expect=401).body == {"message": "unauthorized"}
    # the whole cache was dropped: the other token is looked up again, and still valid
    assert status_of(webhooks_api, other) == 200
    assert lookups(webhooks_api)["miss"] > before["miss"]
    print(f"revoked token refused after {took * 1000:.0f} ms")


def test_without_the_cache_revocation_is_immediate(redis_server, new_org):
    api = ProducerApi(redis_server.url, f"127.0.0.1:{closed_port()}", TOKEN_CACHE_REFRESH="0")
    try:
        token = api.token(org=new_org())
        for _ in range(3):
            assert status_of(api, token) == 200
        api.revoke(token)
        assert status_of(api, token) == 401  # the very next request
        assert lookups(api).get("hit", 0) == 0
    finally:
        api.stop()
        api.cleanup()


def test_cached_tokens_are_not_honoured_while_redis_is_unreachable(tmp_path, new_org):
    """Revocations cannot be seen while Redis is down, so the cache stops vouching: 503, never a stale 200."""
    redis = RedisServer(tmpdir=str(tmp_path)).start()
    api = ProducerApi(redis.url, f"127.0.0.1:{closed_port()}")
    try:
        token = api.token(org=new_org())
        for _ in range(3):
            assert status_of(api, token) == 200
        redis.stop()
        # within 2 x 100 ms (plus the refresher's connect timeout on a closed port) every request is 503
        wait_for_status(api, token, 503, memcheck.scaled(3.0))
        r = requests.get(api.base_url + WEBHOOKS, headers={"auth": token}, timeout=5)
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1"
        assert r.json() == {"message": "storage unavailable, retry later"}
    finally:
        api.stop()
        api.cleanup()
        if redis.running:
            redis.stop()

"""producer-api: the webhooks API on Redis (Resource Management by Smartsheet compatible).

Black-box against bin/producer-api and a real redis-server. The instance under test has KAFKA_BROKERS on a
closed port (fixture `webhooks_api`), so nothing here waits for Kafka. Every response is checked against
schemas/openapi.yaml (ApiClient validates each one).

    make && /usr/bin/python3 -m pytest -q tests/api/test_webhooks_api.py
"""

import base64
import datetime
import hashlib
import json
import re
import threading
import time

import pytest
import requests

from support import memcheck
from support.event_types import EVENT_TYPES
from support.producer_api import ApiClient, ProducerApi, closed_port, openapi_check

WEBHOOKS = "/api/v1/webhooks"
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

PRIVATE_URLS = [
    "https://localhost/hook",
    "https://x.localhost/hook",
    "https://localhost./hook",
    "https://127.1/hook",
    "https://2130706433/hook",
    "https://0x7f.0.0.1/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://[fd00::1]/hook",
    "https://10.0.0.1/hook",
    "https://100.64.0.1/hook",
    "https://[2002:7f00:1::]/hook",
    "https://[64:ff9b::7f00:1]/hook",
    "https://0.0.0.0/hook",
    "https://[::]/hook",
]
PUBLIC_URLS = ["https://example.com/x", "https://93.184.216.34/"]
MALFORMED_URLS = [
    "http://example.com/hook",               # not https
    "HTTP://example.com/hook",
    "ftp://example.com/hook",
    "example.com/hook",                      # not absolute
    "https://",                              # no host
    "https:///hook",
    "https://exa mple.com/",                 # whitespace
    "https://-bad-.example.com/",            # invalid label
    "https://ex_ample.com/",
    "https://user@example.com/hook",         # userinfo
    "https://user:pw@example.com/hook",
    "https://:pw@example.com/hook",
    "https://example.com:0/",                # port
    "https://example.com:65536/",
    "https://1.2.3.256/",                    # numeric host that is no IPv4 address
    "https://[fe80::1%25eth0]/",             # zone id
    "",
]


# --------------------------------------------------------------------------- helpers
@pytest.fixture
def org(new_org):
    return new_org()


@pytest.fixture
def client(webhooks_api, org):
    return ApiClient(webhooks_api, webhooks_api.token(org=org))


def create(c, url="https://example.com/hook", event_type="project.created", expect=200):
    return c.post(WEBHOOKS, json={"url": url, "event_type": event_type}, expect=expect)


def fields(r):
    assert r.status_code == 403 and r.body["message"] == "bad data", r.body
    return {e["field"] for e in r.body["errors"]}


def parse_ts(text):
    assert TS.match(text), text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def all_ids(c):
    ids, page = [], 1
    while True:
        r = c.get(WEBHOOKS, params={"page": page, "per_page": 100}, expect=200)
        ids += [w["id"] for w in r.body["data"]]
        if r.body["paging"]["next"] is None:
            return ids
        page += 1


# --------------------------------------------------------------------------- create
def test_create_returns_the_webhook_object(client, org):
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    r = create(client, "https://example.com/hooks/a?x=1", "time.entry.created")
    after = datetime.datetime.now(datetime.timezone.utc)
    w = r.body
    assert set(w) == {"id", "url", "status", "event_type", "organization_id", "created_at", "updated_at",
                      "secret"}
    assert isinstance(w["id"], int) and not isinstance(w["id"], bool) and w["id"] >= 1
    assert w["url"] == "https://example.com/hooks/a?x=1"
    assert w["status"] == "active"
    assert w["event_type"] == "time.entry.created"
    assert w["organization_id"] == org and isinstance(w["organization_id"], int)
    for k in ("created_at", "updated_at"):
        assert before - datetime.timedelta(seconds=2) <= parse_ts(w[k]) <= after + datetime.timedelta(seconds=2)
    assert w["secret"].startswith("whsec_")
    key = base64.b64decode(w["secret"][len("whsec_"):], validate=True)
    assert len(key) >= 24
    # ids grow, secrets are random
    w2 = create(client, "https://example.com/hooks/b", "time.entry.created").body
    assert w2["id"] > w["id"]
    assert w2["secret"] != w["secret"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_each_event_type_is_accepted(client, event_type):
    assert create(client, event_type=event_type).body["event_type"] == event_type


@pytest.mark.parametrize("event_type", ["project.deleted", "Project.Created", "project.created ", "",
                                        "project", "webhooks.project.created"])
def test_unknown_event_type_refused(client, event_type):
    r = create(client, event_type=event_type, expect=403)
    assert fields(r) == {"event_type"}
    assert all_ids(client) == []


BAD_BODIES = [
    (json.dumps({"url": 5, "event_type": []}), {"url", "event_type"}),
    (json.dumps({"url": None, "event_type": None}), {"url", "event_type"}),
    (json.dumps({"url": ["https://example.com/"], "event_type": "project.created"}), {"url"}),
    (json.dumps({"url": "https://example.com/", "event_type": 3}), {"event_type"}),
    (json.dumps({"url": "https://example.com/", "event_type": {"a": 1}}), {"event_type"}),
    (json.dumps({"url": True, "event_type": "project.created"}), {"url"}),
    (json.dumps({"event_type": "project.created"}), {"url"}),
    (json.dumps({"url": "https://example.com/"}), {"event_type"}),
    (json.dumps({}), {"url", "event_type"}),
    # jansson refuses \u0000 in strings: the whole body is not acceptable JSON
    (json.dumps({"url": "https://example.com/\u0000x", "event_type": "project.created"}), {"body"}),
    (json.dumps({"url": "https://example.com/", "event_type": "project.created\u0000"}), {"body"}),
    ('{"url": "https://example.com/", "url": "https://example.org/", "event_type": "user.created"}', {"body"}),
    ("[]", {"body"}),
    ('"x"', {"body"}),
    ("null", {"body"}),
    ("42", {"body"}),
    ("", {"body"}),
    ('{"url": "https://example.com/", "event_type": "project.created"', {"body"}),
    ("{url: 'https://example.com/'}", {"body"}),
    (b'{"url": "https://example.com/\xff\xfe", "event_type": "project.created"}', {"body"}),
    (b'{"url": "https://example.com/", "event_type": "project.created\xc0\xaf"}', {"body"}),
]


@pytest.mark.parametrize("body,expected", BAD_BODIES, ids=[f"bad{i}" for i in range(len(BAD_BODIES))])
def test_bad_input_is_bad_data_naming_fields(client, body, expected):
    r = client.post(WEBHOOKS, data=body, headers={"Content-Type": "application/json"}, expect=403)
    assert fields(r) == expected, r.body
    assert all(e["message"] for e in r.body["errors"])
    assert all_ids(client) == []


def test_unknown_fields_are_ignored(client, org):
    r = client.post(WEBHOOKS, json={"url": "https://example.com/u", "event_type": "user.created", "id": 1,
                                    "organization_id": org + 1, "status": "paused", "secret": "whsec_AAAA",
                                    "created_at": "2000-01-01T00:00:00Z", "extra": {"deep": [1, 2]}},
                    expect=200)
    w = r.body
    assert w["organization_id"] == org
    assert w["status"] == "active"
    assert w["secret"] != "whsec_AAAA"
    assert w["created_at"] != "2000-01-01T00:00:00Z"
    assert all_ids(client) == [w["id"]]


def test_body_over_64_kib_is_413(client):
    pad = "a" * (64 * 1024)
    body = json.dumps({"url": "https://example.com/", "event_type": "project.created", "pad": pad})
    r = client.post(WEBHOOKS, data=body, headers={"Content-Type": "application/json"}, expect=413)
    assert r.body["message"]
    # streamed (chunked, no Content-Length): refused as well
    r = client.post(WEBHOOKS, data=(body[i:i + 4096].encode() for i in range(0, len(body), 4096)),
                    headers={"Content-Type": "application/json"}, expect=413)
    assert all_ids(client) == []
    # just under the limit is fine
    pad = "a" * (64 * 1024 - 200)
    body = json.dumps({"url": "https://example.com/", "event_type": "project.created", "pad": pad})
    assert len(body) <= 64 * 1024
    client.post(WEBHOOKS, data=body, headers={"Content-Type": "application/json"}, expect=200)


# --------------------------------------------------------------------------- url rules
@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_targets_refused(client, url):
    r = create(client, url, expect=403)
    assert fields(r) == {"url"}


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_private_targets_allowed_with_allow_private(webhooks_api_private, new_org, url):
    c = ApiClient(webhooks_api_private, webhooks_api_private.token(org=new_org()))
    assert create(c, url).body["url"] == url


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_public_targets_accepted(client, url):
    assert create(client, url).body["url"] == url


@pytest.mark.parametrize("url", MALFORMED_URLS)
def test_malformed_urls_refused_even_with_allow_private(webhooks_api, webhooks_api_private, new_org, url):
    for api in (webhooks_api, webhooks_api_private):
        c = ApiClient(api, api.token(org=new_org()))
        r = create(c, url, expect=403)
        assert fields(r) == {"url"}, (api.extra_env, r.body)


def test_url_length_limit(client):
    base = "https://example.com/"
    ok = base + "a" * (2048 - len(base))
    assert len(ok.encode()) == 2048
    assert create(client, ok).body["url"] == ok
    r = create(client, ok + "a", expect=403)
    assert fields(r) == {"url"}
    r = create(client, base + "a" * 10000, expect=403)
    assert fields(r) == {"url"}


# --------------------------------------------------------------------------- limit per type
def test_at_most_ten_per_event_type(webhooks_api, new_org):
    org_a, org_b = new_org(), new_org()
    a = ApiClient(webhooks_api, webhooks_api.token(org=org_a))
    b = ApiClient(webhooks_api, webhooks_api.token(org=org_b))
    ids = [create(a, f"https://example.com/{i}", "project.updated").body["id"] for i in range(10)]
    r = create(a, "https://example.com/11", "project.updated", expect=403)
    assert fields(r) == {"event_type"}
    assert sorted(all_ids(a)) == sorted(ids)
    # another type, another organization: unaffected
    create(a, "https://example.com/other", "project.created")
    create(b, "https://example.com/b", "project.updated")
    # deleting one frees a slot
    a.delete(f"{WEBHOOKS}/{ids[0]}", expect=200)
    create(a, "https://example.com/again", "project.updated")
    create(a, "https://example.com/12", "project.updated", expect=403)


def test_concurrent_creates_respect_the_limit(webhooks_api, org):
    token = webhooks_api.token(org=org)
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker(i):
        c = ApiClient(webhooks_api, token)
        barrier.wait()
        r = create(c, f"https://example.com/c{i}", "assignment.created", expect=(200, 403))
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [200] * 10 + [403] * 6
    c = ApiClient(webhooks_api, token)
    r = c.get(WEBHOOKS, expect=200)
    assert len(r.body["data"]) == 10 and r.body["paging"]["total"] == 10


# --------------------------------------------------------------------------- list
def test_list_empty(client):
    r = client.get(WEBHOOKS, expect=200)
    assert r.body == {"data": [], "paging": {"page": 1, "per_page": 20, "total": 0,
                                             "self": "/api/v1/webhooks?page=1&per_page=20",
                                             "previous": None, "next": None}}


def test_list_pages_newest_first(client, org):
    types = ["project.created", "user.updated", "time.entry.updated"]
    created = [create(client, f"https://example.com/l{i}", types[i % 3]).body for i in range(25)]
    newest_first = [w["id"] for w in reversed(created)]
    by_id = {w["id"]: w for w in created}

    # default page size 20
    r = client.get(WEBHOOKS, expect=200)
    assert [w["id"] for w in r.body["data"]] == newest_first[:20]
    assert r.body["paging"] == {"page": 1, "per_page": 20, "total": 25,
                                "self": "/api/v1/webhooks?page=1&per_page=20", "previous": None,
                                "next": "/api/v1/webhooks?page=2&per_page=20"}
    for w in r.body["data"]:
        assert w == by_id[w["id"]]

    # three pages of 10, walked through the links
    r = client.get(WEBHOOKS, params={"per_page": 10}, expect=200)
    seen = []
    pages = []
    while True:
        p = r.body["paging"]
        pages.append(p)
        seen += [w["id"] for w in r.body["data"]]
        assert all(w["organization_id"] == org for w in r.body["data"])
        if p["next"] is None:
            break
        path, _, query = p["next"].partition("?")
        params = dict(kv.split("=") for kv in query.split("&"))
        r = client.get(path, params=params, expect=200)
    assert seen == newest_first
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert [p["self"] for p in pages] == [f"/api/v1/webhooks?page={n}&per_page=10" for n in (1, 2, 3)]
    assert [p["previous"] for p in pages] == [None, "/api/v1/webhooks?page=1&per_page=10",
                                              "/api/v1/webhooks?page=2&per_page=10"]
    assert [p["next"] for p in pages] == ["/api/v1/webhooks?page=2&per_page=10",
                                          "/api/v1/webhooks?page=3&per_page=10", None]
    assert all(p["total"] == 25 and p["per_page"] == 10 for p in pages)

    # beyond the last page: empty, previous link still there
    r = client.get(WEBHOOKS, params={"page": 4, "per_page": 10}, expect=200)
    assert r.body["data"] == [] and r.body["paging"]["next"] is None
    # per_page 100 (max) and 1 (min)
    r = client.get(WEBHOOKS, params={"per_page": 100}, expect=200)
    assert [w["id"] for w in r.body["data"]] == newest_first
    r = client.get(WEBHOOKS, params={"page": 25, "per_page": 1}, expect=200)
    assert [w["id"] for w in r.body["data"]] == [newest_first[24]]
    assert r.body["paging"]["next"] is None


@pytest.mark.parametrize("params,bad", [
    ({"per_page": "101"}, {"per_page"}),
    ({"per_page": "0"}, {"per_page"}),
    ({"per_page": "x"}, {"per_page"}),
    ({"per_page": "-1"}, {"per_page"}),
    ({"per_page": "10x"}, {"per_page"}),
    ({"per_page": "99999999999999999999"}, {"per_page"}),
    ({"page": "0"}, {"page"}),
    ({"page": "x"}, {"page"}),
    ({"page": "-2"}, {"page"}),
    ({"page": "0", "per_page": "0"}, {"page", "per_page"}),
])
def test_list_bad_paging_is_bad_data(client, params, bad):
    r = client.get(WEBHOOKS, params=params, expect=403)
    assert fields(r) == bad


def test_list_shows_only_own_organization(webhooks_api, new_org):
    a = ApiClient(webhooks_api, webhooks_api.token(org=new_org()))
    b = ApiClient(webhooks_api, webhooks_api.token(org=new_org()))
    wa = create(a).body
    wb = create(b).body
    assert all_ids(a) == [wa["id"]]
    assert all_ids(b) == [wb["id"]]


# --------------------------------------------------------------------------- get / delete
def test_get_own_webhook(client):
    w = create(client, "https://example.com/g", "user.created").body
    assert client.get(f"{WEBHOOKS}/{w['id']}", expect=200).body == w
    # a trailing slash is another (undocumented) path
    assert client.get(f"{WEBHOOKS}/{w['id']}/", expect=404, validate=False).body == {"message": "not found"}


@pytest.mark.parametrize("segment", ["abc", "0", "-1", "01", "1.0", "1e3", "%201", "99999999999999999999",
                                     "999999999999999999"])
def test_get_bad_or_unknown_id_is_404(client, segment):
    r = client.get(f"{WEBHOOKS}/{segment}", expect=404)
    assert r.body == {"message": "not found"}


def test_other_organizations_webhook_is_not_found(webhooks_api, new_org):
    owner = ApiClient(webhooks_api, webhooks_api.token(org=new_org()))
    other = ApiClient(webhooks_api, webhooks_api.token(org=new_org()))
    w = create(owner).body
    assert other.get(f"{WEBHOOKS}/{w['id']}", expect=404).body == {"message": "not found"}
    assert other.delete(f"{WEBHOOKS}/{w['id']}", expect=404).body == {"message": "not found"}
    assert owner.get(f"{WEBHOOKS}/{w['id']}", expect=200).body == w
    assert all_ids(owner) == [w["id"]]


def test_delete_returns_the_object_then_404(client):
    w = create(client, "https://example.com/d", "assignment.updated").body
    keep = create(client, "https://example.com/keep", "assignment.updated").body
    assert client.delete(f"{WEBHOOKS}/{w['id']}", expect=200).body == w
    assert client.get(f"{WEBHOOKS}/{w['id']}", expect=404).body == {"message": "not found"}
    assert client.delete(f"{WEBHOOKS}/{w['id']}", expect=404).body == {"message": "not found"}
    assert all_ids(client) == [keep["id"]]
    assert client.delete(f"{WEBHOOKS}/abc", expect=404).body == {"message": "not found"}


# --------------------------------------------------------------------------- auth
@pytest.mark.parametrize("how", ["header", "bearer", "query"])
def test_token_accepted_three_ways(client, how):
    w = create(client).body
    r = client.get(WEBHOOKS, auth_via=how, expect=200)
    assert [x["id"] for x in r.body["data"]] == [w["id"]]
    w2 = client.post(WEBHOOKS, auth_via=how, json={"url": "https://example.com/2", "event_type": "user.updated"},
                     expect=200).body
    client.delete(f"{WEBHOOKS}/{w2['id']}", auth_via=how, expect=200)


def test_missing_or_unknown_token_is_401(webhooks_api, client):
    w = create(client).body
    anon = ApiClient(webhooks_api, None)
    bogus = ApiClient(webhooks_api, "hkd_" + "A" * 43)
    for c in (anon, bogus):
        for method, path in [("POST", WEBHOOKS), ("GET", WEBHOOKS), ("GET", f"{WEBHOOKS}/{w['id']}"),
                             ("DELETE", f"{WEBHOOKS}/{w['id']}")]:
            kw = {"json": {"url": "https://example.com/", "event_type": "project.created"}} \
                if method == "POST" else {}
            r = c.request(method, path, expect=401, **kw)
            assert r.body == {"message": "unauthorized"}
    # empty values, a malformed Authorization header, an overlong token
    for headers in ({"auth": ""}, {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwdw=="},
                    {"Authorization": client.token}, {"auth": "x" * 5000}):
        r = anon.get(WEBHOOKS, headers=headers, expect=401)
        assert r.body == {"message": "unauthorized"}
    # the webhook survived
    client.get(f"{WEBHOOKS}/{w['id']}", expect=200)


def test_revoked_token_is_401_within_the_token_cache_refresh(webhooks_api, org):
    token = webhooks_api.token(org=org)
    other = webhooks_api.token(org=org)
    c = ApiClient(webhooks_api, token)
    create(c)
    webhooks_api.revoke(token)
    # TOKEN_CACHE_REFRESH is 100 ms (tests/api/test_token_cache.py covers the cache itself)
    deadline = time.monotonic() + memcheck.scaled(1.0)
    while c.get(WEBHOOKS, expect=(200, 401)).status_code == 200:
        assert time.monotonic() < deadline, "a revoked token still works after 1 s"
        time.sleep(0.01)
    assert c.get(WEBHOOKS, expect=401).body == {"message": "unauthorized"}
    create(c, expect=401)
    # another token of the same organization still works and sees the webhook
    assert len(ApiClient(webhooks_api, other).get(WEBHOOKS, expect=200).body["data"]) == 1


def test_service_token_on_webhooks_api_is_403(webhooks_api, client):
    w = create(client).body
    svc = ApiClient(webhooks_api, webhooks_api.token(service=True))
    for method, path in [("POST", WEBHOOKS), ("GET", WEBHOOKS), ("GET", f"{WEBHOOKS}/{w['id']}"),
                         ("DELETE", f"{WEBHOOKS}/{w['id']}")]:
        kw = {"json": {"url": "https://example.com/", "event_type": "project.created"}} if method == "POST" else {}
        r = svc.request(method, path, expect=403, **kw)
        assert r.body["message"] == "bad data"
    client.get(f"{WEBHOOKS}/{w['id']}", expect=200)


REDIS_FIND = """
local needle = ARGV[1]
local hits = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  local t = redis.call('TYPE', k).ok
  local vals = {}
  if t == 'string' then vals = {redis.call('GET', k)}
  elseif t == 'hash' then vals = redis.call('HGETALL', k)
  elseif t == 'zset' then vals = redis.call('ZRANGE', k, 0, -1)
  elseif t == 'set' then vals = redis.call('SMEMBERS', k)
  elseif t == 'list' then vals = redis.call('LRANGE', k, 0, -1) end
  if string.find(k, needle, 1, true) then hits[#hits + 1] = k end
  for _, v in ipairs(vals) do
    if string.find(v, needle, 1, true) then hits[#hits + 1] = k end
  end
end
return hits
"""


def test_tokens_stored_only_as_sha256(webhooks_api, redis_server, org):
    token = webhooks_api.token(org=org)
    svc = webhooks_api.token(service=True)
    assert re.match(r"^[A-Za-z0-9_-]{20,256}$", token), token
    keys = set(redis_server.cli("KEYS", "hookd:token:*").split())
    for t, kind in ((token, "org"), (svc, "service")):
        key = "hookd:token:" + hashlib.sha256(t.encode()).hexdigest()
        assert key in keys
        fields_ = redis_server.cli("HGETALL", key).split("\n")
        h = dict(zip(fields_[::2], fields_[1::2]))
        assert h["kind"] == kind
        if kind == "org":
            assert h["org"] == str(org)
        else:
            # DESIGN.md: `org` absent for service tokens; the store writes "0" (reported to the lead)
            assert h.get("org") in (None, "0")
        assert redis_server.cli("EVAL", REDIS_FIND, "0", t) == "", f"token text found in Redis"
    # the token still works (so the lookup really is by digest)
    ApiClient(webhooks_api, token).get(WEBHOOKS, expect=200)


# --------------------------------------------------------------------------- Redis data model
def test_redis_data_model(client, org, redis_server):
    subs = f"hookd:subs:{org}:user.updated"
    v0 = int(redis_server.cli("GET", "hookd:subs:version") or 0)
    w = create(client, "https://example.com/r", "user.updated").body
    v1 = int(redis_server.cli("GET", "hookd:subs:version"))
    assert v1 > v0
    stored = [json.loads(x) for x in redis_server.cli("HVALS", subs).splitlines()]
    assert stored == [w]                                   # what the dispatcher reads: secret included
    assert redis_server.cli("HKEYS", subs) == str(w["id"])
    assert json.loads(redis_server.cli("GET", f"hookd:webhook:{w['id']}")) == w
    assert redis_server.cli("ZRANGE", f"hookd:org:{org}:webhooks", "0", "-1") == str(w["id"])
    assert int(redis_server.cli("GET", "hookd:webhook:seq")) >= w["id"]

    client.delete(f"{WEBHOOKS}/{w['id']}", expect=200)
    v2 = int(redis_server.cli("GET", "hookd:subs:version"))
    assert v2 > v1
    assert redis_server.cli("HVALS", subs) == ""
    assert redis_server.cli("EXISTS", f"hookd:webhook:{w['id']}") == "0"
    assert redis_server.cli("ZRANGE", f"hookd:org:{org}:webhooks", "0", "-1") == ""
    # a refused create changes nothing
    create(client, "http://example.com/", "user.updated", expect=403)
    assert int(redis_server.cli("GET", "hookd:subs:version")) == v2


def changes_at(redis_server, version):
    """The change log's entries scored version (what a dispatcher reads to drop only what changed)."""
    return redis_server.cli("ZRANGEBYSCORE", "hookd:subs:changes", str(version), str(version)).splitlines()


def test_every_subscription_change_is_in_the_change_log(client, org, redis_server):
    w = create(client, "https://example.com/log", "user.created").body
    v1 = int(redis_server.cli("GET", "hookd:subs:version"))
    assert changes_at(redis_server, v1) == [f"{v1}:{org}:user.created"]
    client.post(f"{WEBHOOKS}/{w['id']}/rotate_secret", expect=200)
    v2 = int(redis_server.cli("GET", "hookd:subs:version"))
    assert v2 == v1 + 1 and changes_at(redis_server, v2) == [f"{v2}:{org}:user.created"]
    client.delete(f"{WEBHOOKS}/{w['id']}", expect=200)
    v3 = int(redis_server.cli("GET", "hookd:subs:version"))
    assert v3 == v2 + 1 and changes_at(redis_server, v3) == [f"{v3}:{org}:user.created"]
    # refused changes are not logged
    create(client, "http://example.com/", "user.created", expect=403)
    client.delete(f"{WEBHOOKS}/{w['id']}", expect=404)
    assert int(redis_server.cli("GET", "hookd:subs:version")) == v3
    assert changes_at(redis_server, v3 + 1) == []


def test_the_change_log_keeps_its_newest_10000_entries(client, org, redis_server):
    # fill the log up to its bound with entries older than any real one, then make one change
    redis_server.cli("EVAL", "for i = 1, 10000 do redis.call('ZADD', KEYS[1], -i, -i .. ':1:user.created') end",
                     "1", "hookd:subs:changes")
    create(client, "https://example.com/trim", "user.updated")
    v = int(redis_server.cli("GET", "hookd:subs:version"))
    assert int(redis_server.cli("ZCARD", "hookd:subs:changes")) == 10000
    assert changes_at(redis_server, v) == [f"{v}:{org}:user.updated"]
    newest = redis_server.cli("ZRANGE", "hookd:subs:changes", "-1", "-1")
    assert newest == f"{v}:{org}:user.updated"
    # the oldest filler went first
    assert redis_server.cli("ZSCORE", "hookd:subs:changes", "-10000:1:user.created") == ""
    redis_server.cli("ZREMRANGEBYSCORE", "hookd:subs:changes", "-inf", "(0")


# --------------------------------------------------------------------------- operations
def test_healthz_and_readyz_without_kafka(webhooks_api, client):
    anon = ApiClient(webhooks_api, None)
    r = anon.get("/healthz", expect=200)
    assert r.body["status"] == "ok"
    r = anon.get("/readyz", expect=503)
    assert r.body["checks"]["kafka"] != "ok" and r.body["checks"]["redis"] == "ok"
    # the webhooks API works meanwhile
    w = create(client).body
    client.get(f"{WEBHOOKS}/{w['id']}", expect=200)


@pytest.mark.parametrize("method,path", [("GET", "/"), ("GET", "/api/v1"), ("GET", "/api/v1/webhook"),
                                         ("POST", "/api/v2/webhooks"), ("GET", "/api/v1/events/1"),
                                         ("GET", "/healthz/x"), ("GET", "/api/v1/webhooks/1/unknown"),
                                         ("DELETE", "/nope")])
def test_unknown_path_is_404_json(webhooks_api, client, method, path):
    r = client.request(method, path, expect=404, validate=False)
    assert r.body == {"message": "not found"}


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", WEBHOOKS, "GET, POST"), ("DELETE", WEBHOOKS, "GET, POST"), ("PATCH", f"{WEBHOOKS}/1", "GET, DELETE"),
    ("POST", f"{WEBHOOKS}/1", "GET, DELETE"), ("GET", "/api/v1/events", "POST"), ("POST", "/healthz", "GET"),
    ("DELETE", "/readyz", "GET")])
def test_wrong_method_is_405_json(webhooks_api, method, path, allow):
    anon = ApiClient(webhooks_api, None)
    r = anon.request(method, path, expect=405, validate=False)
    assert r.body["message"]
    assert r.headers.get("Allow") == allow


def test_sigterm_exits_zero(redis_server, new_org):
    api = ProducerApi(redis_server.url, f"127.0.0.1:{closed_port()}")
    try:
        c = ApiClient(api, api.token(org=new_org()))
        create(c)
        api.stop()  # asserts exit 0 within 25 s and JSON logs
        msgs = [line.get("msg") or line.get("message") for line in api.log_lines()]
        assert any("listening" in str(m) for m in msgs), msgs
        with pytest.raises(requests.ConnectionError):
            requests.get(api.base_url + "/healthz", timeout=2)
    finally:
        api.cleanup()


def test_logs_are_json_lines(webhooks_api):
    lines = webhooks_api.log_lines()
    assert lines, "producer-api logged nothing"


# --------------------------------------------------------------------------- token CLI
@pytest.mark.parametrize("args", [
    ["token", "create", "--org", "0"], ["token", "create", "--org", "-3"], ["token", "create", "--org", "abc"],
    ["token", "create", "--org", "12x"], ["token", "create", "--org", ""], ["token", "create", "--org"],
    ["token", "create"], ["token"], ["token", "bogus"], ["token", "revoke"],
    ["token", "create", "--org", "5", "extra"], ["token", "create", "--service", "--org", "5"], ["bogus"]])
def test_cli_bad_arguments_exit_nonzero(webhooks_api, redis_server, args):
    before = redis_server.cli("EVAL", "return #redis.call('KEYS', 'hookd:token:*')", "0")
    r = webhooks_api.cli(*args)
    assert r.returncode != 0, (args, r.stdout, r.stderr)
    assert r.stdout.strip() == ""
    assert redis_server.cli("EVAL", "return #redis.call('KEYS', 'hookd:token:*')", "0") == before


def test_cli_revoke_unknown_token_exits_nonzero(webhooks_api, org):
    r = webhooks_api.cli("token", "revoke", "hkd_doesnotexist")
    assert r.returncode != 0
    token = webhooks_api.token(org=org)
    webhooks_api.revoke(token)
    r = webhooks_api.cli("token", "revoke", token)  # twice
    assert r.returncode != 0


def test_cli_create_against_unreachable_redis_exits_nonzero(webhooks_api):
    api = ProducerApi(f"redis://127.0.0.1:{closed_port()}/0", "127.0.0.1:1", start=False)
    try:
        r = api.cli("token", "create", "--org", "5")
        assert r.returncode != 0 and r.stdout.strip() == ""
    finally:
        api.cleanup()

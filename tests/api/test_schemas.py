"""Static checks of schemas/ (JSON Schema 2020-12) and schemas/openapi.yaml (OpenAPI 3.1).

Needs no running service: /usr/bin/python3 -m pytest -q tests/api/test_schemas.py
"""
import copy
import json
import pathlib
import re
import sys

import jsonschema
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "support"))
import openapi_check as oc  # noqa: E402

ROOT = oc.ROOT
EVENT_TYPES = ["project.created", "project.updated", "time.entry.created", "time.entry.updated",
               "user.created", "user.updated", "assignment.created", "assignment.updated"]
EXPECTED_FILES = {"webhook.json", "webhook-create.json", "webhook-list.json", "error.json", "envelope.json",
                  "event-create.json", "event-accepted.json", "delivery.json", "project.json",
                  "time-entry.json", "user.json", "assignment.json"}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw3YtAI4uGSZQ="


def load(name):
    with open(oc.SCHEMAS_DIR / name, encoding="utf-8") as fh:
        return json.load(fh)


def is_valid(name, instance):
    try:
        oc.validate_instance(name, instance)
    except AssertionError:
        return False
    return True


# --------------------------------------------------------------------------- schema documents
def test_expected_schema_files_exist():
    present = {p.name for p in oc.schema_files()}
    assert EXPECTED_FILES <= present, f"missing: {sorted(EXPECTED_FILES - present)}"
    assert oc.OPENAPI_PATH.is_file()


@pytest.mark.parametrize("path", oc.schema_files(), ids=lambda p: p.name)
def test_schema_is_valid_2020_12(path):
    schema = load(path.name)
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    assert schema.get("$id") == oc.BASE_URI + path.name
    assert schema.get("title") and schema.get("description")
    jsonschema.Draft202012Validator.check_schema(schema)


def _property_nodes(node, pointer=""):
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield pointer + "/properties/" + name, sub
        for k, v in node.items():
            if k in ("if", "then", "else"):
                continue  # conditions restate properties; the documented ones are elsewhere
            yield from _property_nodes(v, pointer + "/" + k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _property_nodes(v, f"{pointer}/{i}")


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_every_field_has_title_and_description(name):
    missing = [ptr for ptr, sub in _property_nodes(load(name))
               if not (isinstance(sub, dict) and sub.get("title") and sub.get("description"))]
    assert not missing, f"{name}: fields without title/description: {missing}"


@pytest.mark.parametrize("path", oc.schema_files(), ids=lambda p: p.name)
def test_schema_examples_validate(path):
    schema = load(path.name)
    if path.name == oc.META_SCHEMA_NAME:
        pytest.skip("the meta-schema is exercised by the openapi.yaml tests")
    for example in schema.get("examples", []):
        oc.validate_instance(path.name, example)


def test_event_type_enum_is_the_eight():
    assert load("event-type.json")["enum"] == EVENT_TYPES
    assert load("webhook.json")["properties"]["event_type"]["$ref"] == "event-type.json"


# --------------------------------------------------------------------------- openapi.yaml
def test_openapi_document_is_valid():
    problems = oc.check_openapi_document()
    assert not problems, "openapi.yaml:\n" + "\n".join(problems)


def test_openapi_structure_check_catches_mistakes():
    """The structural meta-schema must reject a broken document (it is not vacuous)."""
    meta = oc.documents()[oc.BASE_URI + oc.META_SCHEMA_NAME]
    v = oc.make_validator(meta)
    assert v.is_valid(oc.openapi())
    broken = []
    d = copy.deepcopy(oc.openapi()); d["openapi"] = "3.0.3"; broken.append(d)
    d = copy.deepcopy(oc.openapi()); d["paths"]["/api/v1/webhooks"]["post"]["respones"] = {}; broken.append(d)
    d = copy.deepcopy(oc.openapi()); del d["paths"]["/healthz"]["get"]["responses"]["200"]["description"]; broken.append(d)
    d = copy.deepcopy(oc.openapi()); d["paths"]["/healthz"]["get"]["responses"]["2000"] = {"description": "x"}; broken.append(d)
    d = copy.deepcopy(oc.openapi()); d["components"]["parameters"]["WebhookId"]["required"] = False; broken.append(d)
    d = copy.deepcopy(oc.openapi()); d["components"]["securitySchemes"]["authHeader"].pop("name"); broken.append(d)
    d = copy.deepcopy(oc.openapi()); del d["info"]["version"]; broken.append(d)
    d = copy.deepcopy(oc.openapi()); d["paths"]["api/v1/nope"] = {}; broken.append(d)
    for i, doc in enumerate(broken):
        assert not v.is_valid(doc), f"broken document #{i} passed the structural check"


def test_openapi_document_check_catches_mistakes(monkeypatch):
    doc = copy.deepcopy(oc.openapi())
    doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "no-such-schema.json"}
    doc["paths"]["/api/v1/webhooks/{id}"]["parameters"] = []
    doc["paths"]["/readyz"]["get"]["operationId"] = "healthz"
    doc["paths"]["/metrics"]["get"]["security"] = [{"nope": []}]
    doc["components"]["schemas"]["HealthOk"]["type"] = "objekt"
    docs = dict(oc.documents())
    docs[oc.OPENAPI_URI] = doc
    monkeypatch.setattr(oc, "_DOCS", docs)
    monkeypatch.setattr(oc, "_REGISTRY", None)
    text = "\n".join(oc.check_openapi_document())
    for expect in ("no-such-schema.json", "path parameter {id} not declared", "operationId healthz",
                   "unknown scheme nope", "/components/schemas/HealthOk"):
        assert expect in text, f"{expect!r} not reported in:\n{text}"
    monkeypatch.undo()
    oc._REGISTRY = None


EXPECTED_OPERATIONS = {
    ("post", "/api/v1/webhooks"): {"200", "401", "403", "413"},
    ("get", "/api/v1/webhooks"): {"200", "401"},
    ("get", "/api/v1/webhooks/{id}"): {"200", "401", "404"},
    ("delete", "/api/v1/webhooks/{id}"): {"200", "401", "404"},
    ("get", "/api/v1/webhooks/{id}/deliveries"): {"200", "401", "404"},
    ("post", "/api/v1/webhooks/{id}/test"): {"200", "401", "404", "429"},
    ("post", "/api/v1/webhooks/{id}/rotate_secret"): {"200", "401", "404"},
    ("post", "/api/v1/events"): {"202", "401", "403", "413", "503"},
    ("get", "/healthz"): {"200"},
    ("get", "/readyz"): {"200", "503"},
    ("get", "/metrics"): {"200"},
}


@pytest.mark.parametrize("method,template", sorted(EXPECTED_OPERATIONS))
def test_openapi_documents_operation(method, template):
    op = oc.openapi()["paths"][template][method]
    assert EXPECTED_OPERATIONS[(method, template)] <= set(op["responses"])


def test_openapi_security_schemes():
    s = oc.openapi()["components"]["securitySchemes"]
    kinds = {(v["type"], v.get("in"), v.get("name"), v.get("scheme")) for v in s.values()}
    assert ("apiKey", "header", "auth", None) in kinds
    assert ("apiKey", "query", "auth", None) in kinds
    assert ("http", None, None, "bearer") in kinds
    for p in ("/healthz", "/readyz", "/metrics"):
        assert oc.openapi()["paths"][p]["get"]["security"] == []


def test_openapi_503_events_has_retry_after():
    r = oc.openapi()["paths"]["/api/v1/events"]["post"]["responses"]["503"]
    assert r["headers"]["Retry-After"]["required"] is True


def test_openapi_file_refs_point_at_schema_files():
    text = oc.OPENAPI_PATH.read_text(encoding="utf-8")
    refs = set(re.findall(r"\$ref:\s*'?([A-Za-z0-9_.-]+\.json)", text))
    assert refs >= {"webhook.json", "webhook-create.json", "webhook-list.json", "error.json",
                    "event-create.json", "event-accepted.json"}
    for r in refs:
        assert (oc.SCHEMAS_DIR / r).is_file(), r


# --------------------------------------------------------------------------- examples
WEBHOOK = {"id": 17, "url": "https://example.com/hook", "status": "active", "event_type": "project.created",
           "organization_id": 7, "created_at": "2026-11-29T01:02:03Z", "updated_at": "2026-11-29T01:02:03Z",
           "secret": SECRET}
ENVELOPE = {"id": "01936a4e-8f2b-7c3d-9e4f-0123456789ab", "type": "time.entry.created", "organization_id": 7,
            "occurred_at": "2026-11-29T01:02:03Z", "data": {"id": 9001, "hours": 7.5, "user_id": 42}}
PAGING = {"page": 2, "per_page": 20, "total": 41, "self": "/api/v1/webhooks?page=2&per_page=20",
          "previous": "/api/v1/webhooks?page=1&per_page=20", "next": "/api/v1/webhooks?page=3&per_page=20"}


def with_(base, **changes):
    d = copy.deepcopy(base)
    for k, v in changes.items():
        if v is KeyError:
            d.pop(k)
        else:
            d[k] = v
    return d


VALID = [
    ("webhook.json", WEBHOOK),
    ("webhook.json", with_(WEBHOOK, event_type="assignment.updated", secret="whsec_" + "A" * 88 + "==")),
    ("webhook-create.json", {"url": "https://example.com/h", "event_type": "user.created"}),
    ("webhook-create.json", {"url": "https://example.com/h", "event_type": "user.created", "extra": 1}),
    ("webhook-list.json", {"data": [WEBHOOK], "paging": PAGING}),
    ("webhook-list.json", {"data": [], "paging": with_(PAGING, page=1, previous=None, next=None, total=0)}),
    ("error.json", {"message": "bad data", "errors": [{"field": "data.id", "message": "required", "index": 3}]}),
    ("error.json", {"message": "not found"}),
    ("envelope.json", ENVELOPE),
    ("envelope.json", with_(ENVELOPE, id="x", type="user.updated", data={"id": 1, "email": None, "archived": False})),
    ("envelope.json", with_(ENVELOPE, type="project.created",
                            data={"id": 5, "name": "P", "parent_id": None, "starts_at": "2026-01-01",
                                  "tags": {"data": [{"id": 1, "value": "x"}], "paging": {}}})),
    ("envelope.json", with_(ENVELOPE, type="assignment.created",
                            data={"id": 5, "percent": 0.5, "fixed_hours": None, "status": None})),
    ("envelope.json", with_(ENVELOPE, id="~" * 128, occurred_at="2026-11-29T01:02:03.123+01:00")),
    ("event-create.json", {"type": "project.created", "data": {"id": 1}}),
    ("event-create.json", {"type": "project.created", "data": {"id": 1}, "organization_id": 7,
                           "id": "crm-1", "occurred_at": "2026-11-29T01:02:03Z"}),
    ("event-create.json", [{"type": "user.created", "data": {"id": i}} for i in range(500)]),
    ("event-accepted.json", {"id": "01936a4e-8f2b-7c3d-9e4f-0123456789ab"}),
    ("event-accepted.json", {"data": [{"id": "a"}, {"id": "b"}]}),
    ("delivery.json", {"data": {"id": 9001, "hours": 7.5}, "type": "time.entry.created"}),
    ("project.json", {"id": 1}),
    ("time-entry.json", {"id": 1, "hours": 8, "scheduled_hours": None, "date": "2026-11-28", "is_suggestion": True}),
    ("user.json", {"id": 1, "billrate": -1, "hire_date": None, "unknown_future_field": [1]}),
    ("assignment.json", {"id": 1, "allocation_mode": "fixed", "fixed_hours": 40}),
]

INVALID = [
    ("webhook.json", with_(WEBHOOK, event_type="project.deleted"), "wrong event type"),
    ("webhook.json", with_(WEBHOOK, secret="whsec_short"), "secret too short"),
    ("webhook.json", with_(WEBHOOK, secret="sk_" + "A" * 43 + "="), "secret without whsec_"),
    ("webhook.json", with_(WEBHOOK, secret="whsec_" + "A" * 43 + "!"), "secret not base64"),
    ("webhook.json", with_(WEBHOOK, url="http://example.com/hook"), "plain http url"),
    ("webhook.json", with_(WEBHOOK, url="https://example.com/" + "a" * 2040), "url longer than 2048"),
    ("webhook.json", with_(WEBHOOK, status="disabled"), "unknown status"),
    ("webhook.json", with_(WEBHOOK, organization_id=0), "organization 0"),
    ("webhook.json", with_(WEBHOOK, created_at="2026-11-29 01:02:03"), "not RFC 3339"),
    ("webhook.json", with_(WEBHOOK, updated_at="2026-13-29T01:02:03Z"), "month 13"),
    ("webhook.json", with_(WEBHOOK, secret=KeyError), "missing secret"),
    ("webhook.json", with_(WEBHOOK, extra=1), "extra key"),
    ("webhook.json", with_(WEBHOOK, id="17"), "string id"),
    ("webhook-create.json", {"url": "https://example.com/h"}, "missing event_type"),
    ("webhook-create.json", {"url": "https://example.com/h", "event_type": "project"}, "wrong event type"),
    ("webhook-list.json", {"data": [], "paging": with_(PAGING, per_page=101)}, "per_page 101"),
    ("webhook-list.json", {"data": [], "paging": with_(PAGING, per_page=0)}, "per_page 0"),
    ("webhook-list.json", {"data": [], "paging": with_(PAGING, page=0)}, "page 0"),
    ("webhook-list.json", {"data": [], "paging": with_(PAGING, next=KeyError)}, "missing next"),
    ("webhook-list.json", {"data": [with_(WEBHOOK, secret="x")], "paging": PAGING}, "bad webhook in data"),
    ("error.json", {"errors": []}, "missing message"),
    ("error.json", {"message": "bad data", "errors": [{"field": "url"}]}, "field error without message"),
    ("envelope.json", with_(ENVELOPE, type="time.entry.deleted"), "wrong event type"),
    ("envelope.json", with_(ENVELOPE, data={"hours": 7.5}), "missing data.id"),
    ("envelope.json", with_(ENVELOPE, data={"id": "9001"}), "string data.id"),
    # the documented per-type shapes (typed-data.json); hookd itself only requires data.id
    ("typed-data.json", with_(ENVELOPE, data={"id": 1, "hours": "eight"}), "time entry hours not a number"),
    ("typed-data.json", with_(ENVELOPE, type="user.created", data={"id": 1, "billable": "yes"}), "user billable"),
    ("typed-data.json", with_(ENVELOPE, type="project.updated", data={"id": 1, "starts_at": "soon"}), "project date"),
    ("envelope.json", with_(ENVELOPE, id=""), "empty id"),
    ("envelope.json", with_(ENVELOPE, id="a" * 129), "id too long"),
    ("envelope.json", with_(ENVELOPE, id="tab\there"), "non-printable id"),
    ("envelope.json", with_(ENVELOPE, id="caf\u00e9"), "non-ASCII id"),
    ("envelope.json", with_(ENVELOPE, organization_id=0), "organization 0"),
    ("envelope.json", with_(ENVELOPE, occurred_at="yesterday"), "bad occurred_at"),
    ("envelope.json", with_(ENVELOPE, occurred_at=KeyError), "missing occurred_at"),
    ("event-create.json", {"type": "project.created"}, "missing data"),
    ("event-create.json", {"type": "project.created", "data": {}}, "missing data.id"),
    ("event-create.json", {"type": "nope", "data": {"id": 1}}, "wrong event type"),
    ("event-create.json", [], "empty batch"),
    ("event-create.json", [{"type": "user.created", "data": {"id": i}} for i in range(501)], "501 events"),
    ("event-create.json", [{"type": "user.created", "data": {"id": 1}}, {"type": "user.created"}], "bad item"),
    ("event-create.json", {"type": "user.created", "data": {"id": 1}, "id": ""}, "empty client id"),
    ("event-accepted.json", {"id": 5}, "numeric id"),
    ("event-accepted.json", {"data": []}, "empty data"),
    ("event-accepted.json", {"id": "a", "extra": True}, "extra key"),
    ("delivery.json", {"data": {"id": 1}, "type": "user.created", "id": "x"}, "extra key in delivery body"),
    ("delivery.json", {"data": {"id": 1}}, "missing type"),
    ("delivery.json", {"data": {}, "type": "user.created"}, "missing data.id"),
    ("delivery.json", {"data": {"id": 1}, "type": "user.deleted"}, "wrong event type"),
    ("project.json", {"name": "x"}, "project without id"),
    ("time-entry.json", {"id": 1, "date": "28/11/2026"}, "time entry bad date"),
    ("user.json", {"id": 1.5}, "user fractional id"),
    ("assignment.json", {"id": 1, "percent": "50%"}, "assignment percent string"),
]


@pytest.mark.parametrize("name,instance", VALID, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VALID)])
def test_valid_examples(name, instance):
    oc.validate_instance(name, instance)


@pytest.mark.parametrize("name,instance,why", INVALID, ids=[f"{n}-{w}" for n, _, w in INVALID])
def test_invalid_examples(name, instance, why):
    assert not is_valid(name, instance), f"{name} accepted an instance with {why}"


# --------------------------------------------------------------------------- validate_response
GOOD_RESPONSES = [
    ("POST", "/api/v1/webhooks", 200, WEBHOOK),
    ("POST", "/api/v1/webhooks", 401, {"message": "unauthorized"}),
    ("POST", "/api/v1/webhooks", 403, {"message": "bad data", "errors": [{"field": "url", "message": "must be https"}]}),
    ("POST", "/api/v1/webhooks", 413, {"message": "request body too large"}),
    ("GET", "/api/v1/webhooks?page=2&per_page=20", 200, {"data": [WEBHOOK], "paging": PAGING}),
    ("GET", "/api/v1/webhooks/17", 200, WEBHOOK),
    ("GET", "/api/v1/webhooks/999", 404, {"message": "not found"}),
    ("DELETE", "/api/v1/webhooks/17", 200, WEBHOOK),
    ("delete", "/api/v1/webhooks/17", 401, json.dumps({"message": "unauthorized"}).encode()),
    ("GET", "/api/v1/webhooks/17/deliveries", 200,
     {"data": [{"attempted_at": "2026-11-29T01:02:03Z", "event_id": "e1", "status": 500, "latency_ms": 12.5,
                "error": "HTTP 500", "attempt": 1},
               {"attempted_at": "2026-11-29T01:02:04Z", "event_id": "e1", "status": None, "latency_ms": 10000,
                "error": "timeout", "attempt": 2}]}),
    ("POST", "/api/v1/webhooks/17/test", 200, {"delivered": True, "status": 204, "latency_ms": 3, "error": None}),
    ("POST", "/api/v1/webhooks/17/rotate_secret", 200, with_(WEBHOOK, secret="whsec_" + "B" * 43 + "=")),
    ("POST", "/api/v1/events", 202, {"id": "01936a4e-8f2b-7c3d-9e4f-0123456789ab"}),
    ("POST", "/api/v1/events", 202, {"data": [{"id": "a"}, {"id": "b"}]}),
    ("POST", "/api/v1/events", 503, {"message": "kafka unavailable"}),
    ("GET", "/healthz", 200, '{"status":"ok"}'),
    ("GET", "/readyz", 503, {"status": "unavailable", "checks": {"redis": "ok", "kafka": "timeout"}}),
    ("GET", "/metrics", 200, "# TYPE hookd_http_requests_total counter\nhookd_http_requests_total 3\n"),
]

BAD_RESPONSES = [
    ("POST", "/api/v1/webhooks", 201, WEBHOOK, "not documented"),
    ("POST", "/api/v1/webhooks", 200, with_(WEBHOOK, secret="nope"), "secret"),
    ("POST", "/api/v1/webhooks", 403, {"message": "invalid"}, "bad data"),
    ("GET", "/api/v1/webhooks/17", 404, {"message": "Not Found"}, "not found"),
    ("GET", "/api/v1/webhooks/17", 401, {"error": "unauthorized"}, "message"),
    ("GET", "/api/v1/webhooks", 200, {"data": [], "paging": with_(PAGING, per_page=101)}, "101"),
    ("GET", "/api/v1/webhooks/17", 500, {"message": "boom"}, "not documented"),
    ("GET", "/api/v1/nothing", 200, {}, "path not documented"),
    ("PUT", "/api/v1/webhooks/17", 200, WEBHOOK, "method not documented"),
    ("POST", "/api/v1/events", 202, {"id": ""}, "event-accepted"),
    ("POST", "/api/v1/events", 202, "not json", "not JSON"),
    ("GET", "/readyz", 503, {"status": "ok"}, "unavailable"),
    ("POST", "/api/v1/webhooks/17/test", 200, {"delivered": "yes", "status": None, "latency_ms": 1, "error": None},
     "delivered"),
]


@pytest.mark.parametrize("method,path,status,body", GOOD_RESPONSES,
                         ids=[f"{m} {p} {s}" for m, p, s, _ in GOOD_RESPONSES])
def test_validate_response_accepts(method, path, status, body):
    oc.validate_response(method, path, status, body)


@pytest.mark.parametrize("method,path,status,body,expect", BAD_RESPONSES,
                         ids=[f"{m} {p} {s} {e}" for m, p, s, _, e in BAD_RESPONSES])
def test_validate_response_rejects(method, path, status, body, expect):
    with pytest.raises(AssertionError) as ei:
        oc.validate_response(method, path, status, body)
    assert expect in str(ei.value), str(ei.value)


def test_validate_response_checks_required_headers():
    body = {"message": "kafka unavailable"}
    oc.validate_response("POST", "/api/v1/events", 503, body, headers={"retry-after": "1"})
    with pytest.raises(AssertionError, match="Retry-After"):
        oc.validate_response("POST", "/api/v1/events", 503, body, headers={"Content-Type": "application/json"})


def test_validate_response_checks_content_type():
    oc.validate_response("GET", "/metrics", 200, "x 1\n", content_type="text/plain; version=0.0.4")
    with pytest.raises(AssertionError, match="Content-Type"):
        oc.validate_response("GET", "/healthz", 200, {"status": "ok"}, content_type="text/html")


# --------------------------------------------------------------------------- README examples
README = ROOT / "README.md"
_EXAMPLE_RE = re.compile(r"<!--\s*schema:\s*([A-Za-z0-9_.-]+\.json)\s*-->\s*\n\s*```json[ \t]*\n(.*?)\n\s*```",
                         re.DOTALL)


def readme_examples():
    if not README.is_file():
        return [pytest.param(None, None, None, marks=pytest.mark.skip(reason="README.md does not exist yet"),
                             id="no-README")]
    text = README.read_text(encoding="utf-8")
    out = []
    for m in _EXAMPLE_RE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        out.append(pytest.param(m.group(1), m.group(2), line, id=f"README.md:{line}:{m.group(1)}"))
    return out


@pytest.mark.parametrize("schema_name,source,line", readme_examples())
def test_readme_json_example_matches_schema(schema_name, source, line):
    try:
        instance = json.loads(source)
    except ValueError as e:
        pytest.fail(f"README.md:{line}: example for {schema_name} is not JSON: {e}")
    oc.validate_instance(schema_name, instance)


def test_readme_example_parser():
    text = ('intro\n<!-- schema: error.json -->\n```json\n{"message": "not found"}\n```\n'
            '```json\n{"not": "annotated"}\n```\n')
    found = [(m.group(1), json.loads(m.group(2))) for m in _EXAMPLE_RE.finditer(text)]
    assert found == [("error.json", {"message": "not found"})]

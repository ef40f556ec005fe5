"""Check API responses against schemas/openapi.yaml and the JSON Schemas beside it.

    from openapi_check import validate_response, validate_instance
    validate_response("GET", "/api/v1/webhooks/17", 200, body)       # raises AssertionError
    validate_instance("envelope.json", kafka_value)                  # any schema in schemas/

`body` may be the parsed JSON, or str/bytes (parsed here for JSON responses).
Validation is JSON Schema Draft 2020-12 with format checking; the relative `$ref`s of
openapi.yaml (e.g. `webhook.json`) resolve to the files in schemas/ through their `$id`s
(https://hookd.dev/schemas/<name>), never over the network.

Uses a `referencing.Registry` when the installed jsonschema has one (>= 4.18), else a
RefResolver with a store (Debian 12 ships jsonschema 4.10).
"""
import datetime
import json
import pathlib
import re
import urllib.parse

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMAS_DIR = ROOT / "schemas"
OPENAPI_PATH = SCHEMAS_DIR / "openapi.yaml"
BASE_URI = "https://hookd.dev/schemas/"
OPENAPI_URI = BASE_URI + "openapi.yaml"
META_SCHEMA_NAME = "openapi-3.1.schema.json"

Validator = jsonschema.Draft202012Validator
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

try:  # jsonschema >= 4.18
    import referencing
    import referencing.jsonschema
    _HAVE_REGISTRY = True
except ImportError:
    _HAVE_REGISTRY = False


# --------------------------------------------------------------------------- formats
# jsonschema only checks date-time/uri when optional packages are installed; Debian 12
# lacks them, so hookd brings its own strict checks.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _is_date_time(value):
    if not isinstance(value, str):
        return True
    m = _RFC3339.match(value)
    if not m:
        return False
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        datetime.datetime(y, mo, d, h, mi, min(s, 59))  # RFC 3339 allows leap second 60
    except ValueError:
        return False
    if s > 60:
        return False
    off = m.group(8)
    if off not in ("Z", "z") and (int(off[1:3]) > 23 or int(off[4:6]) > 59):
        return False
    return True


def _is_uri(value):
    if not isinstance(value, str):
        return True
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        return False
    parts = urllib.parse.urlsplit(value)
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", parts.scheme or "")) and bool(parts.netloc or parts.path)


def _is_uri_reference(value):
    return not isinstance(value, str) or not any(c.isspace() or ord(c) < 0x20 for c in value)


FORMAT_CHECKER = jsonschema.FormatChecker()
FORMAT_CHECKER.checks("date-time")(_is_date_time)
FORMAT_CHECKER.checks("uri")(_is_uri)
FORMAT_CHECKER.checks("uri-reference")(_is_uri_reference)


# --------------------------------------------------------------------------- loading
def schema_files():
    """Every JSON Schema document in schemas/ (sorted paths)."""
    return sorted(SCHEMAS_DIR.glob("*.json"))


def _load_all():
    docs = {}
    for p in schema_files():
        with open(p, encoding="utf-8") as fh:
            doc = json.load(fh)
        uri = doc.get("$id", BASE_URI + p.name)
        docs[uri] = doc
    with open(OPENAPI_PATH, encoding="utf-8") as fh:
        docs[OPENAPI_URI] = yaml.safe_load(fh)
    return docs


_DOCS = None
_REGISTRY = None


def documents():
    """{uri: document} for every schema file and openapi.yaml (loaded once)."""
    global _DOCS
    if _DOCS is None:
        _DOCS = _load_all()
    return _DOCS


def openapi():
    return documents()[OPENAPI_URI]


def _registry():
    global _REGISTRY
    if _REGISTRY is None:
        spec = referencing.jsonschema.DRAFT202012
        _REGISTRY = referencing.Registry().with_resources(
            (uri, spec.create_resource(doc)) for uri, doc in documents().items())
    return _REGISTRY


def _no_fetch(uri):
    raise jsonschema.RefResolutionError(f"{uri} is not a file in {SCHEMAS_DIR} (no network fetch)")


_NO_FETCH = {"http": _no_fetch, "https": _no_fetch, "file": _no_fetch, "ftp": _no_fetch}


def _ref_resolver(base_uri, referrer):
    return jsonschema.RefResolver(base_uri=base_uri, referrer=referrer, store=dict(documents()),
                                  handlers=_NO_FETCH)


def make_validator(schema):
    """A Draft 2020-12 validator for `schema` whose refs resolve into schemas/."""
    if _HAVE_REGISTRY:
        return Validator(schema, registry=_registry(), format_checker=FORMAT_CHECKER)
    resolver = _ref_resolver(schema.get("$id", "") if isinstance(schema, dict) else "", schema)
    return Validator(schema, resolver=resolver, format_checker=FORMAT_CHECKER)


def _pointer(*parts):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _ref_to(pointer, base=OPENAPI_URI):
    return {"$ref": base + "#" + urllib.parse.quote(pointer, safe="/~-._")}


def _errors_text(validator, instance, limit=5):
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    lines = []
    for e in errors[:limit]:
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        lines.append(f"  at {where}: {e.message}")
        for sub in sorted(e.context or [], key=lambda s: list(s.absolute_path))[:4]:
            subwhere = "/".join(str(p) for p in sub.absolute_path) or "(root)"
            lines.append(f"      - {subwhere}: {sub.message}")
    if len(errors) > limit:
        lines.append(f"  ... and {len(errors) - limit} more")
    return "\n".join(lines)


def validate_instance(schema_name, instance):
    """Validate `instance` against schemas/<schema_name> (e.g. "envelope.json")."""
    uri = BASE_URI + schema_name
    if uri not in documents():
        raise AssertionError(f"no schema {schema_name} in {SCHEMAS_DIR}")
    text = _errors_text(make_validator({"$ref": uri}), instance)
    if text:
        raise AssertionError(f"{schema_name}: instance does not match:\n{text}\ninstance: {_short(instance)}")


def _short(body, n=600):
    s = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
    return s if len(s) <= n else s[:n] + "..."


# --------------------------------------------------------------------------- operations
def _resolve_local(obj):
    """Follow `#/...` references inside openapi.yaml; returns (object, pointer)."""
    seen = set()
    pointer = None
    while isinstance(obj, dict) and "$ref" in obj and obj["$ref"].startswith("#/"):
        ref = obj["$ref"]
        if ref in seen:
            raise AssertionError(f"openapi.yaml: reference loop at {ref}")
        seen.add(ref)
        pointer = ref[1:]
        obj = openapi()
        for part in pointer[1:].split("/"):
            part = urllib.parse.unquote(part).replace("~1", "/").replace("~0", "~")
            obj = obj[part]
    return obj, pointer


def _match_path(path):
    """The openapi path template for a concrete path (query string ignored)."""
    path = urllib.parse.urlsplit(path).path or path
    paths = openapi()["paths"]
    if path in paths:
        return path
    for template in sorted(paths, key=lambda t: t.count("{")):
        rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(rx, path):
            return template
    return None


def find_operation(method, path):
    """(template, operation) for METHOD path; raises AssertionError when not documented."""
    template = _match_path(path)
    if template is None:
        raise AssertionError(f"{method.upper()} {path}: path not documented in openapi.yaml")
    op = openapi()["paths"][template].get(method.lower())
    if op is None:
        raise AssertionError(f"{method.upper()} {path}: method not documented for {template} in openapi.yaml")
    return template, op


def validate_response(method, path, status, body, headers=None, content_type=None):
    """Assert that `body` (and, given, `headers`) is a documented response of METHOD path.

    Raises AssertionError naming the operation when the status is not documented or the
    body does not match the response schema. Returns the operationId.
    """
    template, op = find_operation(method, path)
    what = f"{method.upper()} {path} ({op.get('operationId', template)}) -> {status}"
    responses = op.get("responses", {})
    key = str(int(status))
    if key in responses:
        rkey = key
    elif key[0] + "XX" in responses:
        rkey = key[0] + "XX"
    elif "default" in responses:
        rkey = "default"
    else:
        raise AssertionError(f"{what}: status {status} is not documented (documented: "
                             f"{', '.join(sorted(responses))}); body: {_short(body) if body is not None else None}")
    resp, resp_ptr = _resolve_local(responses[rkey])
    if resp_ptr is None:
        resp_ptr = _pointer("paths", template, method.lower(), "responses", rkey)

    if headers is not None:
        lower = {k.lower(): v for k, v in dict(headers).items()}
        for hname, hdef in (resp.get("headers") or {}).items():
            hdef, _ = _resolve_local(hdef)
            if hdef.get("required") and hname.lower() not in lower:
                raise AssertionError(f"{what}: required header {hname} missing; headers: {sorted(lower)}")

    content = resp.get("content") or {}
    if not content:
        if body not in (None, b"", ""):
            raise AssertionError(f"{what}: response documents no body but got {_short(body)}")
        return op.get("operationId")

    if content_type:
        media = content_type.split(";")[0].strip().lower()
        if media not in content:
            raise AssertionError(f"{what}: Content-Type {content_type} not documented ({', '.join(content)})")
    else:
        media = "application/json" if "application/json" in content else next(iter(content))

    if media == "application/json" or media.endswith("+json"):
        if isinstance(body, (bytes, bytearray)):
            body = body.decode("utf-8")
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError as e:
                raise AssertionError(f"{what}: body is not JSON ({e}): {_short(body)}")
    elif isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8")

    if "schema" not in content[media]:
        return op.get("operationId")
    schema = _ref_to(resp_ptr + _pointer("content", media, "schema"))
    text = _errors_text(make_validator(schema), body)
    if text:
        raw = content[media]["schema"]
        name = raw.get("$ref") if isinstance(raw, dict) else None
        name = name or (resp_ptr + _pointer("content", media, "schema"))
        raise AssertionError(f"{what}: body does not match the {media} schema ({name}):\n{text}\n"
                             f"body: {_short(body)}")
    return op.get("operationId")


# --------------------------------------------------------------------------- document checks
def _walk(node, pointer=""):
    if isinstance(node, dict):
        yield pointer, node
        for k, v in node.items():
            yield from _walk(v, pointer + _pointer(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, pointer + _pointer(i))


def _schema_pointers(doc):
    """Pointers of every Schema Object in the OpenAPI document."""
    out = []
    for name in (doc.get("components", {}).get("schemas") or {}):
        out.append(_pointer("components", "schemas", name))
    for ptr, node in _walk(doc):
        if "schema" in node and isinstance(node["schema"], (dict, bool)) and not ptr.startswith("/components/schemas"):
            out.append(ptr + "/schema")
    return out


def check_openapi_document():
    """Validate openapi.yaml; returns a list of problems (empty when fine).

    Structure against schemas/openapi-3.1.schema.json, every Schema Object with
    check_schema, every `$ref` resolvable, path parameters declared and required,
    operationIds unique, security requirements naming declared schemes.
    """
    problems = []
    doc = openapi()
    meta = documents()[BASE_URI + META_SCHEMA_NAME]
    for e in make_validator(meta).iter_errors(doc):
        problems.append(f"structure at /{'/'.join(map(str, e.absolute_path))}: {e.message}")

    for ptr in _schema_pointers(doc):
        node = doc
        for part in ptr[1:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        try:
            Validator.check_schema(node)
        except jsonschema.SchemaError as e:
            problems.append(f"schema at {ptr}: {e.message}")

    for ptr, node in _walk(doc):
        ref = node.get("$ref")
        if not isinstance(ref, str):
            continue
        try:
            if _HAVE_REGISTRY:
                _registry().resolver(base_uri=OPENAPI_URI).lookup(ref)
            else:
                _ref_resolver(OPENAPI_URI, doc).resolve(ref)
        except Exception as e:  # noqa: BLE001 - any failure is a dangling ref
            problems.append(f"$ref {ref!r} at {ptr} does not resolve: {e}")

    seen_ids = {}
    schemes = set((doc.get("components", {}).get("securitySchemes") or {}))
    for req in doc.get("security", []):
        for name in req:
            if name not in schemes:
                problems.append(f"global security names unknown scheme {name}")
    for template, item in doc.get("paths", {}).items():
        names = set(re.findall(r"\{([^}]+)\}", template))
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{method.upper()} {template}"
            oid = op.get("operationId")
            if oid:
                if oid in seen_ids:
                    problems.append(f"{where}: operationId {oid} also used by {seen_ids[oid]}")
                seen_ids[oid] = where
            params = [_resolve_local(p)[0] for p in item.get("parameters", []) + op.get("parameters", [])]
            declared = {p["name"] for p in params if p.get("in") == "path"}
            for n in names - declared:
                problems.append(f"{where}: path parameter {{{n}}} not declared")
            for n in declared - names:
                problems.append(f"{where}: path parameter {n} declared but not in the template")
            for req in op.get("security", []):
                for name in req:
                    if name not in schemes:
                        problems.append(f"{where}: security names unknown scheme {name}")
            if not op.get("responses"):
                problems.append(f"{where}: no responses")
    return problems

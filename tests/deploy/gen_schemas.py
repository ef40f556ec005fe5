#!/usr/bin/env python3
"""Generates the standalone, strict JSON schemas kubeconform validates deploy/ against (kubeconform normally
downloads them from GitHub, which CI cannot reach). Run once when the Kubernetes or KEDA version changes; the
output is committed under deploy/schemas/.

  python3 tests/deploy/gen_schemas.py            (fetches both sources through the Go module proxy)

Sources, both through `go mod download` (the module proxy is reachable where GitHub is not):
  k8s.io/kubernetes@K8S_VERSION           api/openapi-spec/swagger.json   (the API server's own OpenAPI v2)
  github.com/kedacore/keda/v2@KEDA_VERSION config/crd/bases/keda.sh_scaledobjects.yaml (the CRD's openAPIV3Schema)

Conversion (as kubeconform's/instrumenta's openapi2jsonschema does): every $ref is inlined, int-or-string
becomes string|integer, Quantity string|number, optional fields may be null, and every object with declared
properties gets additionalProperties: false (strict: unknown fields are errors, e.g. a misspelt probe field).
"""
import copy
import json
import os
import subprocess
import sys

import yaml

K8S_VERSION = "v1.33.4"
KEDA_VERSION = "v2.17.2"
# (group, version, kind) of every built-in kind deploy/ renders
KINDS = [
    ("", "v1", "ConfigMap"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("", "v1", "ServiceAccount"),
    ("apps", "v1", "Deployment"),
    ("autoscaling", "v2", "HorizontalPodAutoscaler"),
    ("policy", "v1", "PodDisruptionBudget"),
]
CRDS = [("config/crd/bases/keda.sh_scaledobjects.yaml", "v1alpha1")]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "deploy", "schemas")


def module_dir(module):
    out = subprocess.run(["go", "mod", "download", "-json", module], check=True, capture_output=True,
                         text=True, env=dict(os.environ, GOFLAGS="-mod=mod")).stdout
    return json.loads(out)["Dir"]


def definition_name(group, version, kind):
    if group == "":
        return f"io.k8s.api.core.v1.{kind}"
    return f"io.k8s.api.{group}.{version}.{kind}"


def inline(schema, definitions, stack=()):
    """Returns schema with every $ref resolved (recursion is cut with an open object)."""
    if isinstance(schema, list):
        return [inline(s, definitions, stack) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        if name in stack:
            return {"type": "object"}
        return inline(definitions[name], definitions, stack + (name,))
    return {k: (inline(v, definitions, stack) if k not in ("enum", "required", "example") else v)
            for k, v in schema.items()}


def special_types(schema, definitions):
    """Kubernetes' int-or-string and Quantity accept both YAML forms."""
    definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
        "oneOf": [{"type": "string"}, {"type": "integer"}]}
    definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {
        "oneOf": [{"type": "string"}, {"type": "number"}]}
    return schema


def strict(schema, top=True):
    """additionalProperties: false where properties are declared; optional fields may be null."""
    if isinstance(schema, list):
        return [strict(s, top) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "properties":
            out[k] = {name: strict(sub, False) for name, sub in v.items()}
        elif k in ("items", "additionalProperties"):
            out[k] = strict(v, False)
        elif k in ("oneOf", "anyOf", "allOf", "not"):
            out[k] = strict(v, True)  # alternatives: null is not added to each (it would match twice)
        else:
            out[k] = v
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if not top and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def write(path, schema):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(schema, f, indent=1, sort_keys=True)
        f.write("\n")
    print(os.path.relpath(path, REPO))


def main():
    k8s = module_dir(f"k8s.io/kubernetes@{K8S_VERSION}")
    with open(os.path.join(k8s, "api", "openapi-spec", "swagger.json")) as f:
        definitions = json.load(f)["definitions"]
    special_types(None, definitions)
    kdir = os.path.join(OUT, f"kubernetes-{K8S_VERSION}")
    for group, version, kind in KINDS:
        schema = inline(copy.deepcopy(definitions[definition_name(group, version, kind)]), definitions)
        schema.pop("x-kubernetes-group-version-kind", None)
        api_version = f"{group}/{version}" if group else version
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [api_version]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema = strict(schema)
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["description"] = f"{kind} {api_version}, from Kubernetes {K8S_VERSION} swagger.json (strict)"
        suffix = f"-{group.split('.')[0]}-{version}" if group else f"-{version}"
        write(os.path.join(kdir, f"{kind.lower()}{suffix}.json"), schema)

    keda = module_dir(f"github.com/kedacore/keda/v2@{KEDA_VERSION}")
    for rel, version in CRDS:
        with open(os.path.join(keda, rel)) as f:
            crd = yaml.safe_load(f)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        (v,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
        schema.setdefault("properties", {})
        schema["properties"]["apiVersion"] = {"type": "string", "enum": [f"{group}/{version}"]}
        schema["properties"]["kind"] = {"type": "string", "enum": [kind]}
        schema = strict(schema)
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["description"] = f"{kind} {group}/{version}, from KEDA {KEDA_VERSION} {os.path.basename(rel)} (strict)"
        write(os.path.join(OUT, "crds", group, f"{kind.lower()}_{version}.json"), schema)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Semantic checks of hookd's deploy/ that a schema cannot express. Called by tests/deploy/validate.sh.

  check_manifests.py k8s FILE...        rendered manifests (kustomize build / helm template output)
  check_manifests.py compose FILE       deploy/docker-compose.yml
  check_manifests.py dockerfile FILE... deploy/docker/*.Dockerfile

k8s: both Deployments have liveness /healthz and readiness /readyz probes on the right port, requests and limits,
the hardened securityContext, enableServiceLinks false (KAFKA_* service links would reach librdkafka),
terminationGracePeriodSeconds above SHUTDOWN_GRACE, envFrom a ConfigMap and a Secret that exist; PDBs select
them; the producer-api HPA is CPU-based; the KEDA ScaledObject uses the dispatcher's group, one trigger per topic
<TOPIC_PREFIX><event type>, and maxReplicaCount <= TOPIC_PARTITIONS; every absolute *_FILE / *_LOCATION path of
a container's environment lies on one of its volume mounts (the root filesystem is read-only) or in /etc/ssl/.
"""
import re
import sys

import yaml

EVENT_TYPES = ["project.created", "project.updated", "time.entry.created", "time.entry.updated",
               "user.created", "user.updated", "assignment.created", "assignment.updated"]
errors = []


def err(msg):
    errors.append(msg)


def seconds(duration):
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", str(duration).strip())
    if not m:
        err(f"cannot read duration {duration!r}")
        return 0
    n, unit = int(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def check_k8s(paths):
    docs = []
    for p in paths:
        with open(p) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    deployments = by_kind.get("Deployment", {})
    comp = {}
    for name, d in deployments.items():
        labels = d["spec"]["selector"]["matchLabels"]
        comp[labels.get("app.kubernetes.io/component")] = d
    if set(comp) != {"producer-api", "dispatcher"}:
        err(f"expected Deployments for producer-api and dispatcher, got {sorted(comp)}")
        return
    env = {}
    for component, d in comp.items():
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        if d["spec"]["template"]["metadata"]["labels"].items() < d["spec"]["selector"]["matchLabels"].items():
            err(f"{name}: template labels do not match the selector")
        if pod.get("enableServiceLinks") is not False:
            err(f"{name}: enableServiceLinks must be false (service links become KAFKA_* librdkafka properties)")
        psc = pod.get("securityContext", {})
        if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            err(f"{name}: pod securityContext needs runAsNonRoot and seccompProfile RuntimeDefault")
        (c,) = pod["containers"]
        sc = c.get("securityContext", {})
        want = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True}
        for k, v in want.items():
            if sc.get(k) is not v:
                err(f"{name}: container securityContext.{k} must be {v}")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            err(f"{name}: capabilities must drop ALL")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(part, {})):
                err(f"{name}: resources.{part} needs cpu and memory")
        port = {"producer-api": "http", "dispatcher": "metrics"}[component]
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or get.get("port") != port:
                err(f"{name}: {probe} must be GET {path} on port {port}, got {get}")
        values = {}
        refs = c.get("envFrom", [])
        kinds = set()
        for ref in refs:
            if "configMapRef" in ref:
                cm = by_kind.get("ConfigMap", {}).get(ref["configMapRef"]["name"])
                if cm is None:
                    err(f"{name}: ConfigMap {ref['configMapRef']['name']} is not rendered")
                else:
                    values.update(cm.get("data", {}))
                    kinds.add("ConfigMap")
            if "secretRef" in ref:
                sec = by_kind.get("Secret", {}).get(ref["secretRef"]["name"])
                if sec is not None:
                    values.update(sec.get("stringData", {}))
                kinds.add("Secret")
        if kinds != {"ConfigMap", "Secret"}:
            err(f"{name}: envFrom needs a ConfigMap and a Secret")
        env[component] = values
        # a file setting (KAFKA_SSL_CA_LOCATION, REDIS_CA_FILE, ...) must point into a mounted volume (the root
        # filesystem is read-only and holds no such file), or at the image's own CA store
        declared = {v["name"] for v in pod.get("volumes", [])}
        mounts = []
        for m in c.get("volumeMounts", []):
            if m["name"] not in declared:
                err(f"{name}: volumeMount {m['name']} has no volume")
            mounts.append(m["mountPath"].rstrip("/") + "/")
        for key, value in sorted(values.items()):
            if (key.endswith("_FILE") or key.endswith("_LOCATION")) and str(value).startswith("/"):
                if not str(value).startswith("/etc/ssl/") and not any(str(value).startswith(m) for m in mounts):
                    err(f"{name}: {key}={value} is on no mounted volume")
        grace = seconds(values.get("SHUTDOWN_GRACE", "20s"))
        pre = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_sleep = int(pre[1]) if pre[:1] == ["sleep"] else 0
        if pod.get("terminationGracePeriodSeconds", 30) <= grace + pre_sleep:
            err(f"{name}: terminationGracePeriodSeconds must exceed SHUTDOWN_GRACE ({grace}s) + preStop ({pre_sleep}s)")
        pdbs = [p for p in by_kind.get("PodDisruptionBudget", {}).values()
                if p["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        if len(pdbs) != 1:
            err(f"{name}: expected one PodDisruptionBudget selecting it, got {len(pdbs)}")
    api, disp = comp["producer-api"], comp["dispatcher"]
    svcs = [s for s in by_kind.get("Service", {}).values()
            if s["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()]
    if not any(p["port"] == 8080 for s in svcs for p in s["spec"]["ports"]):
        err("no Service exposes producer-api on 8080")
    hpas = [h for h in by_kind.get("HorizontalPodAutoscaler", {}).values()
            if h["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]]
    if len(hpas) != 1 or hpas[0]["spec"]["metrics"][0]["resource"]["name"] != "cpu":
        err("producer-api needs one CPU HorizontalPodAutoscaler")
    sos = list(by_kind.get("ScaledObject", {}).values())
    if len(sos) != 1:
        err(f"expected one KEDA ScaledObject, got {len(sos)}")
        return
    so = sos[0]["spec"]
    if so["scaleTargetRef"]["name"] != disp["metadata"]["name"]:
        err("ScaledObject does not target the dispatcher Deployment")
    partitions = int(env["producer-api"].get("TOPIC_PARTITIONS", 12))
    if so["maxReplicaCount"] > partitions:
        err(f"ScaledObject maxReplicaCount {so['maxReplicaCount']} > TOPIC_PARTITIONS {partitions}")
    group = env["dispatcher"].get("KAFKA_GROUP", "hookd-dispatcher")
    prefix = env["dispatcher"].get("TOPIC_PREFIX", "webhooks.")
    if prefix != env["producer-api"].get("TOPIC_PREFIX", "webhooks."):
        err("TOPIC_PREFIX differs between producer-api and dispatcher")
    topics = []
    per_topic = env["dispatcher"].get("CONSUMER_PER_TOPIC", "1") != "0"
    for t in so["triggers"]:
        md = t["metadata"]
        # each event topic's consumers are a group of their own: KAFKA_GROUP.<type> (dispatcher/group_handover.h)
        want = f"{group}.{md.get('topic', '')[len(prefix):]}" if per_topic else group
        if t["type"] != "kafka" or md.get("consumerGroup") != want or "lagThreshold" not in md:
            err(f"ScaledObject trigger {t} must be kafka, consumerGroup {want}, with lagThreshold")
        if md.get("bootstrapServers") != env["dispatcher"].get("KAFKA_BROKERS"):
            err(f"ScaledObject bootstrapServers {md.get('bootstrapServers')} != dispatcher KAFKA_BROKERS")
        topics.append(md.get("topic"))
    if sorted(topics) != sorted(prefix + t for t in EVENT_TYPES):
        err(f"ScaledObject topics {topics} are not the {len(EVENT_TYPES)} event topics")
    print(f"k8s: {len(docs)} objects, {len(errors)} problems")


def check_compose(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    svcs = doc.get("services", {})
    need = {"kafka", "redis", "producer-api", "dispatcher", "receiver"}
    if not need <= set(svcs):
        err(f"compose: missing services {sorted(need - set(svcs))}")
        return
    if svcs["kafka"]["image"] != "apache/kafka:3.9.1" or "KAFKA_PROCESS_ROLES" not in svcs["kafka"]["environment"]:
        err("compose: kafka must be apache/kafka:3.9.1 configured for KRaft through the environment")
    if not str(svcs["redis"]["image"]).startswith("redis:7") or "--appendonly" not in svcs["redis"]["command"]:
        err("compose: redis must be redis:7 with --appendonly yes")
    if svcs["dispatcher"].get("deploy", {}).get("replicas") != 2:
        err("compose: two dispatcher replicas")
    d_env = svcs["dispatcher"]["environment"]
    if str(d_env.get("ALLOW_PRIVATE_TARGETS")) != "1" or not d_env.get("RECEIVER_CA_FILE"):
        err("compose: the demo dispatcher needs ALLOW_PRIVATE_TARGETS=1 and RECEIVER_CA_FILE")
    volumes = set(doc.get("volumes", {}))
    for name, s in svcs.items():
        if "image" not in s:
            err(f"compose: {name} has no image")
        for dep in s.get("depends_on", {}):
            if dep not in svcs:
                err(f"compose: {name} depends on unknown service {dep}")
        for v in s.get("volumes", []):
            src = v.split(":")[0]
            if not src.startswith(".") and not src.startswith("/") and src not in volumes:
                err(f"compose: {name} mounts undeclared volume {src}")
        env = s.get("environment", {})
        if isinstance(env, list):
            err(f"compose: {name}: use the mapping form of environment")
        for k, v in (env or {}).items():
            if v is None or isinstance(v, bool):
                err(f"compose: {name}: {k} must be a string (got {v!r})")
    for name in ("producer-api", "dispatcher"):
        b = svcs[name].get("build", {})
        if b.get("dockerfile") != f"deploy/docker/{name}.Dockerfile":
            err(f"compose: {name} must build deploy/docker/{name}.Dockerfile")
    print(f"compose: {len(svcs)} services, {len(errors)} problems")


RUNTIME = {"libhiredis0.14", "librdkafka1", "libjansson4", "libcurl4", "libssl3",
           "ca-certificates", "curl"}


def check_dockerfile(path):
    text = open(path).read().replace("\\\n", " ")
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l.split()[1] for l in lines if l.upper().startswith("FROM ")]
    if froms != ["debian:12", "debian:12-slim"]:
        err(f"{path}: stages must be debian:12 (build) then debian:12-slim, got {froms}")
    runtime = text[text.rindex("FROM "):]
    m = re.search(r"apt-get install -y --no-install-recommends(.*?)&&", runtime, re.S)
    pkgs = set(m.group(1).split()) if m else set()
    if pkgs != RUNTIME:
        err(f"{path}: runtime packages {sorted(pkgs)} != {sorted(RUNTIME)}")
    if re.search(r"-dev\b|build-essential", runtime):
        err(f"{path}: the runtime stage installs build packages")
    user = [l.split()[1] for l in lines if l.upper().startswith("USER ")]
    if not user or user[-1].split(":")[0] in ("root", "0") or not user[-1].split(":")[0].isdigit():
        err(f"{path}: the last USER must be a numeric non-root uid (runAsNonRoot), got {user}")
    for word in ("HEALTHCHECK", "EXPOSE", "ENTRYPOINT"):
        if not any(l.upper().startswith(word + " ") for l in lines):
            err(f"{path}: no {word}")
    hc = [l for l in lines if l.upper().startswith("HEALTHCHECK")]
    if hc and "/healthz" not in hc[0]:
        err(f"{path}: HEALTHCHECK must probe /healthz")
    print(f"{path}: {len(errors)} problems")


def main():
    mode, paths = sys.argv[1], sys.argv[2:]
    if mode == "k8s":
        check_k8s(paths)
    elif mode == "compose":
        check_compose(paths[0])
    elif mode == "dockerfile":
        for p in paths:
            check_dockerfile(p)
    for e in errors:
        print("  " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

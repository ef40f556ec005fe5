#!/usr/bin/env bash
# tests/deploy/validate.sh — validates everything under deploy/ with real tools, offline once the tools exist.
#
#   1. tools: kubeconform, kustomize, helm (tests/deploy/tools.sh) and promcheck (Prometheus' own rule and
#      PromQL parsers, tests/deploy/promcheck) built with `go install`/`go build` into .cache/bin; skipped when
#      present, so only the first run needs the Go module proxy.
#   2. kustomize build of deploy/k8s/base and deploy/k8s/overlays/example | kubeconform -strict against the
#      schemas stored in deploy/schemas/ (Kubernetes v1.33 and the KEDA ScaledObject CRD; regenerate with
#      tests/deploy/gen_schemas.py), then the semantic checks of tests/deploy/check_manifests.py.
#   3. helm lint, helm template (default values, variants, examples/kafka-tls.yaml) | kubeconform, the same
#      semantic checks, and the chart's guard rails (bad values must fail to render; the Kafka TLS example
#      without producer-api's CA mount must fail the semantic checks).
#   4. negative controls: kubeconform must reject a misspelt field, or the schemas are not doing their job.
#   5. docker-compose.yml and the Dockerfiles (tests/deploy/check_manifests.py, tests/deploy/image_check.sh).
#   6. deploy/prometheus/alerts.yaml and deploy/grafana/hookd-dashboard.json through promcheck.
# usage: bash tests/deploy/validate.sh        exit 0 when everything passes
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
T0=$SECONDS
K8S_VERSION=v1.33.4
BIN=$(bash tests/deploy/tools.sh)
export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
if [ ! -x "$BIN/promcheck" ] || [ -n "$(find tests/deploy/promcheck -newer "$BIN/promcheck" -type f)" ]; then
    echo "tools: go build promcheck" >&2
    (cd tests/deploy/promcheck && go build -trimpath -ldflags=-s -o "$BIN/promcheck" .)
fi
KUBECONFORM=$BIN/kubeconform KUSTOMIZE=$BIN/kustomize HELM=$BIN/helm
echo "::: tools ready in $((SECONDS - T0))s"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
check() { # description command...
    local t=$SECONDS
    if "${@:2}"; then echo "ok   $1 ($((SECONDS - t))s)"; else echo "FAIL $1" >&2; fail=1; fi
}
conform() { # file: strict validation against the stored schemas, no download ever
    "$KUBECONFORM" -strict -summary -exit-on-error \
        -kubernetes-version "${K8S_VERSION#v}" \
        -schema-location "deploy/schemas/kubernetes-$K8S_VERSION/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        -schema-location 'deploy/schemas/crds/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json' \
        "$1"
}
quiet() { "$@" >/dev/null; }
expect_fail() { # description command... : must fail
    if "${@:2}" >"$out/expect_fail.log" 2>&1; then
        echo "FAIL $1: expected a failure" >&2; fail=1
    else
        echo "ok   $1 (rejected: $(grep -m1 -o "at '[^']*': .*\|Error: .*\|Errors: [1-9].*" "$out/expect_fail.log" | cut -c1-120))"
    fi
}

# 2. kustomize
for k in base overlays/example; do
    f=$out/kustomize-${k//\//-}.yaml
    check "kustomize build deploy/k8s/$k" "$KUSTOMIZE" build "deploy/k8s/$k" -o "$f"
    check "kubeconform deploy/k8s/$k" conform "$f"
    check "semantics deploy/k8s/$k" python3 tests/deploy/check_manifests.py k8s "$f"
done
grep -q 'TOPIC_REPLICATION: "3"' "$out/kustomize-overlays-example.yaml" ||
    { echo "FAIL overlay does not set TOPIC_REPLICATION=3" >&2; fail=1; }

# 3. helm
CHART=deploy/helm/hookd
HT=("$HELM" template hookd "$CHART" --namespace hookd --kube-version "$K8S_VERSION")
check "helm lint --strict" "$HELM" lint --strict "$CHART" --kube-version "$K8S_VERSION"
variants=(
    "defaults|"
    "no-keda-no-hpa|--set dispatcher.keda.enabled=false --set producerApi.hpa.enabled=false"
    "existing-secret|--set secret.create=false --set secret.existingSecret=hookd-prod --set image.registry=registry.example.com"
    "production|--set producerApi.config.TOPIC_REPLICATION=3 --set dispatcher.keda.authenticationRef=hookd-kafka --set-string secret.env.KAFKA_SASL_USERNAME=hookd"
    "kafka-tls|-f deploy/helm/hookd/examples/kafka-tls.yaml"
)
for v in "${variants[@]}"; do
    name=${v%%|*}; read -r -a args <<<"${v#*|}"
    f=$out/helm-$name.yaml
    check "helm template ($name)" quiet "${HT[@]}" "${args[@]}" --output-dir "$out/render-$name"
    find "$out/render-$name" -name '*.yaml' -print0 | sort -z | xargs -0 cat >"$f"
    check "kubeconform helm ($name)" conform "$f"
    if [ "$name" != no-keda-no-hpa ]; then
        check "semantics helm ($name)" python3 tests/deploy/check_manifests.py k8s "$f"
    fi
done
expect_fail "chart refuses maxReplicaCount > TOPIC_PARTITIONS" "${HT[@]}" --set dispatcher.keda.maxReplicaCount=13
expect_fail "chart refuses grace <= SHUTDOWN_GRACE" "${HT[@]}" --set dispatcher.terminationGracePeriodSeconds=20
expect_fail "chart refuses secret.create=false without a name" "${HT[@]}" --set secret.create=false
# the example without producer-api's CA mount: its KAFKA_SSL_CA_LOCATION would point at nothing
if "${HT[@]}" -f deploy/helm/hookd/examples/kafka-tls.yaml --set producerApi.extraVolumeMounts=null >"$out/unmounted.yaml"; then
    expect_fail "semantics catch a *_LOCATION path on no volume" python3 tests/deploy/check_manifests.py k8s "$out/unmounted.yaml"
else
    echo "FAIL helm template (kafka-tls without producer-api's mount)" >&2; fail=1
fi

# 4. negative controls for the schemas
sed 's/readinessProbe:/readinesProbe:/' "$out/kustomize-base.yaml" >"$out/typo.yaml"
expect_fail "kubeconform rejects a misspelt Deployment field" conform "$out/typo.yaml"
sed 's/lagThreshold: "1000"/lagTreshold: "1000"/; s/maxReplicaCount: 12/maxReplicaCount: "twelve"/' \
    "$out/kustomize-base.yaml" >"$out/typo-keda.yaml"
expect_fail "kubeconform rejects a bad ScaledObject" conform "$out/typo-keda.yaml"
printf 'apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: x}\nspec: {}\n' >"$out/unknown.yaml"
expect_fail "kubeconform fails on a kind without a stored schema" conform "$out/unknown.yaml"

# 5. compose and images
check "docker-compose.yml" python3 tests/deploy/check_manifests.py compose deploy/docker-compose.yml
check "Dockerfiles" python3 tests/deploy/check_manifests.py dockerfile deploy/docker/producer-api.Dockerfile \
    deploy/docker/dispatcher.Dockerfile
check "image build inputs and runtime libraries" bash tests/deploy/image_check.sh

# 6. monitoring
check "alerts and dashboard (Prometheus parsers)" "$BIN/promcheck" deploy/prometheus/alerts.yaml \
    deploy/grafana/hookd-dashboard.json

echo "::: deploy validation $([ $fail = 0 ] && echo passed || echo FAILED) in $((SECONDS - T0))s"
exit $fail

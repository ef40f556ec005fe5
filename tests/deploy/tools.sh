#!/usr/bin/env bash
# tests/deploy/tools.sh — builds the deploy validation tools from the Go module proxy into <repo>/.cache/bin.
#
# kubeconform, helm and kustomize are pinned; a tool already present at the pinned version is skipped, so only
# the first run pays for the downloads and the compile (see tests/deploy/README.md for timings).
#   usage: bash tests/deploy/tools.sh        (prints the bin directory)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$REPO/.cache/bin
mkdir -p "$BIN"

KUBECONFORM_VERSION=v0.7.0
HELM_VERSION=v3.20.2
KUSTOMIZE_VERSION=v5.8.1

export GOBIN=$BIN
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
export GOTOOLCHAIN=local

build() { # name module-path version
    local name=$1 pkg=$2 version=$3 stamp=$BIN/.$1.version
    if [ -x "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
        return 0
    fi
    echo "tools: go install $pkg@$version" >&2
    local t0=$SECONDS
    go install -trimpath -ldflags=-s "$pkg@$version"
    echo "$version" >"$stamp"
    echo "tools: $name built in $((SECONDS - t0))s" >&2
}

build kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
build kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE_VERSION"
build helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
echo "$BIN"

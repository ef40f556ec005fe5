#!/usr/bin/env bash
# tests/deploy/image_check.sh — what can be checked of the Dockerfiles without a Docker engine:
#  1. the build stage's inputs are enough: the files the Dockerfile COPYs (and only those) are copied to an
#     empty directory and the stage's `make` target is built there, as `docker build` would;
#  2. the runtime stage's packages are enough: every shared library the binary needs (readelf NEEDED) comes
#     from a package the runtime stage installs (or libc6, which debian:12-slim has).
# Runs on Debian 12 (the build and runtime base of the images).   usage: bash tests/deploy/image_check.sh
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for service in producer-api dispatcher; do
    df=$REPO/deploy/docker/$service.Dockerfile
    if [ "$service" = dispatcher ] && ! ls "$REPO"/dispatcher/*.c >/dev/null 2>&1; then
        echo "image-check: $service: no sources yet, skipped"; continue
    fi
    ctx=$work/$service
    mkdir -p "$ctx"
    # COPY lines of the build stage (not --from): source ... dest
    awk '/^FROM .* AS runtime/{exit} /^COPY / && !/--from/ {print $2}' "$df" | while read -r src; do
        (cd "$REPO" && cp -r --parents "${src%/}" "$ctx/")
    done
    (cd "$ctx" && make -s -j"$(nproc)" "bin/$service" >/dev/null && "./bin/$service" --version)
    runtime=$(sed -n '/^FROM .* AS runtime/,$p' "$df" | tr -d '\\' | tr '\n' ' ' |
        sed -n 's/.*apt-get install -y --no-install-recommends \([^&]*\)&&.*/\1/p')
    missing=()
    for lib in $(readelf -d "$ctx/bin/$service" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
        # every reader below consumes its whole input: an early exit (awk's exit, head -1) may kill the writer
        # with SIGPIPE, which pipefail + set -e turned into a silent, timing-dependent failure of this script
        path=$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64/ && !found {print $NF; found = 1}')
        pkg=$({ dpkg -S "$path" 2>/dev/null || dpkg -S "$(readlink -f "$path")" 2>/dev/null || true; } |
            sed -n '1s/:.*//p')
        case " $runtime libc6 " in
            *" $pkg "*) ;;
            *) missing+=("$lib ($pkg)") ;;
        esac
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "image-check: $service needs libraries its runtime stage does not install: ${missing[*]}" >&2
        status=1
    else
        echo "image-check: $service builds from its COPY set; runtime packages cover $(readelf -d "$ctx/bin/$service" | grep -c NEEDED) NEEDED libraries"
    fi
done
exit $status

#!/bin/sh
# tests/support/deps.sh — owned by the test infrastructure (`make deps`, `.ci/run`).
#
# Installs, idempotently, every Debian 12 package that the build (`make`), the tests (`make test`:
# cmocka, pytest, real redis-server, real Kafka broker from Maven Central jars) and the local run
# (`make run`) need. When every package is already installed it returns in well under a second
# without touching the network. Needs root (or sudo) only when something is missing.
#
# Services are NOT started by the install: the tests launch their own redis-server/kafka/nginx on
# free loopback ports, so a temporary /usr/sbin/policy-rc.d (exit 101) is put in place while apt
# runs, unless one already exists.
set -eu

PKGS="build-essential pkg-config
libhiredis-dev librdkafka-dev libjansson-dev libcurl4-openssl-dev libssl-dev
libcmocka-dev
redis-server
python3 python3-pytest python3-requests python3-jsonschema python3-yaml python3-cryptography
openssl curl valgrind clang libclang-rt-14-dev nginx wrk maven kcat"

# libclang-rt-14-dev: the compiler-rt archives clang needs for -fsanitize=fuzzer,address (not a
# dependency of clang-14 in Debian 12).
# kcat (formerly kafkacat) is in Debian 12; used by tests/support/services.py when present.
OPTIONAL_PKGS=""

# A JRE for the Kafka broker, only if there is no java at all.
if ! command -v java >/dev/null 2>&1; then
    PKGS="$PKGS openjdk-17-jre-headless"
fi

installed() {
    # prints nothing, returns 0 when package $1 is fully installed
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

missing=""
for p in $PKGS; do
    installed "$p" || missing="$missing $p"
done
missing_opt=""
for p in $OPTIONAL_PKGS; do
    installed "$p" || missing_opt="$missing_opt $p"
done

if [ -z "$missing" ] && [ -z "$missing_opt" ]; then
    echo "deps: all packages already installed"
    exit 0
fi

echo "deps: installing:$missing$missing_opt"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "deps: not root and no sudo; install manually:$missing$missing_opt" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive

POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from hookd tests/support/deps.sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    added_policy=1
fi
cleanup() { if [ "$added_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT INT TERM

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing $missing_opt </dev/null ||
{
    # Retry without the optional packages so a missing kcat never blocks the build.
    if [ -n "$missing_opt" ] && [ -n "$missing" ]; then
        echo "deps: retrying without optional packages:$missing_opt" >&2
        # shellcheck disable=SC2086
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing </dev/null
    elif [ -n "$missing" ]; then
        exit 1
    else
        echo "deps: optional packages unavailable:$missing_opt (continuing)" >&2
    fi
}
echo "deps: done"

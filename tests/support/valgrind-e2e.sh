#!/usr/bin/env bash
# Runs the given pytest node ids / args with bin/producer-api and bin/dispatcher under valgrind memcheck
# (HOOKD_VALGRIND=1: tests/support/memcheck.py prefixes the launchers' commands), then checks every valgrind log:
# fails on a test failure, any valgrind error, or a definite leak.
#   tests/support/valgrind-e2e.sh tests/e2e/test_delivery.py::test_fan_out_headers_body_signature ...
# (arguments must start with tests/api or tests/e2e)
# Logs: build/valgrind/e2e/vg.<name>.<pid>.log (kept). The binaries must be the plain build (HOOKD_BIN, default bin).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v valgrind >/dev/null || { echo "valgrind-e2e.sh: valgrind not installed (apt-get install -y valgrind)" >&2; exit 2; }
bin=${HOOKD_BIN:-bin}
for b in producer-api dispatcher; do
    if nm -an "$bin/$b" 2>/dev/null | grep __asan_init >/dev/null; then  # not -q: an early exit may SIGPIPE nm (pipefail)
        echo "valgrind-e2e.sh: $bin/$b is an ASan build; valgrind needs the plain build" >&2; exit 2
    fi
done
logs=$root/build/valgrind/e2e
rm -rf "$logs" && mkdir -p "$logs"
start=$(date +%s)
# one pytest per test directory: tests/api and tests/e2e each have a conftest.py that their modules import by name
rc=0
for dir in tests/api tests/e2e; do
    args=()
    for a in "$@"; do case "$a" in "$dir"*) args+=("$a") ;; esac; done
    [ ${#args[@]} -gt 0 ] || continue
    HOOKD_VALGRIND=1 HOOKD_VALGRIND_DIR=$logs HOOKD_BIN=$bin ASAN_OPTIONS= UBSAN_OPTIONS= \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider "${args[@]}" || rc=$?
done
bad=0 n=0
for f in "$logs"/vg.*.log; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    # clean: "ERROR SUMMARY: 0 errors" and no definite leak; no ERROR SUMMARY: killed (SIGKILL), only errors count
    if grep -qE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' "$f" \
       || { ! grep -q 'ERROR SUMMARY' "$f" && grep -qE '^==[0-9]+== (Invalid (read|write|free)|Mismatched free|Conditional jump|Use of uninitialised|Syscall param|Source and destination overlap)' "$f"; }; then
        bad=1
        echo "== valgrind: $f"
        sed 's/^/    /' "$f" | grep -vE '^    ==[0-9]+== (Memcheck|Copyright|Using Valgrind|Command|Parent PID|$)' | head -120
    fi
done
echo "valgrind-e2e.sh: pytest exit $rc, $n valgrind logs checked, $(( $(date +%s) - start )) s"
[ "$n" -gt 0 ] || { echo "valgrind-e2e.sh: no valgrind logs: were the processes started under valgrind?" >&2; exit 2; }
[ "$bad" -eq 0 ] || { echo "valgrind-e2e.sh: valgrind errors or definite leaks (logs in $logs)" >&2; exit 1; }
exit $rc

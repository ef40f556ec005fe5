#!/usr/bin/env bash
# Runs every unit test binary under valgrind memcheck; fails on any memory error or definite/indirect leak.
#   tests/support/valgrind-unit.sh [build/tests/test_x ...]     (default: build/tests/test_*)
# `make test-valgrind-unit` builds the plain (gcc, non-sanitized) unit tests first: ASan binaries cannot run
# under valgrind. "possibly lost" and "still reachable" (library singletons: OpenSSL, libcurl) do not fail.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
command -v valgrind >/dev/null || { echo "valgrind-unit.sh: valgrind not installed (apt-get install -y valgrind)" >&2; exit 2; }
if [ $# -gt 0 ]; then bins=("$@"); else bins=(build/tests/test_*); fi
mkdir -p build/valgrind
failed=0 ran=0
for t in "${bins[@]}"; do
    case "$t" in *.d|*.o) continue ;; esac
    [ -x "$t" ] || continue
    if nm -an "$t" 2>/dev/null | grep __asan_init >/dev/null; then  # not -q: an early exit may SIGPIPE nm (pipefail)
        echo "valgrind-unit.sh: $t is an ASan build; valgrind needs the plain build" >&2
        exit 2
    fi
    log=build/valgrind/$(basename "$t").log
    valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --track-origins=yes --error-exitcode=99 --log-file="$log" "$t" >"$log.out" 2>&1
    rc=$?
    ran=$((ran + 1))
    if [ "$rc" -eq 0 ]; then
        printf '%-40s ok\n' "$t"
    else
        failed=1
        if [ "$rc" -eq 99 ]; then printf '%-40s VALGRIND ERRORS\n' "$t"; else printf '%-40s FAILED (exit %d)\n' "$t" "$rc"; fi
        sed 's/^/    /' "$log" | head -40
        tail -5 "$log.out" | sed 's/^/    /'
    fi
done
[ "$ran" -gt 0 ] || { echo "valgrind-unit.sh: no unit test binaries (run make test-unit first)" >&2; exit 2; }
exit $failed

#!/usr/bin/env bash
# Replays every kept fuzz input (tests/fuzz/corpus/<name>/ and tests/fuzz/regressions/<name>/) through its
# harness built WITHOUT libFuzzer (replay_main.c + ASan + UBSan, into build-fuzz/replay/). Needs no fuzzing
# time: this is what `make test-fuzz-replay` (part of the normal tests) runs. Exits 1 on any failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
tests/fuzz/build.sh replay >/dev/null || { echo "replay.sh: build failed" >&2; exit 2; }
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for s in tests/fuzz/fuzz_*.c; do
    h=$(basename "$s" .c)
    name=${h#fuzz_}
    if out=$("build-fuzz/replay/$h" tests/fuzz/corpus/"$name" tests/fuzz/regressions/"$name" 2>&1); then
        printf '%-22s ok   %s\n' "$h" "$(tail -1 <<<"$out")"
    else
        printf '%-22s FAIL\n' "$h"
        echo "$out" | tail -25 | sed 's/^/    /'
        failed=1
    fi
done
exit $failed

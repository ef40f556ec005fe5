#!/usr/bin/env bash
# Builds every libFuzzer harness (tests/fuzz/fuzz_*.c) into build-fuzz/ and runs each for SECONDS.
#   tests/fuzz/run.sh [SECONDS] [fuzz_name ...]      (default 60 s each, every harness)
#   FUZZ_SECONDS=10 make fuzz                          quick run
# FUZZ_JOBS harnesses run at a time (default: the machine's cores), each on one core: the same fuzzing per harness
# in a fraction of the wall time (CI's fuzz stage, 16 harnesses x 10 s, took 186 s one at a time on 2 cores).
# Seeds: tests/fuzz/corpus/<name>/ and tests/fuzz/regressions/<name>/ (read-only here); new inputs go to the
# working corpus build-fuzz/corpus/<name>/, crash inputs to build-fuzz/crashes/<name>/ — copy a crash into
# regressions/<name>/ once it is fixed. Prints one summary line per harness; exits 1 when any harness crashed.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
seconds=${1:-${FUZZ_SECONDS:-60}}
shift || true

tests/fuzz/build.sh fuzz >/dev/null || { echo "run.sh: build failed" >&2; exit 2; }
if [ $# -gt 0 ]; then harnesses=("$@"); else
    harnesses=(); for s in tests/fuzz/fuzz_*.c; do harnesses+=("$(basename "$s" .c)"); done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
results=build-fuzz/results
rm -rf "$results" && mkdir -p "$results"

# fuzz_one HARNESS: runs it; writes its summary line to $results/HARNESS and, when it crashed, what to look at to
# $results/HARNESS.crash
fuzz_one() {
    local h=$1 name work crashes log before rc execs ncrash corpus
    name=${h#fuzz_}
    work=build-fuzz/corpus/$name crashes=build-fuzz/crashes/$name log=build-fuzz/logs/$name.log
    mkdir -p "$work" "$crashes" build-fuzz/logs tests/fuzz/corpus/$name tests/fuzz/regressions/$name
    before=$(find "$crashes" -type f | wc -l)
    "build-fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$crashes/" "$work" tests/fuzz/corpus/"$name" \
        tests/fuzz/regressions/"$name" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    ncrash=$(( $(find "$crashes" -type f | wc -l) - before ))
    [ "$rc" -ne 0 ] && [ "$ncrash" -eq 0 ] && ncrash=1 # e.g. a sanitizer abort before the artifact was written
    corpus=$(find "$work" tests/fuzz/corpus/"$name" -type f | wc -l)
    printf '%-22s execs=%-10s crashes=%-3s corpus=%s\n' "$h" "${execs:-?}" "$ncrash" "$corpus" >"$results/$h"
    if [ "$ncrash" -ne 0 ]; then
        { echo "  -> see $log; inputs in $crashes/"
          grep -m3 -E 'invariant failed|ERROR: AddressSanitizer|runtime error|ERROR: libFuzzer' "$log" | sed 's/^/     /'
        } >"$results/$h.crash"
    fi
}

running=0
for h in "${harnesses[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    fuzz_one "$h" &
    running=$((running + 1))
done
wait
failed=0
for h in "${harnesses[@]}"; do
    cat "$results/$h" 2>/dev/null || echo "$h  no result"
    if [ -f "$results/$h.crash" ] || [ ! -f "$results/$h" ]; then
        failed=1
        cat "$results/$h.crash" 2>/dev/null >&2
    fi
done
exit $failed

#!/usr/bin/env bash
# Builds every libFuzzer harness (tests/fuzz/fuzz_*.c) into build-fuzz/ and runs each for SECONDS.
#   tests/fuzz/run.sh [SECONDS] [fuzz_name ...]      (default 60 s each, every harness)
#   FUZZ_SECONDS=10 make fuzz                          quick run
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
failed=0
for h in "${harnesses[@]}"; do
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
    printf '%-22s execs=%-10s crashes=%-3s corpus=%s\n' "$h" "${execs:-?}" "$ncrash" "$corpus"
    if [ "$ncrash" -ne 0 ]; then
        failed=1
        echo "  -> see $log; inputs in $crashes/" >&2
        grep -m3 -E 'invariant failed|ERROR: AddressSanitizer|runtime error|ERROR: libFuzzer' "$log" | sed 's/^/     /' >&2
    fi
done
exit $failed

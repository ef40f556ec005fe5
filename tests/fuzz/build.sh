#!/usr/bin/env bash
# Builds the fuzz harnesses of tests/fuzz/ (fuzz_*.c) with clang.
#   tests/fuzz/build.sh fuzz   -> build-fuzz/fuzz_<name>          libFuzzer + ASan + UBSan
#   tests/fuzz/build.sh replay -> build-fuzz/replay/fuzz_<name>   replay_main.c + ASan + UBSan (no libFuzzer)
# The needed common/*.c (and, for the API harnesses, producer-api/{router,webhooks_api,auth}.c) are compiled
# here with the same sanitizers: never the gcc-built build/libhookd_common.a.
# Prints the built binaries, one per line, on stdout.
set -euo pipefail
mode=${1:-fuzz}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "build.sh: $CC not found (apt-get install -y clang libclang-rt-14-dev)" >&2; exit 2; }
PKGS="jansson libcurl libcrypto hiredis rdkafka"
base="-g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-missing-field-initializers"
base="$base -DHOOKD_VERSION=\"fuzz\" -Icommon -Iproducer-api -Itests/fuzz $(pkg-config --cflags $PKGS) -fno-sanitize-recover=undefined"
libs="$(pkg-config --libs $PKGS) -lpthread -lm"
case "$mode" in
fuzz)   out=build-fuzz;        objflags="-fsanitize=fuzzer-no-link,address,undefined"; linkflags="-fsanitize=fuzzer,address,undefined" ;;
replay) out=build-fuzz/replay; objflags="-fsanitize=address,undefined";                linkflags="-fsanitize=address,undefined" ;;
*) echo "usage: $0 fuzz|replay" >&2; exit 2 ;;
esac
mkdir -p "$out/obj"

# Every common/*.c goes into one sanitized static archive, so harnesses pull exactly the modules they use
# (new modules and new dependencies between modules need no change here). A module that does not compile is
# skipped with a warning: it only matters if a harness needs it (then the link fails and says so).
# The API harnesses link the real producer-api/{router,webhooks_api,auth,events_api}.c plus tests/fuzz/api_stubs.c,
# which replaces the store and HTTP layer; api_stubs.o comes first, so webhook_store.o is never pulled in.
API="router webhooks_api auth events_api"
cflags_lib="${base/-Werror/}"
compile() { # src obj [flags]
    "$CC" ${3:-$base} $objflags -c "$1" -o "$2"
}
pids=()
rm -f "$out"/obj/common_*.o "$out/libfuzzcommon.a"
for src in common/*.c; do
    m=$(basename "$src" .c)
    ( compile "$src" "$out/obj/common_$m.o" "$cflags_lib" 2>"$out/obj/common_$m.log" ||
      { echo "build.sh: warning: common/$m.c does not compile; skipped (see $out/obj/common_$m.log)" >&2;
        rm -f "$out/obj/common_$m.o"; } ) & pids+=($!)
done
api_objs=()
for m in $API; do compile "producer-api/$m.c" "$out/obj/api_$m.o" & pids+=($!); api_objs+=("$out/obj/api_$m.o"); done
compile tests/fuzz/api_stubs.c "$out/obj/api_stubs.o" & pids+=($!)
api_objs=("$out/obj/api_stubs.o" "${api_objs[@]}")
if [ "$mode" = replay ]; then compile tests/fuzz/replay_main.c "$out/obj/replay_main.o" & pids+=($!); fi
for p in "${pids[@]}"; do wait "$p"; done
ar rcs "$out/libfuzzcommon.a" "$out"/obj/common_*.o
objs=("$out/libfuzzcommon.a")

pids=()
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    extra=()
    case "$name" in fuzz_webhook_body|fuzz_router) extra=("${api_objs[@]}") ;; esac
    [ "$mode" = replay ] && extra+=("$out/obj/replay_main.o")
    "$CC" $base $linkflags "$src" "${extra[@]}" "${objs[@]}" $libs -o "$out/$name" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
for src in tests/fuzz/fuzz_*.c; do echo "$out/$(basename "$src" .c)"; done

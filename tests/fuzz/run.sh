#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_<name>.c with seeds in
# corpus_<name>/) with clang and runs each one for a while on a temporary
# copy of its seed corpus; fails when a fuzzer finds a crash. fuzz_conn
# drives a whole connection through libevent (docs/fuzzing.md tells what
# it checks and how to run any target longer).
#
# Usage: tests/fuzz/run.sh [SECONDS]    (SECONDS per target, default 20)
# BUILD_DIR   build directory (default: build-fuzz at the top of the repo)
set -euo pipefail

secs=${1:-20}
case $secs in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS]" >&2
    exit 2
    ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build-fuzz}
# Every fuzz_<name>.c here that has seeds in corpus_<name>/.
targets=()
for f in "$here"/fuzz_*.c; do
    t=$(basename "$f" .c)
    t=${t#fuzz_}
    if [ -d "$here/corpus_$t" ]; then
        targets+=("$t")
    fi
done
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets with a corpus in $here" >&2
    exit 2
fi

cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DMCFAULT_FUZZ=ON \
    -DMCFAULT_TESTS=OFF >/dev/null
# Only the fuzz targets: they need none of the daemon's sources.
cmake --build "$build" --target "${targets[@]/#/fuzz_}" -j "$(nproc)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-fuzz.XXXXXX")
# UBSan only reports by default; make its findings crashes.
ubsan=halt_on_error=1:abort_on_error=1:print_stacktrace=1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-$ubsan}

passed=0
failed=0
for t in "${targets[@]}"; do
    # libFuzzer adds what it finds to the first corpus directory: a copy,
    # so the seeds in the repository stay as they are.
    cp -r "$here/corpus_$t" "$work/corpus_$t"
    echo "== fuzz_$t: ${secs}s"
    if timeout $((secs + 300)) "$build/fuzz_$t" -max_total_time="$secs" \
        -max_len=4096 -timeout=60 -artifact_prefix="$work/fuzz_$t-" \
        -print_final_stats=1 "$work/corpus_$t" >"$work/fuzz_$t.log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units)' \
            "$work/fuzz_$t.log" || true
        passed=$((passed + 1))
    else
        echo "fuzz_$t FAILED:"
        grep -E '^fuzz_|ERROR|SUMMARY|Test unit written' \
            "$work/fuzz_$t.log" | head -n 20 || true
        failed=$((failed + 1))
    fi
done

if [ "$failed" -ne 0 ]; then
    echo "logs and crash inputs kept in $work"
else
    rm -rf "$work"
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

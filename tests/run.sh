#!/usr/bin/env bash
# The whole test suite: builds with ASan+UBSan and -Werror, runs the cmocka
# unit tests, the integration tests against a real memcached, a short
# libFuzzer run of each target, and the client libraries' own tests.
# Usage: tests/run.sh [fuzz-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
FUZZ_SECONDS=${1:-15}

# The product code follows .clang-format exactly.
if ! clang-format --dry-run --Werror src/*.c src/*.h include/mcfault/*.h; then
    echo "clang-format: run 'clang-format -i src/*.[ch] include/mcfault/*.h'" >&2
    exit 1
fi

cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DMCFAULT_SANITIZE=ON \
    -DMCFAULT_WERROR=ON -DPython3_EXECUTABLE=/usr/bin/python3
cmake --build build-test -j"$(nproc)"
# A Release build too: memory per connection is measured on it (ASan
# inflates RSS); test_edges.py's idle-connection test runs it.
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DMCFAULT_WERROR=ON \
    -DMCFAULT_TESTS=OFF
cmake --build build-release -j"$(nproc)" --target mcfault
export MCFAULT_BIN_RELEASE=$PWD/build-release/mcfault
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
(cd build-test && ctest --output-on-failure)

# The dashboard in a real browser: Chromium headless, puppeteer-core
# (pinned) installed from npm into a temporary directory.
MCFAULT_BIN=$PWD/build-test/mcfault tests/browser/run.sh

tests/fuzz/run.sh "$FUZZ_SECONDS"

# The client libraries, each with its own runner, against the same build
# (clients/*/README.md).
for lang in python go node java; do
    echo "== clients/$lang"
    MCFAULT_BIN=$PWD/build-test/mcfault "clients/$lang/test.sh"
done

# The container image's build steps (the Dockerfile runs the same script),
# then a smoke test of the installed binary; the image itself is built and
# run with podman below.
scripts/container-build.sh build-container/root
scripts/container-smoke.sh build-container/root

# The Dockerfile itself, built and run with podman (a debootstrap base, the
# compose example with stand-in images); skipped loudly where podman cannot
# run.
tests/container/run.sh

# The Kubernetes base (deploy/kubernetes): built with Debian's kubectl,
# schema- and reference-checked, the sidecar's arguments rehearsed with
# the image's binary (docs/kubernetes.md, "What CI checks").
MCFAULT_BIN=$PWD/build-container/root/usr/local/bin/mcfault tests/k8s/validate.sh
echo "all tests passed"

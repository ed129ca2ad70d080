#!/bin/sh
# Runs the Go client's checks: gofmt, go vet, the unit tests, then the
# integration tests against a real memcached and the mcfault at $MCFAULT_BIN
# (default ../../build/mcfault). Exit code = result. Downloads nothing: the
# one test dependency, gomemcache, comes from Debian's
# golang-github-bradfitz-gomemcache-dev; the Go toolchain from golang-go.
set -eu

say() { printf 'clients/go: %s\n' "$*"; }
fail() { printf 'clients/go: FAIL: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
# MCFAULT_BIN relative to where we were started; the default relative to here.
if [ -z "${MCFAULT_BIN:-}" ]; then
    cd "$here"
    MCFAULT_BIN=../../build/mcfault
fi
case $MCFAULT_BIN in
/*) ;;
*) MCFAULT_BIN=$(cd "$(dirname "$MCFAULT_BIN")" 2>/dev/null && pwd)/$(basename "$MCFAULT_BIN") ||
    fail "no directory for MCFAULT_BIN" ;;
esac
export MCFAULT_BIN
cd "$here"
GOMEMCACHE_SRC=${GOMEMCACHE_SRC:-/usr/share/gocode/src/github.com/bradfitz/gomemcache}

command -v go >/dev/null || fail "go not found (apt-get install golang-go)"
[ -x "$MCFAULT_BIN" ] || fail "no mcfault binary at $MCFAULT_BIN (set MCFAULT_BIN)"
[ -f "$GOMEMCACHE_SRC/memcache/memcache.go" ] ||
    fail "gomemcache not at $GOMEMCACHE_SRC (apt-get install golang-github-bradfitz-gomemcache-dev)"
[ -x "${MEMCACHED_BIN:-/usr/bin/memcached}" ] || fail "no memcached (apt-get install memcached)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-go-test.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM

# Everything the go command writes goes under $tmp; nothing is fetched:
# GOPROXY=off fails any download, GOSUMDB=off skips checksum look-ups,
# GOTOOLCHAIN=local keeps newer go commands from fetching a toolchain.
# MCFAULT_GOCACHE names a build cache to keep between runs (faster).
export GOCACHE="${MCFAULT_GOCACHE:-$tmp/cache}" GOPATH="$tmp/gopath" GOMODCACHE="$tmp/gopath/pkg/mod"
export GOPROXY=off GOSUMDB=off GONOSUMDB='*' GOPRIVATE='*' GOFLAGS=-mod=mod
export GO111MODULE=on GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
say "$(go version); mcfault $MCFAULT_BIN"

say "gofmt -l ."
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || fail "not gofmt'ed: $unformatted"

say "go vet ./...  (the library: standard library only)"
go vet ./...
say "go test ./...  (unit tests against a stand-in server)"
go test -count=1 ./...

# The integration tests import gomemcache. The module needs none, so they
# run with a go.mod of their own (-modfile) that requires gomemcache and
# replaces it with Debian's source, copied here with the go.mod it lacks.
say "integration go.mod: gomemcache from $GOMEMCACHE_SRC"
mkdir -p "$tmp/gomemcache" "$tmp/mod"
cp -R "$GOMEMCACHE_SRC/." "$tmp/gomemcache/"
chmod -R u+w "$tmp/gomemcache"
printf 'module github.com/bradfitz/gomemcache\n\ngo 1.12\n' >"$tmp/gomemcache/go.mod"
cp go.mod "$tmp/mod/go.mod"
cat >>"$tmp/mod/go.mod" <<EOF

require github.com/bradfitz/gomemcache v0.0.0

replace github.com/bradfitz/gomemcache => $tmp/gomemcache
EOF
modflags="-modfile=$tmp/mod/go.mod -tags=integration"

# README.md's first example, as it is there, must compile: a module of its
# own beside this one.
say "README.md's first example compiles"
mkdir -p "$tmp/readme"
awk '/^```go$/ { n++; if (n == 1) { on = 1; next } } /^```$/ { if (on) exit } on' README.md >"$tmp/readme/readme_test.go"
cat >"$tmp/readme/go.mod" <<EOF
module example.com/readme

go 1.19

require (
	github.com/bradfitz/gomemcache v0.0.0
	github.com/mcfault/mcfault/clients/go v0.0.0
)

replace github.com/bradfitz/gomemcache => $tmp/gomemcache

replace github.com/mcfault/mcfault/clients/go => $here
EOF
(cd "$tmp/readme" && go vet ./...)

say "go vet -tags=integration ./..."
# shellcheck disable=SC2086
go vet $modflags ./...
say "go test -tags=integration ./...  (real memcached + mcfault, gomemcache through the proxy)"
# shellcheck disable=SC2086
go test $modflags -count=1 -timeout=10m -v ./... >"$tmp/integration.log" 2>&1 && rc=0 || rc=$?
grep -E '^(=== RUN|    --- |--- |\s+[a-z_]+_test\.go:[0-9]+:|PASS|FAIL|ok|panic|integration suite)' "$tmp/integration.log" |
    grep -v '^=== RUN' || true
if [ "$rc" -ne 0 ]; then
    say "integration tests failed; full log:"
    cat "$tmp/integration.log"
    exit "$rc"
fi
skips=$(grep -c -- '--- SKIP' "$tmp/integration.log" || true)
say "all passed ($skips skipped: tests of endpoints this mcfault lacks)"

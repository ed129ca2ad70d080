#!/usr/bin/env bash
# The Node client's tests: a real memcached and a real mcfault per test
# file, driven through the client, faults proven over raw memcached sockets.
# Usage: clients/node/test.sh   (MCFAULT_BIN: the mcfault binary, default
# build/mcfault of this tree; MEMCACHED_BIN: default /usr/bin/memcached).
# Needs Debian's nodejs (18 or later) and memcached; downloads nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# A relative MCFAULT_BIN is taken from the caller's directory.
bin=${MCFAULT_BIN:-$here/../../build/mcfault}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
export MCFAULT_BIN=$bin
export MEMCACHED_BIN=${MEMCACHED_BIN:-/usr/bin/memcached}

if ! command -v node >/dev/null; then
    echo "clients/node: node not found (apt-get install nodejs)" >&2
    exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "clients/node: node $(node --version) is too old (18+)" >&2
    exit 1
fi
for f in "$MCFAULT_BIN" "$MEMCACHED_BIN"; do
    if [ ! -x "$f" ]; then
        echo "clients/node: $f is missing or not executable" >&2
        exit 1
    fi
done

cd "$here"
echo "clients/node: node $(node --version), mcfault $MCFAULT_BIN," \
    "memcached $MEMCACHED_BIN"
# The files by name: node 22+ reads --test arguments as globs, not
# directories.
echo "clients/node: node --test test/*.test.js"
exec node --test test/*.test.js

#!/usr/bin/env bash
# Runs the Python client's tests: a real memcached and a real mcfault
# (MCFAULT_BIN, default build/mcfault of this repository) on free loopback
# ports, pymemcache as the memcached client. Exit status: pytest's.
# Needs Debian's python3, python3-pytest, python3-pymemcache,
# python3-setuptools, python3-wheel, mypy and memcached; downloads nothing.
# Usage: clients/python/test.sh [pytest arguments]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

# Debian's interpreter, where python3-pytest and python3-pymemcache install
# (a python3 earlier on PATH, such as a pyenv one, would not see them).
PYTHON=${PYTHON:-/usr/bin/python3}
export MCFAULT_BIN=${MCFAULT_BIN:-$root/build/mcfault}
case $MCFAULT_BIN in /*) ;; *) MCFAULT_BIN=$root/$MCFAULT_BIN ;; esac

missing=()
"$PYTHON" -c 'import pytest' 2>/dev/null || missing+=(python3-pytest)
"$PYTHON" -c 'import pymemcache' 2>/dev/null || missing+=(python3-pymemcache)
"$PYTHON" -c 'import setuptools' 2>/dev/null || missing+=(python3-setuptools)
"$PYTHON" -c 'import wheel' 2>/dev/null || missing+=(python3-wheel)
"$PYTHON" -c 'import mypy' 2>/dev/null || missing+=(mypy)
[ -x "${MEMCACHED_BIN:-/usr/bin/memcached}" ] || missing+=(memcached)
if ((${#missing[@]})); then
    echo "clients/python/test.sh: missing Debian packages: ${missing[*]}" >&2
    echo "  apt-get install -y ${missing[*]}" >&2
    exit 2
fi
if [ ! -x "$MCFAULT_BIN" ]; then
    echo "clients/python/test.sh: no mcfault binary at $MCFAULT_BIN" \
        "(build it, or set MCFAULT_BIN)" >&2
    exit 2
fi

echo "clients/python: $("$PYTHON" --version), pytest $("$PYTHON" -c 'import pytest; print(pytest.__version__)'), mcfault $MCFAULT_BIN"
set -x
PYTHONPATH=$here PYTHONDONTWRITEBYTECODE=1 \
    "$PYTHON" -m pytest clients/python/tests "$@"

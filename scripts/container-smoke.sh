#!/usr/bin/env bash
# Smoke test of an installed mcfault (scripts/container-build.sh DESTDIR),
# run the way the container runs it: a real memcached on a free loopback
# port, the installed binary in front of it configured through the
# environment (MCFAULT_LISTEN/UPSTREAM/CONFIG; -l/-u/-c when the binary does
# not know them), a set/get and one fault through it, --version, --health
# (when the binary has it) and a clean stop on SIGTERM. Exits non-zero on
# any failure; stops what it started. Works as root and as any user.
#
# Usage: scripts/container-smoke.sh DESTDIR
set -euo pipefail

if [ $# -ne 1 ] || [ "${1#-}" != "$1" ]; then
    echo "usage: $0 DESTDIR   (as installed by scripts/container-build.sh)" >&2
    exit 2
fi
bin=$(realpath -m "$1")/usr/local/bin/mcfault
cd "$(dirname "$0")/.."
if [ ! -x "$bin" ]; then
    echo "container-smoke: no $bin (run scripts/container-build.sh first)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-smoke.XXXXXX")
mc_pid=""
mcf_pid=""
cleanup() {
    local pid
    for pid in $mcf_pid $mc_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "container-smoke: FAIL: $*" >&2
    if [ -s "$work/mcfault.log" ]; then
        echo "--- mcfault log (last 20 lines):" >&2
        tail -n 20 "$work/mcfault.log" >&2
    fi
    exit 1
}

# A port nobody listens on now (the kernel's pick; reused right away).
free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for 127.0.0.1:$1 to accept, while process $2 lives.
wait_port() {
    python3 - "$1" "$2" <<'EOF'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("process %d exited" % pid)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("nothing accepts on 127.0.0.1:%d after 10 s" % port)
EOF
}

# Sends $2 (Python escapes allowed) to 127.0.0.1:$1 and checks that the
# reply is exactly $3 (read until that many bytes came, or 5 s).
exchange() {
    python3 scripts/exchange.py "$@"
}

want_version="mcfault $(sed -n 's/^project(mcfault VERSION \([0-9.]*\).*/\1/p' \
    CMakeLists.txt)"
got_version=$("$bin" --version) || fail "--version exited $?"
[ "$got_version" = "$want_version" ] ||
    fail "--version printed '$got_version', want '$want_version'"
help=$("$bin" --help) || fail "--help exited $?"

mc_port=$(free_port)
port=$(free_port)
decoy=$(free_port)
user=()
if [ "$(id -u)" -eq 0 ]; then
    user=(-u nobody) # memcached refuses to run as root
fi
memcached "${user[@]}" -l 127.0.0.1 -p "$mc_port" -U 0 -t 1 \
    >"$work/memcached.log" 2>&1 &
mc_pid=$!
wait_port "$mc_port" "$mc_pid" || fail "memcached did not start"

# The file says to listen elsewhere (decoy): the environment or -l must win.
cat >"$work/rules.yaml" <<EOF
listen: 127.0.0.1:$decoy
upstream: 127.0.0.1:$decoy
rules:
  - name: smoke-oom
    command: set
    key: "smoke:fault:*"
    action: error
    message: SERVER_ERROR out of memory storing object
EOF
"$bin" --check-config "$work/rules.yaml" >/dev/null ||
    fail "--check-config rejects the smoke rules"

args=()
envs=()
how="flags"
if grep -q MCFAULT_LISTEN <<<"$help"; then
    how="environment"
    envs=("MCFAULT_LISTEN=127.0.0.1:$port" "MCFAULT_UPSTREAM=127.0.0.1:$mc_port")
else
    args=(-l "127.0.0.1:$port" -u "127.0.0.1:$mc_port")
fi
if grep -q MCFAULT_CONFIG <<<"$help"; then
    envs+=("MCFAULT_CONFIG=$work/rules.yaml")
else
    args+=(-c "$work/rules.yaml")
fi
echo "container-smoke: $("$bin" --version) on 127.0.0.1:$port," \
    "memcached on 127.0.0.1:$mc_port, configured by $how"
env "${envs[@]}" "$bin" "${args[@]}" -v >"$work/mcfault.log" 2>&1 &
mcf_pid=$!
wait_port "$port" "$mcf_pid" || fail "mcfault did not start"

key="smoke:$$"
exchange "$port" "set $key 0 0 5\r\nhello\r\nget $key\r\n" \
    "STORED\r\nVALUE $key 0 5\r\nhello\r\nEND\r\n" ||
    fail "set/get through mcfault"
# The value really is in memcached.
exchange "$mc_port" "get $key\r\n" "VALUE $key 0 5\r\nhello\r\nEND\r\n" ||
    fail "the value set through mcfault is not in memcached"
exchange "$port" "set smoke:fault:1 0 0 2\r\nhi\r\nget smoke:fault:1\r\n" \
    "SERVER_ERROR out of memory storing object\r\nEND\r\n" ||
    fail "the rule of the config file did not fire"

if grep -q -- --health <<<"$help"; then
    timeout 10 "$bin" --health "127.0.0.1:$port" ||
        fail "--health 127.0.0.1:$port exited $?, want 0"
    rc=0
    timeout 10 "$bin" --health "127.0.0.1:$decoy" 2>/dev/null || rc=$?
    [ "$rc" -eq 1 ] || fail "--health on a closed port exited $rc, want 1"
    kill "$mc_pid"
    wait "$mc_pid" 2>/dev/null || true
    mc_pid=""
    rc=0
    timeout 10 "$bin" --health "127.0.0.1:$port" 2>/dev/null || rc=$?
    [ "$rc" -eq 1 ] ||
        fail "--health with memcached stopped exited $rc, want 1"
    echo "container-smoke: --health ok (0 up, 1 port closed, 1 upstream down)"
fi

# docker stop: SIGTERM, then SIGKILL after 10 s.
kill -TERM "$mcf_pid"
rc=0
for _ in $(seq 100); do
    kill -0 "$mcf_pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$mcf_pid" 2>/dev/null; then
    fail "mcfault still running 10 s after SIGTERM"
fi
wait "$mcf_pid" || rc=$?
mcf_pid=""
[ "$rc" -eq 0 ] || fail "mcfault exited $rc after SIGTERM, want 0"
echo "container-smoke: ok"

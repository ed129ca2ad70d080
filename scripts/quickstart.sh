#!/usr/bin/env bash
# Quick start: installs what is missing, builds mcfault, starts a local
# memcached on 127.0.0.1:11211 and runs mcfault in front of it on
# 127.0.0.1:11212 with the example rules of conf/example.yaml (Ctrl-C stops
# both). Point a client at port 11212.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh --run
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMCFAULT_TESTS=OFF \
    -DMCFAULT_SANITIZE=OFF
cmake --build build -j"$(nproc)"

MC_PORT=${MC_PORT:-11211}
LISTEN=${LISTEN:-127.0.0.1:11212}
user=()
if [ "$(id -u)" -eq 0 ]; then
    user=(-u nobody)
fi
memcached "${user[@]}" -l 127.0.0.1 -p "$MC_PORT" -U 0 &
mc_pid=$!
trap 'kill $mc_pid 2>/dev/null || true' EXIT
# The example rules fault only keys named fault:<kind>:* (see the file);
# edit it and send SIGHUP (kill -HUP <pid>) to change them live.
RULES=${RULES:-conf/example.yaml}
echo "mcfault on $LISTEN -> memcached on 127.0.0.1:$MC_PORT, rules $RULES" \
    "(Ctrl-C stops)"
build/mcfault -l "$LISTEN" -u "127.0.0.1:$MC_PORT" -c "$RULES" -v

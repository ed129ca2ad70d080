#!/usr/bin/env bash
# Memory a proxy holds per connection, from its resident set
# (/proc/PID/status), each measurement on a freshly started proxy; the
# client side is bench/memload.py. Prints markdown tables.
#
# (a) Idle: IDLE_N client connections, each used once (a set and a get)
#     and then left open; (RSS after - RSS before) / IDLE_N, for the floor
#     relay, every mcfault case and nutcracker.
# (b) Worst case of one connection: the peak RSS growth under a load,
#     against mcfault's high watermark (WATER_HIGH, CONN_WATER_HIGH in
#     src/conn_int.h), for mcfault with one rule (error on "get x*"):
#     A  the client pipelines "get xk" in 8 KiB writes with a small
#        SO_RCVBUF and never reads: every reply is made by the proxy;
#     B  memcached stopped (SIGSTOP), the client sends "get k" in 7-byte
#        TCP_NODELAY writes;
#     C  memcached stopped, the client writes 100-byte sets as fast as it
#        can and never reads.
#     B and C also run through the relay, for reference (it holds at most
#     one 64 KiB read per direction).
#
# Usage: bench/memory.sh
# Environment (and those of bench/lib.sh: MCFAULT_BIN, CASES, RULES_N,
# RELAY, NUTCRACKER, MEMCACHED_ARGS, ...):
#   IDLE_N=2000       idle connections (memcached's -c and the fd limit
#                     must allow twice as many)
#   LOAD_A_SECONDS=5 LOAD_B_SECONDS=6 LOAD_C_SECONDS=5
#   RCVBUF=4096       load A's SO_RCVBUF
#   RSS_CAP=4294967296  a load stops early once the proxy's RSS passes this
#   WATER_HIGH=1048576
#   SKIP_IDLE=0 SKIP_LOADS=0
set -euo pipefail

LIB_PROG=memory
. "$(dirname "$0")/lib.sh"

IDLE_N=${IDLE_N:-2000}
LOAD_A_SECONDS=${LOAD_A_SECONDS:-5}
LOAD_B_SECONDS=${LOAD_B_SECONDS:-6}
LOAD_C_SECONDS=${LOAD_C_SECONDS:-5}
RCVBUF=${RCVBUF:-4096}
WATER_HIGH=${WATER_HIGH:-1048576}
RSS_CAP=${RSS_CAP:-4294967296}
SKIP_IDLE=${SKIP_IDLE:-0}
SKIP_LOADS=${SKIP_LOADS:-0}
MEMLOAD=("$PYTHON" "$lib_here/memload.py")

[[ $IDLE_N =~ ^[1-9][0-9]*$ ]] || die "IDLE_N must be a positive integer"
# The client holds IDLE_N sockets; the proxy twice as many.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(($(ulimit -n) > 2 * IDLE_N + 64)) ||
    die "the fd limit ($(ulimit -n)) is too low for IDLE_N=$IDLE_N"

lib_init
start_memcached
cat >"$work/load.yaml" <<EOF
rules:
  - name: error-on-x
    command: get
    key: "x*"
    action: error
    message: SERVER_ERROR injected by bench/memory.sh
EOF
case_args[mcfault-load]="-c $work/load.yaml $EXTRA_MCFAULT_ARGS"
# mcfault refuses clients past --max-connections (1024 by default); the
# idle part opens IDLE_N at once.
for name in "${!case_args[@]}"; do
    case_args[$name]+=" --max-connections $((IDLE_N + 16))"
done

# Starts target $1 on a free port; sets proxy_pid and proxy_addr.
fresh_proxy() {
    free_ports 1
    proxy_addr=127.0.0.1:${ports[0]}
    start_proxy "$1" "${ports[0]}"
    proxy_pid=$last_pid
}

# Bytes as KiB or MiB with one decimal.
kib() {
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'
}
mib() {
    awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'
}

# --- (a) idle connections -----------------------------------------------------
idle_rows=()
if [ "$SKIP_IDLE" = 0 ]; then
    for t in "${proxy_targets[@]}"; do
        echo "memory: $t: $IDLE_N idle connections" >&2
        fresh_proxy "$t"
        read -r before after < <("${MEMLOAD[@]}" idle "$proxy_addr" \
            "$IDLE_N" "$proxy_pid") || die "$t: idle load failed"
        stop "$proxy_pid"
        idle_rows+=("$(printf '| %s | %s | %s | %s | %s |' "$t" "$IDLE_N" \
            "$(kib "$before")" "$(kib "$after")" \
            "$(((after - before) / IDLE_N))")")
    done
fi

# --- (b) one connection under load --------------------------------------------
load_rows=()
# Runs load $1 (A, B, C) against target $2 and adds a row.
run_load() {
    local load=$1 t=$2 kind seconds mc=0 before peak end sent took capped
    case $load in
    A) kind=flood-get seconds=$LOAD_A_SECONDS ;;
    B) kind=trickle seconds=$LOAD_B_SECONDS mc=$mc_pid ;;
    C) kind=flood-set seconds=$LOAD_C_SECONDS mc=$mc_pid ;;
    esac
    echo "memory: $t: load $load ($kind, ${seconds}s)" >&2
    fresh_proxy "$t"
    read -r before peak end sent took capped < <("${MEMLOAD[@]}" "$kind" \
        "$proxy_addr" "$proxy_pid" "$seconds" "$mc" "$RCVBUF" "$RSS_CAP") ||
        die "$t: load $load failed"
    kill -0 "$proxy_pid" 2>/dev/null || die "$t died under load $load"
    stop "$proxy_pid"
    if [ "$capped" = 1 ]; then
        took="$took (stopped at RSS_CAP)"
    fi
    load_rows+=("$(awk -v l="$load $kind" -v t="$t" -v b="$before" \
        -v p="$peak" -v e="$end" -v s="$sent" -v w="$WATER_HIGH" \
        -v took="$took" 'BEGIN {
        printf "| %s | %s | %s | %.1f | %.1f | %.1f | %.2f | %.1f |", l, t,
            took, s / 1048576, b / 1048576, (p - b) / 1048576, (p - b) / w,
            (e - b) / 1048576 }')")
}

if [ "$SKIP_LOADS" = 0 ]; then
    for load in A B C; do
        run_load "$load" mcfault-load
        if [ "$load" != A ] && [ "$RELAY" != 0 ]; then
            run_load "$load" relay
        fi
    done
fi

# --- report -------------------------------------------------------------------
if [ "$SKIP_IDLE" = 0 ]; then
    echo
    echo "### Idle connections"
    echo
    echo "$IDLE_N client connections, each a set and a get, then idle;" \
        "per connection = (RSS after - RSS before) / $IDLE_N."
    echo
    echo "| target | connections | RSS before KiB | RSS after KiB |" \
        "bytes per connection |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${idle_rows[@]}"
fi
if [ "$SKIP_LOADS" = 0 ]; then
    echo
    echo "### One connection under load"
    echo
    echo "Peak RSS growth over the run (largest of 20 ms samples and" \
        "VmHWM); high watermark = $WATER_HIGH bytes; mcfault-load =" \
        "mcfault with one rule, error on \`get x*\`; loads B and C stop" \
        "memcached. After close: RSS growth 1 s after the client closed."
    echo
    echo "| load | target | seconds | client sent MiB | RSS before MiB |" \
        "peak growth MiB | growth / high watermark | after close MiB |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${load_rows[@]}"
fi

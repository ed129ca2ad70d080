#!/usr/bin/env bash
# Per-request cost of a proxy in front of memcached, in units that do not
# depend on how noisy the machine is: system calls per request (strace -c)
# and instructions per request (callgrind), for the floor relay
# (bench/relay.c), mcfault and nutcracker. Prints a markdown table.
#
# The load is one connection (bench/rtt.c) sending "get KEY" for a
# VALUE_SIZE-byte value and waiting for each reply, so every request is a
# full round trip.
#
# Usage: bench/cost.sh            (see docs/benchmarks.md)
# Environment (and those of bench/lib.sh: MCFAULT_BIN, CASES, RULES_N,
# RELAY, NUTCRACKER, EXTRA_MCFAULT_ARGS, ...):
#   N=20000           requests traced by strace
#   N1=5000 N2=25000  requests of the two callgrind runs; the cost is
#                     (Ir(N2) - Ir(N1)) / (N2 - N1), so startup and
#                     shutdown cancel
#   VALUE_SIZE=100
#   SKIP_STRACE=0 SKIP_CALLGRIND=0
set -euo pipefail

LIB_PROG=cost
. "$(dirname "$0")/lib.sh"

N=${N:-20000}
N1=${N1:-5000}
N2=${N2:-25000}
VALUE_SIZE=${VALUE_SIZE:-100}
SKIP_STRACE=${SKIP_STRACE:-0}
SKIP_CALLGRIND=${SKIP_CALLGRIND:-0}
KEY=mcfault_cost

if [ "$SKIP_STRACE" = 0 ]; then
    need strace
fi
if [ "$SKIP_CALLGRIND" = 0 ]; then
    need valgrind callgrind_annotate
fi
for v in N N1 N2 VALUE_SIZE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
((N2 > N1)) || die "N2 must be larger than N1"

lib_init
start_memcached
"${MCCLIENT[@]}" set "$mc_addr" "$KEY" "$VALUE_SIZE" || die "cannot seed"
free_ports 1
proxy_port=${ports[0]}
proxy_addr=127.0.0.1:$proxy_port

# N gets on one fresh connection to the proxy, each reply checked.
getloop() {
    "$work/rtt" -n "$1" -w 0 -e 0 -v "$VALUE_SIZE" -k "$KEY" "$proxy_addr" \
        >/dev/null
}

declare -A sys_of ir_of detail_of

# --- (a) system calls per request ---------------------------------------------
# strace -c counts the calls of every thread of the running proxy while one
# connection sends N gets; the connection's own setup (accept, the upstream
# connect, close) adds some 20 calls, under 0.002 per request at N=20000.
measure_syscalls() {
    local t=$1 proxy_pid strace_pid out i
    start_proxy "$t" "$proxy_port"
    proxy_pid=$last_pid
    # Warm up: nutcracker opens its server connection on first use.
    getloop 100 || die "$t: warm-up failed"

    out="$work/strace-$t.txt"
    spawn "$work/strace-$t.log" strace -c -f -p "$proxy_pid" -o "$out"
    strace_pid=$last_pid
    for ((i = 0; i < 100; i++)); do
        grep -q attached "$work/strace-$t.log" && break
        sleep 0.05
    done
    grep -q attached "$work/strace-$t.log" ||
        die "strace could not attach to $t: $(cat "$work/strace-$t.log")"
    getloop "$N" || die "$t: load failed"
    # strace writes its summary when interrupted.
    kill -INT "$strace_pid"
    wait "$strace_pid" 2>/dev/null || true
    forget "$strace_pid"
    stop "$proxy_pid"

    # Rows: % time, seconds, usecs/call, calls, [errors], syscall.
    sys_of[$t]=$(awk -v n="$N" '$NF == "total" { printf "%.2f", $4 / n }' \
        "$out")
    [ -n "${sys_of[$t]}" ] || die "$t: no strace summary in $out"
    detail_of[$t]=$(awk -v n="$N" '
        $1 ~ /^[0-9.]+$/ && $NF != "total" && $4 / n >= 0.01 {
            printf "%s %.2f\n", $NF, $4 / n }' "$out" |
        sort -k2,2gr -k1,1 |
        awk '{ printf "%s%s %s", sep, $1, $2; sep = ", " }')
}

# --- (b) instructions per request ---------------------------------------------
# Runs target t under callgrind for n requests; sets ir to the total Ir.
callgrind_ir() {
    local t=$1 n=$2 pid out
    out="$work/callgrind-$t-$n.out"
    start_proxy "$t" "$proxy_port" valgrind --tool=callgrind \
        --callgrind-out-file="$out"
    pid=$last_pid
    getloop "$n" || die "$t under callgrind: load failed"
    # valgrind runs the program in its own process: SIGINT reaches the
    # proxy, which exits, and callgrind writes the profile on the way out.
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    [ -s "$out" ] || die "$t: callgrind wrote no profile"
    ir=$(callgrind_annotate "$out" |
        awk '/PROGRAM TOTALS/ && ir == "" { ir = $1 }
            END { gsub(",", "", ir); print ir }')
    [[ $ir =~ ^[0-9]+$ ]] || die "$t: no PROGRAM TOTALS in $out"
}

measure_instructions() {
    local t=$1 ir1 ir2
    callgrind_ir "$t" "$N1"
    ir1=$ir
    callgrind_ir "$t" "$N2"
    ir2=$ir
    ir_of[$t]=$(awk -v a="$ir1" -v b="$ir2" -v n1="$N1" -v n2="$N2" \
        'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }')
}

for t in "${proxy_targets[@]}"; do
    sys_of[$t]="-"
    ir_of[$t]="-"
    detail_of[$t]=""
    if [ "$SKIP_STRACE" = 0 ]; then
        echo "cost: $t: strace over $N requests" >&2
        measure_syscalls "$t"
    fi
    if [ "$SKIP_CALLGRIND" = 0 ]; then
        echo "cost: $t: callgrind over $N1 and $N2 requests" >&2
        measure_instructions "$t"
    fi
done

# --- report -------------------------------------------------------------------
echo
echo "Per request: one connection, \`get\` of a ${VALUE_SIZE}-byte value," \
    "each reply awaited (strace over $N requests; callgrind" \
    "(Ir($N2) - Ir($N1)) / $((N2 - N1)))."
echo
echo "| target | syscalls / request | instructions / request |" \
    "instructions vs relay | the calls, per request |"
echo "|---|---:|---:|---:|---|"
for t in "${proxy_targets[@]}"; do
    awk -v t="$t" -v s="${sys_of[$t]}" -v ir="${ir_of[$t]}" \
        -v base="${ir_of[relay]:--}" -v d="${detail_of[$t]}" 'BEGIN {
        ratio = "-"
        if (ir != "-" && base != "-" && base > 0) {
            ratio = sprintf("%.2f", ir / base)
        }
        irs = ir
        while (irs ~ /[0-9][0-9][0-9][0-9]/) {
            sub(/[0-9][0-9][0-9]($|,)/, ",&", irs)
        }
        printf "| %s | %s | %s | %s | %s |\n", t, s, irs, ratio, d }'
done

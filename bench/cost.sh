#!/usr/bin/env bash
# Per-request cost of a proxy in front of memcached, in units that do not
# depend on how noisy the machine is: system calls per request (strace -c)
# and instructions per request (callgrind), for mcfault and nutcracker.
#
# The load is one connection sending "get KEY" for a VALUE_SIZE-byte value
# and waiting for each reply, so every request is a full round trip.
#
# Usage: bench/cost.sh            (see docs/benchmarks.md)
# Environment:
#   N=20000           requests traced by strace
#   N1=5000 N2=25000  requests of the two callgrind runs; the cost is
#                     (Ir(N2) - Ir(N1)) / (N2 - N1), so startup cancels
#   VALUE_SIZE=100
#   MCFAULT_BIN=build/mcfault (of this checkout)
#   EXTRA_MCFAULT_ARGS=""   appended to the arguments of every mcfault case
#   RULES_N=1000      rules in the generated file @RULES@ (bench/gen-rules.py:
#                     none matches the traffic)
#   CASES="mcfault:;mcfault-1000rules:-c @RULES@"
#                     ';'-separated NAME:ARGS, as in bench/bench.sh
#   NUTCRACKER=nutcracker   binary; empty skips nutcracker
#   SKIP_STRACE=0 SKIP_CALLGRIND=0
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

N=${N:-20000}
N1=${N1:-5000}
N2=${N2:-25000}
VALUE_SIZE=${VALUE_SIZE:-100}
MCFAULT_BIN=${MCFAULT_BIN:-$root/build/mcfault}
EXTRA_MCFAULT_ARGS=${EXTRA_MCFAULT_ARGS:-}
RULES_N=${RULES_N:-1000}
CASES=${CASES:-mcfault:;mcfault-${RULES_N}rules:-c @RULES@}
NUTCRACKER=${NUTCRACKER-nutcracker}
SKIP_STRACE=${SKIP_STRACE:-0}
SKIP_CALLGRIND=${SKIP_CALLGRIND:-0}
PYTHON=${PYTHON:-python3}
MCCLIENT=("$PYTHON" "$here/mcclient.py")
KEY=mcfault_cost
# Servers under valgrind start slowly.
START_TIMEOUT=10
VALGRIND_START_TIMEOUT=60

die() {
    echo "cost: $*" >&2
    exit 1
}

for tool in memcached "$PYTHON"; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
if [ "$SKIP_STRACE" = 0 ]; then
    command -v strace >/dev/null || die "'strace' not found"
fi
if [ "$SKIP_CALLGRIND" = 0 ]; then
    command -v valgrind >/dev/null || die "'valgrind' not found"
    command -v callgrind_annotate >/dev/null ||
        die "'callgrind_annotate' not found"
fi
[ -x "$MCFAULT_BIN" ] || die "no mcfault at '$MCFAULT_BIN' (build it first)"
if [ -n "$NUTCRACKER" ] && ! command -v "$NUTCRACKER" >/dev/null; then
    echo "cost: '$NUTCRACKER' not found; skipping nutcracker" >&2
    NUTCRACKER=""
fi
for v in N N1 N2 VALUE_SIZE; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
((N2 > N1)) || die "N2 must be larger than N1"

work=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-cost.XXXXXX")
"$PYTHON" "$here/gen-rules.py" "$RULES_N" >"$work/rules.yaml"
pids=()

# Stops the given pids (TERM, then KILL after 2 s) and reaps them.
stop() {
    local pid i
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop "${pids[@]}"
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in the background, logging to a file; its pid is
# recorded for cleanup and left in $last_pid.
spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    last_pid=$!
    pids+=("$last_pid")
}

# Forgets a pid that has been reaped.
forget() {
    local keep=() p
    for p in "${pids[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    pids=("${keep[@]}")
}

await() {
    local pid=$1 addr=$2 log=$3 timeout=$4
    if ! "${MCCLIENT[@]}" wait "$addr" "$timeout" "$pid" ||
        ! kill -0 "$pid" 2>/dev/null; then
        echo "--- $log" >&2
        cat "$log" >&2 || true
        die "server on $addr did not come up"
    fi
}

# --- targets: NAME -> command line (minus what is spawned around it) --------
read -r -a ports <<<"$("${MCCLIENT[@]}" ports 3)"
mc_port=${ports[0]}
proxy_port=${ports[1]}
nc_stats=${ports[2]}
proxy_addr="127.0.0.1:$proxy_port"

targets=()
declare -A cmd_of
IFS=';' read -r -a case_specs <<<"$CASES"
for spec in "${case_specs[@]}"; do
    [ -n "$spec" ] || continue
    [[ $spec == *:* ]] || die "CASES entry '$spec' is not NAME:ARGS"
    name=${spec%%:*}
    [[ $name =~ ^[A-Za-z0-9_.+-]+$ ]] || die "bad case name '$name'"
    for taken in nutcracker "${targets[@]}"; do
        [ "$name" != "$taken" ] || die "case name '$name' is taken"
    done
    targets+=("$name")
    args=${spec#*:}
    cmd_of[$name]="${args//@RULES@/$work/rules.yaml} $EXTRA_MCFAULT_ARGS"
done
if [ -n "$NUTCRACKER" ]; then
    cat >"$work/nutcracker.yml" <<EOF
bench:
  listen: $proxy_addr
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  timeout: 1000
  servers:
    - 127.0.0.1:$mc_port:1
EOF
    "$NUTCRACKER" -t -c "$work/nutcracker.yml" >/dev/null 2>&1 ||
        die "nutcracker rejects $work/nutcracker.yml"
    targets+=(nutcracker)
fi

# Sets proxy_argv to the command line of target $1; one proxy runs at a
# time, always on proxy_port.
proxy_cmd() {
    if [ "$1" = nutcracker ]; then
        # A stats interval longer than any run keeps the aggregation thread
        # out of the instruction counts.
        proxy_argv=("$NUTCRACKER" -c "$work/nutcracker.yml" -s "$nc_stats"
            -a 127.0.0.1 -i 3600000 -o "$work/nutcracker-own.log")
    else
        local args
        read -r -a args <<<"${cmd_of[$1]}"
        proxy_argv=("$MCFAULT_BIN" -l "$proxy_addr" -u "127.0.0.1:$mc_port"
            "${args[@]}")
    fi
}

user=()
if [ "$(id -u)" -eq 0 ]; then
    user=(-u nobody)
fi
spawn "$work/memcached.log" memcached "${user[@]}" -l 127.0.0.1 \
    -p "$mc_port" -U 0 -t 2
await "$last_pid" "127.0.0.1:$mc_port" "$work/memcached.log" "$START_TIMEOUT"
"${MCCLIENT[@]}" set "127.0.0.1:$mc_port" "$KEY" "$VALUE_SIZE" ||
    die "cannot seed the key"

declare -A sys_of ir_of detail_of

# --- (a) system calls per request ---------------------------------------------
# strace -c counts the calls of every thread of the running proxy while one
# connection sends N gets; the connection's own setup (accept, the upstream
# connect, close) adds some 20 calls, under 0.002 per request at N=20000.
measure_syscalls() {
    local t=$1 proxy_pid strace_pid out i
    proxy_cmd "$t"
    spawn "$work/$t.log" "${proxy_argv[@]}"
    proxy_pid=$last_pid
    await "$proxy_pid" "$proxy_addr" "$work/$t.log" "$START_TIMEOUT"
    # Warm up: nutcracker opens its server connection on first use.
    "${MCCLIENT[@]}" getloop "$proxy_addr" "$KEY" "$VALUE_SIZE" 100 \
        2>/dev/null || die "$t: warm-up failed"

    out="$work/strace-$t.txt"
    spawn "$work/strace-$t.log" strace -c -f -p "$proxy_pid" -o "$out"
    strace_pid=$last_pid
    for ((i = 0; i < 100; i++)); do
        grep -q attached "$work/strace-$t.log" && break
        sleep 0.05
    done
    grep -q attached "$work/strace-$t.log" ||
        die "strace could not attach to $t: $(cat "$work/strace-$t.log")"
    "${MCCLIENT[@]}" getloop "$proxy_addr" "$KEY" "$VALUE_SIZE" "$N" \
        2>/dev/null || die "$t: load failed"
    # strace writes its summary when interrupted.
    kill -INT "$strace_pid"
    wait "$strace_pid" 2>/dev/null || true
    forget "$strace_pid"
    stop "$proxy_pid"
    forget "$proxy_pid"

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
    proxy_cmd "$t"
    out="$work/callgrind-$t-$n.out"
    spawn "$work/callgrind-$t-$n.log" valgrind --tool=callgrind \
        --callgrind-out-file="$out" "${proxy_argv[@]}"
    pid=$last_pid
    await "$pid" "$proxy_addr" "$work/callgrind-$t-$n.log" \
        "$VALGRIND_START_TIMEOUT"
    "${MCCLIENT[@]}" getloop "$proxy_addr" "$KEY" "$VALUE_SIZE" "$n" \
        2>/dev/null || die "$t under callgrind: load failed"
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

for t in "${targets[@]}"; do
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

echo
echo "per request: one connection, 'get' of a ${VALUE_SIZE}-byte value," \
    "each reply awaited"
printf '%-16s %14s %14s\n' target syscalls/req instr/req
for t in "${targets[@]}"; do
    printf '%-16s %14s %14s\n' "$t" "${sys_of[$t]}" "${ir_of[$t]}"
done
if [ "$SKIP_STRACE" = 0 ]; then
    echo
    echo "system calls per request, by call (>= 0.01):"
    for t in "${targets[@]}"; do
        printf '  %-14s %s\n' "$t" "${detail_of[$t]}"
    done
fi

#!/usr/bin/env bash
# Throughput and latency of memcached reached directly, through mcfault and
# through nutcracker (twemproxy), under one memcaslap workload, in rounds
# that interleave the targets so machine noise hits all of them alike.
# Prints one line per run, then per target the median ops/s, average
# latency and CPU per operation, with throughput and latency ratios
# against direct.
#
# Usage: bench/bench.sh            (see docs/benchmarks.md)
# Environment:
#   DURATION=10       seconds per memcaslap run
#   ROUNDS=3          rounds; each runs every target once
#   WARMUP=2          seconds of an unrecorded direct run first (0: none)
#   THREADS=2 CONCURRENCY=32 VALUE_SIZE=100 KEY_SIZE=64 SET_RATIO=0.1
#   MCFAULT_BIN=build/mcfault (of this checkout)
#   EXTRA_MCFAULT_ARGS=""   appended to the arguments of every mcfault case
#   RULES_N=1000      rules in the generated file @RULES@ (bench/gen-rules.py:
#                     none matches the traffic)
#   CASES="mcfault:;mcfault-1000rules:-c @RULES@"
#                     mcfault instances to measure, ';'-separated NAME:ARGS
#                     (e.g. 'mcfault:;mcfault-rules:-c conf/bench.yaml')
#   NUTCRACKER=nutcracker   binary; empty skips the nutcracker target
#   NC_SERVER_CONNECTIONS=1 nutcracker's connections to memcached (all
#                     clients share them; mcfault opens one per client)
#   MEMCACHED_ARGS="-m 256 -t 2 -c 4096"
#   OUT_DIR=""        keep every memcaslap log and results.tsv here
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONCURRENCY=${CONCURRENCY:-32}
VALUE_SIZE=${VALUE_SIZE:-100}
KEY_SIZE=${KEY_SIZE:-64}
SET_RATIO=${SET_RATIO:-0.1}
MCFAULT_BIN=${MCFAULT_BIN:-$root/build/mcfault}
EXTRA_MCFAULT_ARGS=${EXTRA_MCFAULT_ARGS:-}
RULES_N=${RULES_N:-1000}
CASES=${CASES:-mcfault:;mcfault-${RULES_N}rules:-c @RULES@}
NUTCRACKER=${NUTCRACKER-nutcracker}
NC_SERVER_CONNECTIONS=${NC_SERVER_CONNECTIONS:-1}
MEMCACHED_ARGS=${MEMCACHED_ARGS:--m 256 -t 2 -c 4096}
OUT_DIR=${OUT_DIR:-}
PYTHON=${PYTHON:-python3}
MCCLIENT=("$PYTHON" "$here/mcclient.py")
# How long a freshly started server may take to answer its first get.
START_TIMEOUT=10

die() {
    echo "bench: $*" >&2
    exit 1
}

for tool in memcached memcaslap "$PYTHON"; do
    command -v "$tool" >/dev/null || die "'$tool' not found"
done
[ -x "$MCFAULT_BIN" ] || die "no mcfault at '$MCFAULT_BIN' (build it first:
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMCFAULT_TESTS=OFF &&
  cmake --build build)"
if [ -n "$NUTCRACKER" ] && ! command -v "$NUTCRACKER" >/dev/null; then
    echo "bench: '$NUTCRACKER' not found; skipping the nutcracker target" >&2
    NUTCRACKER=""
fi
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be whole seconds"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be whole seconds"
[[ $NC_SERVER_CONNECTIONS =~ ^[1-9][0-9]*$ ]] ||
    die "NC_SERVER_CONNECTIONS must be a positive integer"

clk_tck=$(getconf CLK_TCK)
work=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-bench.XXXXXX")
"$PYTHON" "$here/gen-rules.py" "$RULES_N" >"$work/rules.yaml"
pids=()

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$OUT_DIR" ]; then
        mkdir -p "$OUT_DIR"
        cp "$work"/*.log "$work"/results.tsv "$OUT_DIR"/ 2>/dev/null || true
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts a command in the background, output to a log; records its pid for
# cleanup.
spawn() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    pids+=("$!")
}

# Fails (with the server's log) unless pid is alive and addr answers.
await() {
    local pid=$1 addr=$2 log=$3
    if ! "${MCCLIENT[@]}" wait "$addr" "$START_TIMEOUT" "$pid" ||
        ! kill -0 "$pid" 2>/dev/null; then
        echo "--- $log" >&2
        cat "$log" >&2 || true
        die "server on $addr did not come up"
    fi
}

# --- parse the case list ----------------------------------------------------
case_names=()
case_args=()
IFS=';' read -r -a case_specs <<<"$CASES"
for spec in "${case_specs[@]}"; do
    [ -n "$spec" ] || continue
    [[ $spec == *:* ]] || die "CASES entry '$spec' is not NAME:ARGS"
    name=${spec%%:*}
    [[ $name =~ ^[A-Za-z0-9_.+-]+$ ]] || die "bad case name '$name'"
    for taken in direct nutcracker "${case_names[@]}"; do
        [ "$name" != "$taken" ] || die "case name '$name' is taken"
    done
    case_names+=("$name")
    args=${spec#*:}
    case_args+=("${args//@RULES@/$work/rules.yaml} $EXTRA_MCFAULT_ARGS")
done

nports=$((1 + ${#case_names[@]} + 2))
read -r -a ports <<<"$("${MCCLIENT[@]}" ports "$nports")"
mc_port=${ports[0]}

# --- start the servers ------------------------------------------------------
user=()
if [ "$(id -u)" -eq 0 ]; then
    user=(-u nobody)
fi
read -r -a mc_extra <<<"$MEMCACHED_ARGS"
spawn "$work/memcached.log" memcached "${user[@]}" -l 127.0.0.1 \
    -p "$mc_port" -U 0 "${mc_extra[@]}"
await "${pids[-1]}" "127.0.0.1:$mc_port" "$work/memcached.log"

targets=(direct)
declare -A addr_of pid_of
addr_of[direct]="127.0.0.1:$mc_port"
pid_of[direct]=${pids[-1]}

for i in "${!case_names[@]}"; do
    name=${case_names[$i]}
    port=${ports[$((1 + i))]}
    read -r -a args <<<"${case_args[$i]}"
    spawn "$work/$name.log" "$MCFAULT_BIN" -l "127.0.0.1:$port" \
        -u "127.0.0.1:$mc_port" "${args[@]}"
    await "${pids[-1]}" "127.0.0.1:$port" "$work/$name.log"
    targets+=("$name")
    addr_of[$name]="127.0.0.1:$port"
    pid_of[$name]=${pids[-1]}
done

if [ -n "$NUTCRACKER" ]; then
    nc_port=${ports[$((nports - 2))]}
    nc_stats=${ports[$((nports - 1))]}
    cat >"$work/nutcracker.yml" <<EOF
bench:
  listen: 127.0.0.1:$nc_port
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  timeout: 1000
  server_connections: $NC_SERVER_CONNECTIONS
  servers:
    - 127.0.0.1:$mc_port:1
EOF
    "$NUTCRACKER" -t -c "$work/nutcracker.yml" >/dev/null 2>&1 ||
        die "nutcracker rejects $work/nutcracker.yml"
    spawn "$work/nutcracker.log" "$NUTCRACKER" -c "$work/nutcracker.yml" \
        -s "$nc_stats" -a 127.0.0.1 -o "$work/nutcracker-own.log"
    await "${pids[-1]}" "127.0.0.1:$nc_port" "$work/nutcracker-own.log"
    targets+=(nutcracker)
    addr_of[nutcracker]="127.0.0.1:$nc_port"
    pid_of[nutcracker]=${pids[-1]}
fi

# --- the workload -----------------------------------------------------------
# memcaslap's -F file: lines of "min_len max_len proportion" for keys and
# values, and "type proportion" for commands, where type 0 is set, 1 get.
get_ratio=$(awk -v s="$SET_RATIO" 'BEGIN { printf "%g", 1 - s }')
cat >"$work/memcaslap.cfg" <<EOF
key
$KEY_SIZE $KEY_SIZE 1
value
$VALUE_SIZE $VALUE_SIZE 1
cmd
0 $SET_RATIO
1 $get_ratio
EOF

# CPU time (user + system, in clock ticks) the process has used so far.
cpu_ticks() {
    # Fields after the ")" closing the command name start at field 3.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Runs memcaslap once against a target and appends to results.tsv:
#   1 round  2 target  3 ops/s  4 avg latency (us)  5 gets  6 sets
#   7 get misses  8 proxy CPU us/op  9 memcached CPU us/op
# CPU is user + system time over the run divided by the operations done
# ("-" for the proxy of the direct target).
run_one() {
    local round=$1 target=$2 seconds=$3 log slap rc=0 p0 p1 m0 m1 pt
    log="$work/r$round-$target.log"
    m0=$(cpu_ticks "${pid_of[direct]}")
    p0=$(cpu_ticks "${pid_of[$target]}")
    # In the background so that a signal to this script is handled (and
    # memcaslap stopped) at once rather than when the run ends.
    spawn "$log" memcaslap -s "${addr_of[$target]}" \
        -F "$work/memcaslap.cfg" -T "$THREADS" -c "$CONCURRENCY" \
        -t "${seconds}s" -S "${seconds}s"
    slap=${pids[-1]}
    wait "$slap" || rc=$?
    unset 'pids[-1]'
    m1=$(cpu_ticks "${pid_of[direct]}")
    p1=$(cpu_ticks "${pid_of[$target]}")
    if [ "$rc" -ne 0 ]; then
        tail -20 "$log" >&2
        die "memcaslap failed against $target (exit $rc)"
    fi
    kill -0 "${pid_of[$target]}" 2>/dev/null ||
        die "$target exited during the run (see $log)"
    pt=$((p1 - p0))
    if [ "$target" = direct ]; then
        pt=-1
    fi
    # The final summary: "Run time: 10.0s Ops: N TPS: N Net_rate: ..." and,
    # after the "Total Statistics (N events)" header, "   Avg:  N" in us.
    awk -v round="$round" -v target="$target" -v pt="$pt" \
        -v mt="$((m1 - m0))" -v hz="$clk_tck" '
        /^Total Statistics \(/ { total = 1 }
        total && $1 == "Avg:" && avg == "" { avg = $2 }
        /^cmd_get:/ { gets = $2 }
        /^cmd_set:/ { sets = $2 }
        /^get_misses:/ { misses = $2 }
        /Run time:/ {
            for (i = 1; i < NF; i++) {
                if ($i == "TPS:") { tps = $(i + 1) }
                if ($i == "Ops:") { ops = $(i + 1) }
            }
        }
        END {
            if (tps == "" || avg == "" || gets == "" || sets == "" ||
                ops <= 0) {
                exit 1
            }
            pus = pt < 0 ? "-" : sprintf("%.2f", pt / hz * 1e6 / ops)
            mus = sprintf("%.2f", mt / hz * 1e6 / ops)
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", round, target,
                tps, avg, gets, sets, misses, pus, mus
        }' "$log" >>"$work/results.tsv" ||
        die "cannot parse memcaslap output ($log)"
}

echo "bench: memcached $(memcached -V | awk '{ print $2 }') on :$mc_port," \
    "targets: ${targets[*]}"
echo "bench: ${THREADS} threads, ${CONCURRENCY} concurrency," \
    "${KEY_SIZE}-byte keys, ${VALUE_SIZE}-byte values," \
    "get/set ${get_ratio}/${SET_RATIO}, ${DURATION}s x ${ROUNDS} rounds"
: >"$work/results.tsv"
if [ "$WARMUP" -gt 0 ]; then
    run_one 0 direct "$WARMUP"
    : >"$work/results.tsv"
fi

ntargets=${#targets[@]}
printf '%-5s %-16s %10s %8s %6s %7s %9s %9s\n' round target ops/s avg_us \
    "get%" misses proxy_us mc_us
for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order each round so no target always runs first or last.
    for ((k = 0; k < ntargets; k++)); do
        t=${targets[$(((k + r - 1) % ntargets))]}
        run_one "$r" "$t" "$DURATION"
        tail -1 "$work/results.tsv" | awk -F'\t' '{
            printf "%-5s %-16s %10d %8d %5.1f%% %7d %9s %9s\n", $1, $2, $3,
                $4, 100 * $5 / ($5 + $6), $7, $8, $9 }'
        sleep 1
    done
done

# --- summary ------------------------------------------------------------------
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "-" }
              else if (NR % 2) { print v[(NR + 1) / 2] }
              else { print (v[NR / 2] + v[NR / 2 + 1]) / 2 } }'
}
# Column c of target t's rows, "-" left out.
col() {
    awk -F'\t' -v t="$1" -v c="$2" '$2 == t && $c != "-" { print $c }' \
        "$work/results.tsv"
}

echo
echo "median over $ROUNDS rounds of ${DURATION}s; spread = min..max ops/s;" \
    "proxy_us, mc_us = CPU us per op"
echo "of the proxy and of memcached; ratios against direct"
printf '%-16s %9s %17s %7s %8s %6s %9s %9s\n' target ops/s spread avg_us \
    proxy_us mc_us "ops ratio" "lat ratio"
base_tps=$(col direct 3 | median)
base_lat=$(col direct 4 | median)
for t in "${targets[@]}"; do
    spread=$(col "$t" 3 | awk 'NR == 1 || $1 < lo { lo = $1 }
        NR == 1 || $1 > hi { hi = $1 } END { printf "%d..%d", lo, hi }')
    awk -v t="$t" -v tps="$(col "$t" 3 | median)" \
        -v lat="$(col "$t" 4 | median)" -v pus="$(col "$t" 8 | median)" \
        -v mus="$(col "$t" 9 | median)" -v sp="$spread" \
        -v bt="$base_tps" -v bl="$base_lat" 'BEGIN {
        if (pus != "-") { pus = sprintf("%.2f", pus) }
        printf "%-16s %9d %17s %7.1f %8s %6.2f %9.3f %9.3f\n", t, tps, sp,
            lat, pus, mus, tps / bt, lat / bl }'
done

#!/usr/bin/env bash
# What a hop costs in time: memcached reached directly, through the floor
# relay (bench/relay.c), through mcfault and through nutcracker, all
# started once and measured in the same run. Prints markdown tables.
#
# (a) Added latency at one connection: bench/rtt.c sends LAT_N sequential
#     get/set round trips to every target, interleaved request by request
#     so the machine's noise hits all alike; per target the median and
#     99th percentile round trip, the latency added to direct, and that
#     added latency as a ratio to the relay's. "pinned" (the default):
#     the client, memcached and the proxies all on one CPU (LAT_CPU), so
#     a round trip is the work done on its path. "unpinned" (LAT_MODES):
#     every hop may pay a cross-CPU wake-up (tens of µs in a VM) that
#     swamps the proxy's own cost and makes round trips bimodal, so a
#     round's median can land on either mode and the ratios jump.
# (b) Throughput under load: memcaslap against each target in turn, the
#     order rotating from round to round; ops/s, average latency, the CPU
#     the proxy and memcached spend per operation, and ops/s as a ratio
#     to the relay's and to direct's (and, as a spread, the ratio to the
#     relay's within each round).
# Each part runs in rounds; the summaries are medians over the rounds.
#
# Usage: bench/bench.sh            (see docs/benchmarks.md)
# Environment (and those of bench/lib.sh: MCFAULT_BIN, CASES, RULES_N,
# RELAY, NUTCRACKER, NC_SERVER_CONNECTIONS, MEMCACHED_ARGS, ...):
#   ROUNDS=3          rounds of throughput
#   LAT_ROUNDS=5      rounds of latency, in each mode
#   LAT_N=20000       round trips per target per latency round
#   LAT_MODES=pinned  or "unpinned pinned" (in this order: after pinning,
#                     the scheduler leaves the processes where they were)
#   LAT_CPU=N-1       the CPU of the pinned mode (default the last one)
#   LAT_SET_EVERY=10  every 10th round trip a set, the others gets
#   DURATION=10       seconds per memcaslap run
#   WARMUP=2          seconds of an unrecorded direct memcaslap run (0: none)
#   THREADS=2 CONCURRENCY=32 VALUE_SIZE=100 KEY_SIZE=64 SET_RATIO=0.1
#   SKIP_LATENCY=0 SKIP_THROUGHPUT=0
#   OUT_DIR=""        keep every log and the .tsv files here
set -euo pipefail

LIB_PROG=bench
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
LAT_ROUNDS=${LAT_ROUNDS:-5}
LAT_N=${LAT_N:-20000}
LAT_MODES=${LAT_MODES-pinned}
LAT_CPU=${LAT_CPU:-$(($(nproc) - 1))}
LAT_SET_EVERY=${LAT_SET_EVERY:-10}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONCURRENCY=${CONCURRENCY:-32}
VALUE_SIZE=${VALUE_SIZE:-100}
KEY_SIZE=${KEY_SIZE:-64}
SET_RATIO=${SET_RATIO:-0.1}
SKIP_LATENCY=${SKIP_LATENCY:-0}
SKIP_THROUGHPUT=${SKIP_THROUGHPUT:-0}
OUT_DIR=${OUT_DIR:-}

if [ "$SKIP_THROUGHPUT" = 0 ]; then
    need memcaslap
fi
[[ $DURATION =~ ^[1-9][0-9]*$ ]] || die "DURATION must be whole seconds"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be whole seconds"
[[ $LAT_N =~ ^[1-9][0-9]*$ ]] || die "LAT_N must be a positive integer"
[[ $LAT_ROUNDS =~ ^[1-9][0-9]*$ ]] ||
    die "LAT_ROUNDS must be a positive integer"
for mode in $LAT_MODES; do
    case $mode in
    pinned) need taskset ;;
    unpinned) ;;
    *) die "LAT_MODES: unknown mode '$mode'" ;;
    esac
done
[[ $LAT_CPU =~ ^[0-9]+$ ]] || die "LAT_CPU must be a CPU number"
[[ $LAT_SET_EVERY =~ ^[0-9]+$ ]] || die "LAT_SET_EVERY must be an integer"

on_exit() {
    if [ -n "$OUT_DIR" ]; then
        mkdir -p "$OUT_DIR"
        cp "$work"/*.log "$work"/*.tsv "$OUT_DIR"/ 2>/dev/null || true
    fi
}

lib_init
clk_tck=$(getconf CLK_TCK)
start_memcached

targets=(direct "${proxy_targets[@]}")
declare -A addr_of pid_of
addr_of[direct]=$mc_addr
pid_of[direct]=$mc_pid
free_ports "${#proxy_targets[@]}"
proxy_ports=("${ports[@]}")
for i in "${!proxy_targets[@]}"; do
    t=${proxy_targets[$i]}
    start_proxy "$t" "${proxy_ports[$i]}"
    addr_of[$t]=127.0.0.1:${proxy_ports[$i]}
    pid_of[$t]=$last_pid
done
echo "bench: memcached $(memcached -V | awk '{ print $2 }') on $mc_addr," \
    "targets: ${targets[*]}" >&2

# Column c of target t's rows in a .tsv file (round in 1, target in 2),
# "-" left out.
col() {
    awk -F'\t' -v t="$2" -v c="$3" '$2 == t && $c != "-" { print $c }' "$1"
}

# Formats the number on stdin with printf format $1; "-" stays "-".
fmt() {
    awk -v f="$1" '{ if ($1 == "-") { print } else { printf f "\n", $1 } }'
}

# Adds thousands separators to the integers among the arguments.
commas() {
    local v
    for v in "$@"; do
        while [[ $v =~ ^(-?[0-9]+)([0-9]{3})(.*)$ ]]; do
            v="${BASH_REMATCH[1]},${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
        done
        printf '%s\n' "$v"
    done
}

# --- (a) added latency at one connection --------------------------------------
# lat-MODE.tsv: 1 round  2 target  3 median us  4 p99 us  5 mean us
#   6 added median (vs direct)  7 added p99  8 added median / relay's
#   9 added p99 / relay's
latency_round() {
    local mode=$1 r=$2 addrs=() t out pin=()
    for t in "${targets[@]}"; do
        addrs+=("${addr_of[$t]}")
    done
    if [ "$mode" = pinned ]; then
        pin=(taskset -c "$LAT_CPU")
    fi
    out="$work/rtt-$mode-$r.log"
    "${pin[@]}" "$work/rtt" -n "$LAT_N" -w 200 -e "$LAT_SET_EVERY" \
        -v "$VALUE_SIZE" "${addrs[@]}" >"$out" || die "rtt failed"
    # rtt prints addresses in the order given, which is targets' order.
    paste <(printf '%s\n' "${targets[@]}") "$out" | awk -F'\t' -v r="$r" '
        { name[NR] = $1; med[$1] = $4; p99[$1] = $5; mean[$1] = $6 }
        END {
            for (i = 1; i <= NR; i++) {
                t = name[i]
                am = sprintf("%.2f", med[t] - med["direct"])
                ap = sprintf("%.2f", p99[t] - p99["direct"])
                rm = "-"; rp = "-"
                if (("relay" in med) && t != "direct") {
                    bm = med["relay"] - med["direct"]
                    bp = p99["relay"] - p99["direct"]
                    if (bm > 0) { rm = sprintf("%.3f", am / bm) }
                    if (bp > 0) { rp = sprintf("%.3f", ap / bp) }
                }
                if (t == "direct") { am = "-"; ap = "-" }
                printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r, t,
                    med[t], p99[t], mean[t], am, ap, rm, rp
            }
        }' >>"$work/lat-$mode.tsv"
}

# Sets the CPU affinity of every thread of every server to CPU list $1.
pin_servers() {
    local t
    for t in "${targets[@]}"; do
        taskset -a -p -c "$1" "${pid_of[$t]}" >/dev/null ||
            die "cannot set the CPU affinity of $t"
    done
}

if [ "$SKIP_LATENCY" = 0 ]; then
    all_cpus=$(taskset -p -c $$ 2>/dev/null | sed 's/.*: //')
    for mode in $LAT_MODES; do
        : >"$work/lat-$mode.tsv"
        if [ "$mode" = pinned ]; then
            pin_servers "$LAT_CPU"
        fi
        for ((r = 1; r <= LAT_ROUNDS; r++)); do
            echo "bench: latency, $mode, round $r: $LAT_N round trips" \
                "per target" >&2
            latency_round "$mode" "$r"
        done
        if [ "$mode" = pinned ]; then
            pin_servers "$all_cpus"
        fi
    done
fi

# --- (b) throughput under load ------------------------------------------------
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

# Runs memcaslap once against a target and appends to tput.tsv:
#   1 round  2 target  3 ops/s  4 avg latency (us)  5 gets  6 sets
#   7 get misses  8 proxy CPU us/op  9 memcached CPU us/op
# CPU is user + system time over the run divided by the operations done
# ("-" for the proxy of the direct target).
throughput_run() {
    local round=$1 target=$2 seconds=$3 log slap rc=0 p0 p1 m0 m1 pt
    log="$work/r$round-$target.log"
    m0=$(cpu_ticks "$mc_pid")
    p0=$(cpu_ticks "${pid_of[$target]}")
    # In the background so that a signal to this script is handled (and
    # memcaslap stopped) at once rather than when the run ends.
    spawn "$log" memcaslap -s "${addr_of[$target]}" \
        -F "$work/memcaslap.cfg" -T "$THREADS" -c "$CONCURRENCY" \
        -t "${seconds}s" -S "${seconds}s"
    slap=$last_pid
    wait "$slap" || rc=$?
    forget "$slap"
    m1=$(cpu_ticks "$mc_pid")
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
        }' "$log" >>"$work/tput.tsv" ||
        die "cannot parse memcaslap output ($log)"
}

if [ "$SKIP_THROUGHPUT" = 0 ]; then
    echo "bench: memcaslap: $THREADS threads, $CONCURRENCY concurrency," \
        "$KEY_SIZE-byte keys, $VALUE_SIZE-byte values," \
        "get/set $get_ratio/$SET_RATIO, ${DURATION}s x $ROUNDS rounds" >&2
    : >"$work/tput.tsv"
    if [ "$WARMUP" -gt 0 ]; then
        throughput_run 0 direct "$WARMUP"
        : >"$work/tput.tsv"
    fi
    ntargets=${#targets[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        # Rotate the order each round so no target always runs first or
        # last.
        for ((k = 0; k < ntargets; k++)); do
            t=${targets[$(((k + r - 1) % ntargets))]}
            throughput_run "$r" "$t" "$DURATION"
            tail -1 "$work/tput.tsv" | awk -F'\t' '{
                printf "bench: round %s %-18s %8d ops/s %6d us\n", $1, $2,
                    $3, $4 }' >&2
            sleep 1
        done
    done
fi

# --- report -------------------------------------------------------------------
# min..max over the rounds of target $2's ops/s divided by target $3's in
# the same round ("-" when no round has both).
round_ratios() {
    awk -F'\t' -v t="$2" -v b="$3" '
        $2 == t { v[$1] = $3 }
        $2 == b { w[$1] = $3 }
        END {
            for (r in v) {
                if (!(r in w) || w[r] <= 0) { continue }
                x = v[r] / w[r]
                if (n == 0 || x < lo) { lo = x }
                if (n == 0 || x > hi) { hi = x }
                n++
            }
            if (n == 0) { print "-" } else { printf "%.3f..%.3f\n", lo, hi }
        }' "$1"
}

# Prints the latency tables of one mode.
latency_report() {
    local mode=$1 tsv=$work/lat-$1.tsv where t
    if [ "$mode" = pinned ]; then
        where="client, memcached and proxies pinned to CPU $LAT_CPU"
    else
        where="not pinned"
    fi
    echo
    echo "### Added latency at one connection, $mode"
    echo
    echo "bench/rtt.c: $LAT_N sequential round trips per target and round" \
        "(every ${LAT_SET_EVERY}th a set, the others gets; ${VALUE_SIZE}-byte" \
        "value), interleaved across targets request by request; $where." \
        "Medians over $LAT_ROUNDS rounds of each round's figures; added =" \
        "target - direct in the same round; ratio = added / the relay's" \
        "added, per round."
    echo
    echo "| target | RTT median µs | RTT p99 µs | added median µs |" \
        "added p99 µs | added median vs relay | added p99 vs relay |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for t in "${targets[@]}"; do
        printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$t" \
            "$(col "$tsv" "$t" 3 | median | fmt %.2f)" \
            "$(col "$tsv" "$t" 4 | median | fmt %.2f)" \
            "$(col "$tsv" "$t" 6 | median | fmt %.2f)" \
            "$(col "$tsv" "$t" 7 | median | fmt %.2f)" \
            "$(col "$tsv" "$t" 8 | median | fmt %.3f)" \
            "$(col "$tsv" "$t" 9 | median | fmt %.3f)"
    done
    echo
    echo "Per round ($mode):"
    echo
    echo "| round | target | RTT median µs | RTT p99 µs | RTT mean µs |" \
        "added median µs | added p99 µs | vs relay (median) |" \
        "vs relay (p99) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
        $1, $2, $3, $4, $5, $6, $7, $8, $9 }' "$tsv"
}

if [ "$SKIP_LATENCY" = 0 ]; then
    for mode in $LAT_MODES; do
        latency_report "$mode"
    done
fi

if [ "$SKIP_THROUGHPUT" = 0 ]; then
    echo
    echo "### Throughput under load"
    echo
    echo "memcaslap -T $THREADS -c $CONCURRENCY, ${KEY_SIZE}-byte keys," \
        "${VALUE_SIZE}-byte values, get/set $get_ratio/$SET_RATIO," \
        "${DURATION}s per run; medians over $ROUNDS rounds;" \
        "spread = min..max ops/s; CPU = user + system µs per operation;" \
        "per round = min..max of ops/s / the relay's in the same round."
    echo
    echo "| target | ops/s | spread | avg latency µs | proxy CPU µs/op |" \
        "memcached CPU µs/op | ops/s vs relay | vs relay per round |" \
        "ops/s vs direct |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    tsv=$work/tput.tsv
    base_tps=$(col "$tsv" direct 3 | median)
    relay_tps=$(col "$tsv" relay 3 | median)
    for t in "${targets[@]}"; do
        tps=$(col "$tsv" "$t" 3 | median)
        lo=$(col "$tsv" "$t" 3 | sort -g | head -1)
        hi=$(col "$tsv" "$t" 3 | sort -g | tail -1)
        awk -v tps="$tps" -v lat="$(col "$tsv" "$t" 4 | median)" \
            -v pus="$(col "$tsv" "$t" 8 | median)" \
            -v mus="$(col "$tsv" "$t" 9 | median)" \
            -v bt="$base_tps" -v rt="$relay_tps" 'BEGIN {
            if (pus != "-") { pus = sprintf("%.2f", pus) }
            vr = rt == "-" ? "-" : sprintf("%.3f", tps / rt)
            printf "%.0f\t%.0f\t%s\t%.2f\t%s\t%.3f\n", tps, lat, pus, mus,
                vr, tps / bt }' | {
            IFS=$'\t' read -r tps lat pus mus vr vd
            printf '| %s | %s | %s..%s | %s | %s | %s | %s | %s | %s |\n' \
                "$t" "$(commas "$tps")" "$(commas "$lo")" "$(commas "$hi")" \
                "$lat" "$pus" "$mus" "$vr" \
                "$(round_ratios "$tsv" "$t" relay)" "$vd"
        }
    done
    echo
    echo "Per run:"
    echo
    echo "| round | target | ops/s | avg µs | get % | misses | proxy µs/op |" \
        "mc µs/op |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %d | %d | %.1f | %d | %s | %s |\n",
        $1, $2, $3, $4, 100 * $5 / ($5 + $6), $7, $8, $9 }' "$tsv"
fi

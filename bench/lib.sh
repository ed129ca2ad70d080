# shellcheck shell=bash
# bench/lib.sh: the setup bench.sh, cost.sh and memory.sh share: a work
# directory and process cleanup, free ports, memcached, the floor relay and
# the rtt client (compiled here), and the command line of every proxy.
# Sourced, not run: the sourcing script sets LIB_PROG (its name in
# messages) first, then calls lib_init.
#
# Environment read here (each script documents the ones it uses):
#   MCFAULT_BIN=build/mcfault (of this checkout)
#   EXTRA_MCFAULT_ARGS=""   appended to the arguments of every mcfault case
#   RULES_N=1000      rules in the generated file @RULES@ (bench/gen-rules.py:
#                     none matches the traffic)
#   CASES="mcfault:;mcfault-1000rules:-c @RULES@"
#                     mcfault instances to measure, ';'-separated NAME:ARGS
#   RELAY=1           0 leaves out the floor relay (bench/relay.c)
#   NUTCRACKER=nutcracker   binary; empty leaves nutcracker out
#   NC_SERVER_CONNECTIONS=1 nutcracker's connections to memcached
#   MEMCACHED_ARGS="-m 256 -t 2 -c 8192"
#   CC=cc PYTHON=python3

lib_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib_root=$(dirname "$lib_here")

MCFAULT_BIN=${MCFAULT_BIN:-$lib_root/build/mcfault}
EXTRA_MCFAULT_ARGS=${EXTRA_MCFAULT_ARGS:-}
RULES_N=${RULES_N:-1000}
CASES=${CASES:-mcfault:;mcfault-${RULES_N}rules:-c @RULES@}
RELAY=${RELAY:-1}
NUTCRACKER=${NUTCRACKER-nutcracker}
NC_SERVER_CONNECTIONS=${NC_SERVER_CONNECTIONS:-1}
MEMCACHED_ARGS=${MEMCACHED_ARGS:--m 256 -t 2 -c 8192}
CC=${CC:-cc}
PYTHON=${PYTHON:-python3}
MCCLIENT=("$PYTHON" "$lib_here/mcclient.py")
# memload.py imports mcclient.py: no __pycache__ in the tree.
export PYTHONDONTWRITEBYTECODE=1
# How long a freshly started server may take to answer its first get;
# under valgrind it starts slowly.
START_TIMEOUT=10
VALGRIND_START_TIMEOUT=60

die() {
    echo "$LIB_PROG: $*" >&2
    exit 1
}

# Fails unless every named command is on PATH.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "'$tool' not found"
    done
}

# Starts a command in the background, output to a log; its pid is recorded
# for cleanup and left in $last_pid.
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

# Stops the given pids (TERM, then KILL after 2 s), reaps and forgets them.
stop() {
    local pid i
    for pid in "$@"; do
        # A stopped process (memory.sh stops memcached) must run to exit.
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for ((i = 0; i < 40; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        forget "$pid"
    done
}

lib_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop "${pids[@]}"
    if declare -F on_exit >/dev/null; then
        on_exit
    fi
    rm -rf "$work"
    exit "$rc"
}

# Fails (with the server's log) unless pid is alive and addr answers a get
# within timeout seconds (default START_TIMEOUT).
await() {
    local pid=$1 addr=$2 log=$3 timeout=${4:-$START_TIMEOUT}
    if ! "${MCCLIENT[@]}" wait "$addr" "$timeout" "$pid" ||
        ! kill -0 "$pid" 2>/dev/null; then
        echo "--- $log" >&2
        cat "$log" >&2 || true
        die "server on $addr did not come up"
    fi
}

# Sets the array ports to $1 free 127.0.0.1 TCP ports.
free_ports() {
    read -r -a ports <<<"$("${MCCLIENT[@]}" ports "$1")"
}

# Median of the numbers on stdin ("-" when there are none).
median() {
    sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) { print "-" }
              else if (NR % 2) { print v[(NR + 1) / 2] }
              else { print (v[NR / 2] + v[NR / 2 + 1]) / 2 } }'
}

# Checks the tools and the binary, makes $work (removed on exit, when
# on_exit, if the script defines it, runs first), writes the rule file,
# compiles the relay and the rtt client into $work, and sets:
#   proxy_targets  relay, the CASES names, nutcracker (those present)
#   case_args      NAME -> mcfault arguments
lib_init() {
    local spec name args taken
    need memcached "$PYTHON" "$CC"
    [ -x "$MCFAULT_BIN" ] || die "no mcfault at '$MCFAULT_BIN' (build it:
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMCFAULT_TESTS=OFF &&
  cmake --build build)"
    if [ -n "$NUTCRACKER" ] && ! command -v "$NUTCRACKER" >/dev/null; then
        echo "$LIB_PROG: '$NUTCRACKER' not found; leaving nutcracker out" >&2
        NUTCRACKER=""
    fi
    [[ $NC_SERVER_CONNECTIONS =~ ^[1-9][0-9]*$ ]] ||
        die "NC_SERVER_CONNECTIONS must be a positive integer"

    work=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-$LIB_PROG.XXXXXX")
    pids=()
    trap lib_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    "$PYTHON" "$lib_here/gen-rules.py" "$RULES_N" >"$work/rules.yaml"
    "$CC" -std=c11 -O2 -Wall -o "$work/relay" "$lib_here/relay.c" -levent ||
        die "cannot compile bench/relay.c (needs libevent-dev)"
    "$CC" -std=c11 -O2 -Wall -o "$work/rtt" "$lib_here/rtt.c" ||
        die "cannot compile bench/rtt.c"

    proxy_targets=()
    declare -gA case_args=()
    if [ "$RELAY" != 0 ]; then
        proxy_targets+=(relay)
    fi
    IFS=';' read -r -a case_specs <<<"$CASES"
    for spec in "${case_specs[@]}"; do
        [ -n "$spec" ] || continue
        [[ $spec == *:* ]] || die "CASES entry '$spec' is not NAME:ARGS"
        name=${spec%%:*}
        [[ $name =~ ^[A-Za-z0-9_.+-]+$ ]] || die "bad case name '$name'"
        for taken in direct relay nutcracker "${proxy_targets[@]}"; do
            [ "$name" != "$taken" ] || die "case name '$name' is taken"
        done
        proxy_targets+=("$name")
        args=${spec#*:}
        case_args[$name]="${args//@RULES@/$work/rules.yaml} $EXTRA_MCFAULT_ARGS"
    done
    if [ -n "$NUTCRACKER" ]; then
        proxy_targets+=(nutcracker)
    fi
}

# Starts memcached on a free port; sets mc_pid and mc_addr.
start_memcached() {
    local user=() extra
    if [ "$(id -u)" -eq 0 ]; then
        user=(-u nobody)
    fi
    read -r -a extra <<<"$MEMCACHED_ARGS"
    free_ports 1
    spawn "$work/memcached.log" memcached "${user[@]}" -l 127.0.0.1 \
        -p "${ports[0]}" -U 0 "${extra[@]}"
    mc_pid=$last_pid
    mc_addr=127.0.0.1:${ports[0]}
    await "$mc_pid" "$mc_addr" "$work/memcached.log"
}

# Sets proxy_argv to the command line of target $1 (relay, nutcracker or an
# mcfault case) listening on 127.0.0.1:$2 in front of $mc_addr.
proxy_cmd() {
    local name=$1 port=$2 args stats_port
    case $name in
    relay)
        proxy_argv=("$work/relay" "127.0.0.1:$port" "$mc_addr")
        ;;
    nutcracker)
        # The stats port: a free one other than the listen port (which,
        # free until the proxy binds it, may be handed out again).
        free_ports 2
        stats_port=${ports[0]}
        if [ "$stats_port" = "$port" ]; then
            stats_port=${ports[1]}
        fi
        cat >"$work/nutcracker-$port.yml" <<EOF
bench:
  listen: 127.0.0.1:$port
  hash: fnv1a_64
  distribution: ketama
  auto_eject_hosts: false
  timeout: 1000
  server_connections: $NC_SERVER_CONNECTIONS
  servers:
    - $mc_addr:1
EOF
        "$NUTCRACKER" -t -c "$work/nutcracker-$port.yml" >/dev/null 2>&1 ||
            die "nutcracker rejects $work/nutcracker-$port.yml"
        # A stats interval longer than any run keeps the aggregation thread
        # out of the measurements.
        proxy_argv=("$NUTCRACKER" -c "$work/nutcracker-$port.yml"
            -s "$stats_port" -a 127.0.0.1 -i 3600000
            -o "$work/nutcracker-$port-own.log")
        ;;
    *)
        read -r -a args <<<"${case_args[$name]}"
        proxy_argv=("$MCFAULT_BIN" -l "127.0.0.1:$port" -u "$mc_addr"
            "${args[@]}")
        ;;
    esac
}

# Starts target $1 on 127.0.0.1:$2, the command prefixed by any further
# arguments (a wrapper such as valgrind), and waits until it answers; the
# pid (of the wrapper, if any) is left in $last_pid.
start_proxy() {
    local name=$1 port=$2 timeout=$START_TIMEOUT log
    shift 2
    if [ $# -gt 0 ]; then
        timeout=$VALGRIND_START_TIMEOUT
    fi
    proxy_cmd "$name" "$port"
    log="$work/$name-$port.log"
    spawn "$log" "$@" "${proxy_argv[@]}"
    await "$last_pid" "127.0.0.1:$port" "$log" "$timeout"
}

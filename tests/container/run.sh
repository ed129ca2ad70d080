#!/usr/bin/env bash
# The container image for real, with podman: scripts/container-image.sh
# builds the debian:12-slim stand-in, the Dockerfile's image and the compose
# stand-ins; then the image runs beside a memcached (traffic, a fault from a
# mounted rule file, the HEALTHCHECK healthy and unhealthy, not root, a
# clean stop on SIGTERM, its size), and docs/docker-compose.example.yml runs
# as it is under podman-compose. Skipped, loudly, only where podman cannot
# run a container at all (not installed, not root, or a trivial run fails).
#
# Usage: tests/container/run.sh
# Environment:
#   MCFAULT_PODMAN_DIR  podman's storage and configuration, kept afterwards
#                       (a second run reuses the base and the build cache);
#                       by default a temporary directory, removed at the end
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPOSE=docs/docker-compose.example.yml
PROJECT=mcfault-compose-test
IMAGE=mcfault:local
MEMCACHED=docker.io/library/memcached:1.6
# The ports the compose example publishes on the host's loopback.
COMPOSE_PORTS=(11212 8080)
# docker stop's (and podman stop's) default: SIGKILL after this long.
STOP_TIMEOUT=10

start_all=$SECONDS
say() {
    echo "container: $*"
}

skip() {
    local line
    line=$(printf '!%.0s' {1..72})
    {
        echo "$line"
        echo "!!! CONTAINER TESTS SKIPPED: $*"
        echo "!!! The image was NOT built or run. Where podman runs, install"
        echo "!!! podman runc netavark aardvark-dns podman-compose debootstrap"
        echo "!!! (scripts/deps.sh) and run tests/container/run.sh."
        echo "$line"
    } | tee /dev/stderr
    exit 0
}

if ! command -v podman >/dev/null; then
    skip "podman is not installed"
fi
# debootstrap and netavark's bridges need root; rootless podman is not set
# up by this project.
if [ "$(id -u)" -ne 0 ]; then
    skip "not root (debootstrap and podman's bridge networks need root)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-container.XXXXXX")
keep=0
if [ -n "${MCFAULT_PODMAN_DIR:-}" ]; then
    pdir=$MCFAULT_PODMAN_DIR
    keep=1
else
    pdir=$work/podman
fi
compose_up=0
net=mcfault-test-$$
# Root's podman keeps a blob cache and netavark its address database in
# fixed places whatever the configuration: removed afterwards when this
# run made them.
state_dirs=()
for d in /var/lib/containers /run/containers; do
    [ -e "$d" ] || state_dirs+=("$d")
done

# netavark leaves its iptables chains behind: a NAT chain per network that
# published a port (empty once the network is gone), and its base chains
# with the jumps to them. Those this run made go; those that were there
# before are someone else's.
netavark_chains() {
    iptables -t "$1" -S 2>/dev/null |
        awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'
}
chains_before=" "
if command -v iptables >/dev/null; then
    chains_before=" $(netavark_chains nat | tr '\n' ' ')"
    chains_before+="$(netavark_chains filter | tr '\n' ' ')"
fi
netavark_chains_prune() {
    command -v iptables >/dev/null || return 0
    local table chain line
    if [ "$chains_before" = " " ]; then
        # None before: the jumps from the built-in chains go, then all.
        for table in nat filter; do
            iptables -t "$table" -S 2>/dev/null |
                grep -E '^-A [A-Z]+ .*-j NETAVARK' |
                while read -r line; do
                    eval "iptables -t $table -D ${line#-A }"
                done
            for chain in $(netavark_chains "$table"); do
                iptables -t "$table" -F "$chain"
            done
            for chain in $(netavark_chains "$table"); do
                iptables -t "$table" -X "$chain"
            done
        done 2>/dev/null
        return 0
    fi
    local rules
    rules=$(iptables -t nat -S 2>/dev/null) || return 0
    for chain in $(netavark_chains nat | grep '^NETAVARK-DN-'); do
        case $chains_before in *" $chain "*) continue ;; esac
        if ! grep -q -e "^-A $chain " -e "-j $chain\$" -e "-j $chain " \
            <<<"$rules"; then
            iptables -t nat -X "$chain" 2>/dev/null
        fi
    done
}

cleanup() {
    local rc=$?
    set +e
    if ((compose_up)); then
        timeout 60 podman-compose -f "$COMPOSE" -p "$PROJECT" down \
            >/dev/null 2>&1
    fi
    if [ -n "${CONTAINERS_CONF:-}" ]; then
        podman rm --all --force --time 0 >/dev/null 2>&1
        podman network rm --force "$net" >/dev/null 2>&1
        podman network rm --force "${PROJECT}_default" >/dev/null 2>&1
        netavark_chains_prune
        if ((!keep)); then
            podman system reset --force >/dev/null 2>&1
        fi
    fi
    if ((!keep)); then
        # Whatever podman left mounted under its directory, then the files.
        findmnt -rn -o TARGET | grep -F "$pdir/" | sort -r |
            xargs -r -n1 umount -l 2>/dev/null
        rm -rf "$pdir" "${state_dirs[@]}"
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

fail() {
    echo "container: FAIL: $*" >&2
    local c
    for c in mcfault-test-mcfault "${PROJECT}_mcfault_1" "${PROJECT}_app_1"; do
        if podman container exists "$c" 2>/dev/null; then
            echo "--- podman logs $c (last 20 lines):" >&2
            podman logs "$c" 2>&1 | tail -n 20 >&2
        fi
    done
    exit 1
}

# podman without systemd logs an error for every container with a health
# check (it cannot add the timer that runs the check periodically; `podman
# healthcheck run` still runs it): those lines are dropped here.
quiet_podman() {
    podman "$@" 2> >(grep -v 'unable to get systemd connection' >&2)
}

scripts/container-image.sh --podman-dir "$pdir" --setup-only
# shellcheck source=/dev/null
. "$pdir/env"

# Can podman run a container here at all? A root file system of /bin/true
# and its libraries, on the host's network.
mkdir -p "$work/trivial"
for f in /bin/true $(ldd /bin/true | grep -o '/[^ ]*'); do
    cp -L --parents "$f" "$work/trivial/"
done
if ! out=$(podman run --rm --network host --rootfs "$work/trivial" \
    /bin/true 2>&1); then
    skip "podman cannot run a container here: $out"
fi
say "podman $(podman version --format '{{.Client.Version}}') runs" \
    "containers (runtime $(podman info --format '{{.Host.OCIRuntime.Name}}'))"
for tool in debootstrap podman-compose; do
    command -v "$tool" >/dev/null ||
        fail "$tool is not installed (scripts/deps.sh installs it)"
done

t=$SECONDS
scripts/container-image.sh --podman-dir "$pdir"
build_s=$((SECONDS - t))

# A port nobody listens on now on the host's loopback.
free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for 127.0.0.1:$1 to answer "version".
wait_version() {
    python3 - "$1" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.sendall(b"version\r\n")
        if s.recv(100).startswith(b"VERSION "):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit("nothing answers 'version' on 127.0.0.1:%d after 10 s" % port)
EOF
}

# Sends $2 (Python escapes allowed) to 127.0.0.1:$1 and checks that the
# reply is exactly $3 (read until that many bytes came, or 5 s).
exchange() {
    python3 scripts/exchange.py "$@"
}

# `podman healthcheck run` of container $1: prints its exit status (0
# healthy, 1 unhealthy).
health() {
    local rc=0
    quiet_podman healthcheck run "$1" >/dev/null 2>&1 || rc=$?
    echo "$rc"
}

# --- The image beside a memcached, on a network of their own. -----------
t=$SECONDS
version=$(podman run --rm "$IMAGE" --version) || fail "$IMAGE --version"
say "image: $version"
hc=$(podman image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
case $hc in
*'"mcfault","--health","127.0.0.1:11211"'*) ;;
*) fail "the image has no HEALTHCHECK of mcfault --health: $hc" ;;
esac
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[ "$user" = "10001:10001" ] || fail "image USER is '$user', want 10001:10001"
podman run --rm "$IMAGE" --check-config /etc/mcfault/example.yaml \
    >/dev/null || fail "--check-config /etc/mcfault/example.yaml"

podman network create "$net" >/dev/null
# memcached keeps its addresses (IP and MAC) when it is stopped and started
# again below. On a new IP, or the same IP with a new MAC that mcfault's
# network namespace has not learnt yet, connects hang until the kernel
# gives up on them (25 s and more here): the network's doing, not the image.
subnet=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}}{{end}}' \
    "$net")
mc_ip=${subnet%.*}.10
mc_port=$(free_port)
port=$(free_port)
podman run -d --name mcfault-test-memcached --network "$net" --ip "$mc_ip" \
    --mac-address 02:6d:63:66:00:0a --network-alias memcached \
    -p "127.0.0.1:$mc_port:11211" \
    "$MEMCACHED" memcached -m 64 >/dev/null
# The image's own defaults: listen 0.0.0.0:11211, upstream memcached:11211.
quiet_podman run -d --name mcfault-test-mcfault --network "$net" \
    -p "127.0.0.1:$port:11211" \
    -v "$PWD/conf/example.yaml:/etc/mcfault/rules.yaml:ro" \
    -e MCFAULT_CONFIG=/etc/mcfault/rules.yaml "$IMAGE" -v >/dev/null
wait_version "$mc_port" || fail "memcached did not start"
wait_version "$port" || fail "mcfault did not start"

key="container:$$"
exchange "$port" "set $key 0 0 5\r\nhello\r\nget $key\r\n" \
    "STORED\r\nVALUE $key 0 5\r\nhello\r\nEND\r\n" ||
    fail "set/get through the mcfault container"
exchange "$mc_port" "get $key\r\n" "VALUE $key 0 5\r\nhello\r\nEND\r\n" ||
    fail "the value set through mcfault is not in memcached"
exchange "$port" "set fault:oom:1 0 0 2\r\nhi\r\n" \
    "SERVER_ERROR out of memory storing object\r\n" ||
    fail "the mounted rule demo-oom did not fire"
exchange "$port" "set fault:evicted:1 0 0 2\r\nhi\r\nget fault:evicted:1\r\n" \
    "STORED\r\nEND\r\n" || fail "the mounted rule demo-evicted did not fire"
# (grep reads all of it: with -q, podman logs would die of SIGPIPE.)
podman logs mcfault-test-mcfault 2>&1 | grep -c "rule 'demo-oom' error" \
    >/dev/null || fail "mcfault's log does not show the demo-oom fault"
say "traffic and faults through the container: ok"

# The process itself, as the host sees it.
pid=$(podman inspect --format '{{.State.Pid}}' mcfault-test-mcfault)
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
[ "$uid" = 10001 ] || fail "mcfault runs as uid $uid, want 10001"
say "process: uid $uid ($(podman top mcfault-test-mcfault user args |
    tail -n 1 | tr -s ' '))"

rc=$(health mcfault-test-mcfault)
[ "$rc" = 0 ] || fail "healthcheck with memcached up: exit $rc, want 0"
quiet_podman stop mcfault-test-memcached >/dev/null
rc=$(health mcfault-test-mcfault)
[ "$rc" = 1 ] || fail "healthcheck with memcached stopped: exit $rc, want 1"
# (The status turns "unhealthy" only after --retries=3 such runs in a row,
# 3 s each here: the check's connect to a stopped container hangs.)
quiet_podman start mcfault-test-memcached >/dev/null
wait_version "$mc_port" || fail "memcached did not start again"
rc=1
for _ in $(seq 10); do
    rc=$(health mcfault-test-mcfault)
    [ "$rc" != 0 ] || break
    sleep 1
done
[ "$rc" = 0 ] || fail "healthcheck after memcached came back: exit $rc"
say "HEALTHCHECK: healthy, unhealthy with memcached stopped, healthy again"

# SIGTERM (podman stop), with a client connection open.
python3 -c 'import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(30)' "$port" &
client=$!
sleep 0.2
t0=$(date +%s%N)
quiet_podman stop --time "$STOP_TIMEOUT" mcfault-test-mcfault >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
kill "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true
code=$(podman inspect --format '{{.State.ExitCode}}' mcfault-test-mcfault)
[ "$code" = 0 ] || fail "mcfault exited $code after SIGTERM, want 0"
((stop_ms < STOP_TIMEOUT * 1000)) ||
    fail "podman stop took $stop_ms ms: SIGTERM did not stop mcfault"
podman logs mcfault-test-mcfault 2>&1 | grep -c 'signal 15: stopping' \
    >/dev/null || fail "mcfault's log does not show the SIGTERM"
say "SIGTERM: exit 0 after $stop_ms ms"
podman rm --force --time 0 mcfault-test-mcfault mcfault-test-memcached \
    >/dev/null 2>&1
podman network rm "$net" >/dev/null
smoke_s=$((SECONDS - t))

size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
base=$(podman image inspect --format '{{.Size}}' \
    docker.io/library/debian:12-slim)
say "image size: $(awk -v i="$IMAGE" -v s="$size" -v b="$base" 'BEGIN {
    printf "%s %.1f MB (the debian:12-slim stand-in %.1f MB, so mcfault " \
        "adds %.1f MB)", i, s / 1e6, b / 1e6, (s - b) / 1e6 }')"

# --- docs/docker-compose.example.yml, as it is. ----------------------------
t=$SECONDS
for p in "${COMPOSE_PORTS[@]}"; do
    python3 -c 'import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$p" \
        2>/dev/null ||
        fail "127.0.0.1:$p is taken; the compose example publishes it"
done
compose_up=1
# Without --build: the images are those built above (podman-compose would
# build in the OCI format, which drops HEALTHCHECK).
timeout 120 podman-compose -f "$COMPOSE" -p "$PROJECT" up -d \
    >"$work/compose-up.log" 2>&1 || {
    cat "$work/compose-up.log" >&2
    fail "podman-compose up"
}

# Every 2 s the app prints a round of four lines and "-": wait for a whole
# round after the first one (mcfault may not answer the very first).
app=${PROJECT}_app_1
python3 - "$app" "$work/app.log" <<'EOF' || fail "the demo app's output"
import re, subprocess, sys, time
app, out = sys.argv[1], sys.argv[2]
want = [
    r"user:1 +ok +get -> b'hello' in \d+ ms",
    r"fault:oom:1 +ERROR MemcacheServerError: b'out of memory storing object'",
    r"fault:evicted:1 +ok +get -> None in \d+ ms",
    r"fault:slow:1 +ok +get -> b'hello' in (\d+) ms",
]
deadline = time.monotonic() + 40
text = ""
while time.monotonic() < deadline:
    text = subprocess.run(["podman", "logs", app], capture_output=True,
                          text=True).stdout
    rounds = text.split("-\n")[:-1]
    for r in rounds[1:]:
        lines = r.strip().splitlines()
        if len(lines) == 4 and all(re.fullmatch(w, l)
                                   for w, l in zip(want, lines)):
            slow = int(re.fullmatch(want[3], lines[3]).group(1))
            if slow < 800:
                sys.exit("fault:slow:1 took %d ms, want >= 800 "
                         "(two commands of 500 +- 100 ms)" % slow)
            print(r.strip())
            sys.exit(0)
    time.sleep(0.5)
open(out, "w").write(text)
sys.exit("no round of the demo app's output shows the four results "
         "after 40 s; its output:\n" + text)
EOF
mlog=$(podman logs "${PROJECT}_mcfault_1" 2>&1)
for rule in demo-oom demo-evicted demo-slow; do
    grep -q "rule '$rule'" <<<"$mlog" ||
        fail "the compose mcfault's log does not show rule $rule"
done
rc=$(health "${PROJECT}_mcfault_1")
[ "$rc" = 0 ] || fail "compose mcfault healthcheck: exit $rc, want 0"
# Published on the host as the example says: the proxy and the admin API.
exchange 11212 "set fault:oom:host 0 0 2\r\nhi\r\n" \
    "SERVER_ERROR out of memory storing object\r\n" ||
    fail "the compose mcfault on 127.0.0.1:11212"
python3 -c 'import json, urllib.request
r = json.load(urllib.request.urlopen("http://127.0.0.1:8080/rules", timeout=5))
assert "demo-oom" in json.dumps(r), r' ||
    fail "the compose mcfault's admin API on 127.0.0.1:8080"
say "compose: the app's output shows the faults, mcfault's log each rule," \
    "healthy, 11212 and 8080 published"

# docker compose down gives each container 10 s after SIGTERM,
# podman-compose down 1 s: mcfault's own stop first, as docker's would be.
quiet_podman stop --time "$STOP_TIMEOUT" "${PROJECT}_mcfault_1" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "${PROJECT}_mcfault_1")
[ "$code" = 0 ] || fail "the compose mcfault exited $code on SIGTERM"
timeout 120 podman-compose -f "$COMPOSE" -p "$PROJECT" down \
    >"$work/compose-down.log" 2>&1 || {
    cat "$work/compose-down.log" >&2
    fail "podman-compose down"
}
compose_up=0
left=$(podman ps -a -q --filter "label=io.podman.compose.project=$PROJECT")
[ -z "$left" ] || fail "podman-compose down left containers: $left"
# (podman-compose 1.0 leaves the project's network; docker compose not.)
podman network rm "${PROJECT}_default" >/dev/null
compose_s=$((SECONDS - t))

say "ok: images ${build_s} s, image tests ${smoke_s} s," \
    "compose ${compose_s} s, all $((SECONDS - start_all)) s"

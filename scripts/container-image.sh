#!/usr/bin/env bash
# Builds the container images with podman where no image registry is
# reachable: a debian:12-slim stand-in made with debootstrap, the
# Dockerfile's mcfault image on it, and the stand-ins for the other images
# of docs/docker-compose.example.yml. tests/container/run.sh runs this;
# docs/docker.md says how to use the result by hand.
#
# Usage: scripts/container-image.sh [--podman-dir DIR] [--no-standins]
#                                    [--setup-only]
#   --podman-dir DIR  podman's storage, network and configuration under DIR
#                     (made if missing), for this run and for anyone who
#                     sources DIR/env afterwards; without it, podman as
#                     configured for the caller
#   --no-standins     only the base and the mcfault image
#   --setup-only      only write DIR's configuration (with --podman-dir)
# Environment:
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   archive URIs for the base (by
#       default those this machine's apt uses for bookworm and
#       bookworm-security)
#   IMAGE=mcfault:local                     the mcfault image's name
set -euo pipefail

SUITE=bookworm
BASE=docker.io/library/debian:12-slim
IMAGE=${IMAGE:-mcfault:local}
COMPOSE=docs/docker-compose.example.yml
# Measured on our machines: podman 4.3 cannot set the ulimits it asks for
# by default (nofile 1048576; an nproc near the host's is refused too),
# and crun fails on the hybrid cgroup layout.
NPROC_LIMIT=4096
NOFILE_CAP=65536

usage() {
    sed -n '8,21s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

log() {
    echo "container-image: $*"
}

die() {
    echo "container-image: $*" >&2
    exit 1
}

# Writes DIR/storage.conf, DIR/containers.conf and DIR/env (which exports
# both), then exports them here.
podman_dir_setup() {
    local dir=$1 nofile
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    nofile=$(ulimit -Hn)
    if [ "$nofile" = unlimited ] || ((nofile > NOFILE_CAP)); then
        nofile=$NOFILE_CAP
    fi
    cat >"$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
    cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$NPROC_LIMIT:$NPROC_LIMIT"]

[engine]
runtime = "runc"

[network]
network_backend = "netavark"
network_config_dir = "$dir/networks"
EOF
    cat >"$dir/env" <<EOF
# Source this to use the podman of scripts/container-image.sh --podman-dir.
export CONTAINERS_STORAGE_CONF=$dir/storage.conf
export CONTAINERS_CONF=$dir/containers.conf
EOF
    # shellcheck source=/dev/null
    . "$dir/env"
}

# The archive URI this machine's apt uses for suite $1 ("" when none).
apt_uri() {
    # shellcheck disable=SC2016 # apt's $(FIELD) placeholders, not shell
    apt-get indextargets --format '$(RELEASE) $(REPO_URI)' \
        'Identifier: Packages' 2>/dev/null |
        awk -v s="$1" '$1 == s { print $2; exit }'
}

# debootstrap --variant=minbase, then what turns that into debian:12-slim
# (debuerreotype's slimify and minimizing-config): no documentation, man
# pages or translations, apt's docker tweaks, deb822 sources, no lists.
base_build() {
    local mirror=${DEBIAN_MIRROR:-$(apt_uri "$SUITE")}
    local security=${DEBIAN_SECURITY_MIRROR:-$(apt_uri "$SUITE-security")}
    [ -n "$mirror" ] ||
        die "no Debian archive known: set DEBIAN_MIRROR (apt has no $SUITE)"
    [ -n "$security" ] || security=${mirror%/debian*}/debian-security
    command -v debootstrap >/dev/null ||
        die "debootstrap is not installed (apt-get install debootstrap)"
    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" EXIT
    log "debootstrap --variant=minbase $SUITE from $mirror"
    local start=$SECONDS
    if ! debootstrap --variant=minbase "$SUITE" "$root" "$mirror" \
        >"$root.log" 2>&1; then
        tail -n 20 "$root.log" >&2
        rm -f "$root.log"
        die "debootstrap failed"
    fi
    rm -f "$root.log"
    log "debootstrap took $((SECONDS - start)) s"

    cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' \
        >"$root/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' \
        >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
    rm -f "$root/etc/apt/sources.list"
    cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${mirror%/}
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${security%/}
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # What dpkg would not have installed under those excludes (copyright
    # files stay), and what debootstrap leaves behind.
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright \
        -not -type d -delete
    find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$root"/usr/share/{groff,info,linda,locale,man}/* \
        "$root"/usr/share/lintian/overrides/* \
        "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* \
        "$root"/var/cache/debconf/*-old "$root"/var/log/* \
        "$root"/tmp/* "$root"/etc/hostname "$root"/etc/resolv.conf
    mkdir -p "$root/var/lib/apt/lists/partial" \
        "$root/var/cache/apt/archives/partial"

    tar --numeric-owner -C "$root" -c . |
        podman import --quiet --change 'CMD ["bash"]' \
            --message "debootstrap --variant=minbase $SUITE, slimmed" \
            - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
}

# $1 as a registry names it: Docker Hub for a short name, as a client
# resolving "memcached:1.6" would pull it.
qualify() {
    local first=${1%%/*}
    case $1 in
    */*)
        case $first in
        *.* | *:* | localhost) echo "$1" ;;
        *) echo "docker.io/$1" ;;
        esac
        ;;
    *) echo "docker.io/library/$1" ;;
    esac
}

# The image names docs/docker-compose.example.yml uses, one a line.
compose_images() {
    sed -n 's/^[[:space:]]*image:[[:space:]]*\([^[:space:]#]*\).*/\1/p' \
        "$COMPOSE"
}

podman_dir=""
standins=1
setup_only=0
while (($# > 0)); do
    case $1 in
    --podman-dir)
        (($# >= 2)) || usage
        podman_dir=$2
        shift
        ;;
    --no-standins) standins=0 ;;
    --setup-only) setup_only=1 ;;
    -h | --help) usage ;;
    *)
        echo "container-image: unknown argument '$1'" >&2
        usage
        ;;
    esac
    shift
done
cd "$(dirname "$0")/.."
command -v podman >/dev/null ||
    die "podman is not installed (apt-get install podman runc)"
if [ -n "$podman_dir" ]; then
    podman_dir_setup "$podman_dir"
fi
if ((setup_only)); then
    [ -n "$podman_dir" ] || usage
    exit 0
fi

start=$SECONDS
if podman image exists "$BASE"; then
    log "$BASE is there already (podman rmi it to make it anew)"
else
    base_build
fi

# --format docker: the OCI format has no HEALTHCHECK, and podman would
# drop it. --pull=never: the base is the one above, never a registry's.
# --network host: apt-get in RUN reaches the archive only from the host's
# network on our machines (a bridge resolves no outside names).
build=(podman build --pull=never --format docker --network host)
log "podman build -t $IMAGE (the Dockerfile)"
t=$SECONDS
"${build[@]}" -t "$IMAGE" -f Dockerfile .
log "the mcfault image took $((SECONDS - t)) s"

if ((standins)); then
    # One image stands in for both: Debian's memcached, and Debian's
    # python3 with pymemcache for the application (tests/container/).
    names=()
    while read -r name; do
        case ${name##*/} in
        memcached:* | python:*) names+=("$(qualify "$name")") ;;
        "${IMAGE##*/}") ;;
        *) die "$COMPOSE uses image $name, for which there is no stand-in" ;;
        esac
    done < <(compose_images)
    log "podman build stand-ins: ${names[*]}"
    t=$SECONDS
    tags=()
    for name in "${names[@]}"; do
        tags+=(-t "$name")
    done
    "${build[@]}" "${tags[@]}" \
        -f tests/container/standin.Containerfile tests/container
    log "the stand-ins took $((SECONDS - t)) s"
fi
log "done in $((SECONDS - start)) s"
podman images --filter dangling=false

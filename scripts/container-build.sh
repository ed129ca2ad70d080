#!/usr/bin/env bash
# The container image's build steps (the Dockerfile's build stage runs this),
# also run by CI on the host because no Docker engine runs there: a Release
# build in a build directory of its own, installed under DESTDIR with prefix
# /usr/local, then the binary's shared libraries and the Debian packages
# that provide them, checked against the Dockerfile's RUNTIME_PACKAGES.
#
# Usage: scripts/container-build.sh [--install-deps] DESTDIR
#        scripts/container-build.sh --deps-only
#   --install-deps  first install the build dependencies with apt-get
#                   (sudo when not root), skipped when all are there
#   --deps-only     only that (the Dockerfile caches it as its own layer)
# Environment:
#   BUILD_DIR=build-container   cmake build directory (relative to the repo)
#   JOBS=$(nproc)               parallel compile jobs
set -euo pipefail

# What a Release build needs on Debian 12: no cmocka, Python or clang (the
# tests are off).
BUILD_PKGS=(cmake make gcc libc6-dev pkg-config libevent-dev libyaml-dev)
# In every Debian image, so the Dockerfile does not list them.
BASE_PKGS=(libc6 libgcc-s1)

usage() {
    sed -n '8,15s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

install_deps() {
    local missing=() p
    for p in "${BUILD_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "ok installed" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    echo "container-build: installing ${missing[*]}"
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y \
        --no-install-recommends "${missing[@]}"
}

# The Debian package owning a library path ("" when dpkg does not know it).
# ldd prints /lib/... paths; with merged /usr dpkg may know only /usr/lib.
owner_of() {
    local path=$1 real cand
    real=$(readlink -f "$path")
    for cand in "$path" "$real" "/usr${path#/usr}" "${real#/usr}"; do
        if dpkg-query -S "$cand" >/dev/null 2>&1; then
            dpkg-query -S "$cand" 2>/dev/null | head -n1 | cut -d: -f1
            return 0
        fi
    done
    echo ""
}

install=0
deps_only=0
destdir=""
while (($# > 0)); do
    case $1 in
    --install-deps) install=1 ;;
    --deps-only) deps_only=1 ;;
    -h | --help) usage ;;
    -*)
        echo "container-build: unknown option '$1'" >&2
        usage
        ;;
    *)
        [ -z "$destdir" ] || usage
        destdir=$1
        ;;
    esac
    shift
done
if ((deps_only)); then
    install_deps
    exit 0
fi
[ -n "$destdir" ] || usage
# Relative to where we were called from, before the cd below.
destdir=$(realpath -m "$destdir")
cd "$(dirname "$0")/.."
root=$(pwd)

if ((install)); then
    install_deps
fi

build=${BUILD_DIR:-build-container}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMCFAULT_TESTS=OFF \
    -DMCFAULT_FUZZ=OFF -DMCFAULT_SANITIZE=OFF -DCMAKE_INSTALL_PREFIX=/usr/local
cmake --build "$build" -j "${JOBS:-$(nproc)}"
DESTDIR=$destdir cmake --install "$build" --strip

bin=$destdir/usr/local/bin/mcfault
if [ ! -x "$bin" ]; then
    echo "container-build: $bin was not installed" >&2
    exit 1
fi
"$bin" --version
echo "installed under $destdir:"
(cd "$destdir" && find . -type f | sed 's|^\.|  |' | sort)
man=$destdir/usr/local/share/man/man1/mcfault.1
if [ ! -f "$man" ]; then
    echo "  (no man page installed yet: CMakeLists.txt does not install" \
        "docs/mcfault.1)"
fi

echo "shared libraries of usr/local/bin/mcfault (ldd):"
mapfile -t libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
if ldd "$bin" | grep -q "not found"; then
    ldd "$bin" >&2
    echo "container-build: unresolved shared libraries" >&2
    exit 1
fi
if ! command -v dpkg-query >/dev/null; then
    printf '  %s\n' "${libs[@]}"
    echo "(no dpkg here: runtime packages not checked)"
    exit 0
fi

# The runtime stage's package list, from the Dockerfile's one
# 'ARG RUNTIME_PACKAGES="..."' line.
runtime=""
if [ -f "$root/Dockerfile" ]; then
    runtime=$(sed -n 's/^ARG RUNTIME_PACKAGES="\(.*\)"[[:space:]]*$/\1/p' \
        "$root/Dockerfile")
fi
need=()
for lib in "${libs[@]}"; do
    pkg=$(owner_of "$lib")
    printf '  %-45s %s\n' "$lib" "${pkg:-(no Debian package)}"
    [ -n "$pkg" ] || continue
    case " ${BASE_PKGS[*]} ${need[*]} " in
    *" $pkg "*) ;;
    *) need+=("$pkg") ;;
    esac
done
echo "runtime packages needed (beyond ${BASE_PKGS[*]}): ${need[*]:-none}"
if [ -z "$runtime" ]; then
    echo "(no ARG RUNTIME_PACKAGES line in Dockerfile: not checked)"
    exit 0
fi
echo "Dockerfile RUNTIME_PACKAGES: $runtime"
status=0
for pkg in "${need[@]}"; do
    case " $runtime " in
    *" $pkg "*) ;;
    *)
        echo "container-build: $pkg is needed at run time but missing from" \
            "RUNTIME_PACKAGES in Dockerfile" >&2
        status=1
        ;;
    esac
done
for pkg in $runtime; do
    case " ${need[*]} " in
    *" $pkg "*) ;;
    *) echo "note: RUNTIME_PACKAGES lists $pkg, which no library needs" ;;
    esac
done
exit "$status"

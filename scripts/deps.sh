#!/usr/bin/env bash
# Installs what mcfault needs to build, test and benchmark on Debian 12,
# skipping the apt run when everything is already there. With --run: only
# what building and running it beside a memcached needs (the quick start).
set -euo pipefail

RUN_PKGS=(build-essential cmake pkg-config libevent-dev libyaml-dev memcached)

PKGS=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libevent-dev libyaml-dev libcmocka-dev memcached libmemcached-tools
      python3 python3-pymemcache python3-pylibmc nutcracker strace valgrind
      python3-pytest python3-setuptools python3-wheel mypy
      golang-go golang-github-bradfitz-gomemcache-dev nodejs
      default-jdk-headless openjdk-17-jdk-headless junit5 python3-yaml
      chromium)

# The container test (tests/container/run.sh), without podman's recommends.
CONTAINER_PKGS=(podman runc netavark aardvark-dns podman-compose debootstrap
                debian-archive-keyring iptables)

if [ "${1:-}" = --run ]; then
    PKGS=("${RUN_PKGS[@]}")
    CONTAINER_PKGS=()
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
# npm: a Node.js from Debian needs Debian's npm; one that brings its own
# (nodesource) must not get Debian's, which would replace it.
if [ "${1:-}" != --run ]; then
    command -v npm >/dev/null || missing+=(npm)
    # kubectl for tests/k8s, unless another package owns /usr/bin/kubectl
    # (then the test unpacks Debian's .deb itself).
    dpkg -S /usr/bin/kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
fi
missing_c=()
for p in "${CONTAINER_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing_c+=("$p")
done
if ((${#missing[@]} == 0 && ${#missing_c[@]} == 0)); then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing: ${missing[*]} ${missing_c[*]}"
$SUDO apt-get update
if ((${#missing[@]} > 0)); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi
if ((${#missing_c[@]} > 0)); then
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y \
        --no-install-recommends "${missing_c[@]}"
fi

#!/usr/bin/env bash
# Installs what mcfault needs to build, test and benchmark on Debian 12,
# skipping the apt run when everything is already there.
set -euo pipefail

PKGS=(build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
      libevent-dev libyaml-dev libcmocka-dev memcached libmemcached-tools
      python3 python3-pymemcache nutcracker strace valgrind)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing: ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"

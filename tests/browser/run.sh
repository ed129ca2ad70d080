#!/usr/bin/env bash
# The dashboard (GET / on the admin port) in a real browser: Debian's
# Chromium, headless, driven by puppeteer-core (installed from npm into a
# temporary directory, at a pinned version). Exit code 0 when every check
# of dashboard.test.cjs passed.
# Usage: tests/browser/run.sh
#   MCFAULT_BIN           the mcfault to test (default build-test/mcfault)
#   CHROMIUM              default /usr/bin/chromium (apt-get install chromium)
#   MEMCACHED_BIN         default /usr/bin/memcached
#   DASHBOARD_SCREENSHOT  where the screenshot goes (default
#                         build-browser/dashboard.png; docs/dashboard.png
#                         to refresh the documentation's)
#   PUPPETEER_DIR         a directory to install puppeteer-core in and keep
#                         (default: a temporary one, removed at the end)
set -euo pipefail
cd "$(dirname "$0")/../.."

PUPPETEER_VERSION=24.43.1 # engines: node >= 18, as Debian 12's nodejs

bin=${MCFAULT_BIN:-build-test/mcfault}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
export MCFAULT_BIN=$bin
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export MEMCACHED_BIN=${MEMCACHED_BIN:-/usr/bin/memcached}
export DASHBOARD_SCREENSHOT=${DASHBOARD_SCREENSHOT:-build-browser/dashboard.png}

for tool in node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "tests/browser: $tool not found (apt-get install nodejs npm)" >&2
        exit 1
    fi
done
for f in "$MCFAULT_BIN" "$CHROMIUM" "$MEMCACHED_BIN"; do
    if [ ! -x "$f" ]; then
        echo "tests/browser: $f is missing or not executable" >&2
        exit 1
    fi
done

if [ -n "${PUPPETEER_DIR:-}" ]; then
    dir=$PUPPETEER_DIR
    mkdir -p "$dir"
else
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
pkg=$dir/node_modules/puppeteer-core
have=$(node -p "try { require('$pkg/package.json').version } catch { '' }")
if [ "$have" != "$PUPPETEER_VERSION" ]; then
    echo "tests/browser: npm install puppeteer-core@$PUPPETEER_VERSION"
    # Its own npm cache, so that nothing outside $dir is written.
    npm install --prefix "$dir" --cache "$dir/.npm" --no-save --no-audit \
        --no-fund --no-package-lock --loglevel=error \
        "puppeteer-core@$PUPPETEER_VERSION"
fi
export PUPPETEER_CORE=$pkg

browser=$("$CHROMIUM" --version 2>/dev/null | head -1)
echo "tests/browser: node $(node --version), $browser, mcfault $MCFAULT_BIN"
node tests/browser/dashboard.test.cjs

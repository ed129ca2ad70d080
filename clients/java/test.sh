#!/usr/bin/env bash
# Builds the Java client with javac and runs its JUnit 5 tests against a real
# memcached and a real mcfault ($MCFAULT_BIN, default ../../build/mcfault).
# Debian packages: default-jdk-headless junit5 memcached. Downloads nothing.
# Extra arguments go to the JUnit console launcher (--select-class ..., ...).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# A relative MCFAULT_BIN is relative to where we were called from.
MCFAULT_BIN=${MCFAULT_BIN:-$here/../../build/mcfault}
[[ $MCFAULT_BIN == /* ]] || MCFAULT_BIN=$PWD/$MCFAULT_BIN
export MCFAULT_BIN
cd "$here"
jars=/usr/share/java
launcher=$jars/junit-platform-console-standalone.jar

missing=()
command -v javac >/dev/null || missing+=("javac (default-jdk-headless)")
[[ -f $launcher && -f $jars/junit-jupiter-api.jar ]] || missing+=("JUnit 5 jars (junit5)")
[[ -x ${MEMCACHED_BIN:-/usr/bin/memcached} ]] || missing+=("memcached (memcached)")
[[ -x $MCFAULT_BIN ]] || missing+=("mcfault at $MCFAULT_BIN (build it, or set MCFAULT_BIN)")
if ((${#missing[@]})); then
    printf 'clients/java/test.sh: missing: %s\n' "${missing[@]}" >&2
    exit 1
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/mcfault-java.XXXXXX")
trap 'rm -rf "$out"' EXIT
api_cp=$jars/junit-jupiter-api.jar:$jars/apiguardian-api.jar:$jars/opentest4j.jar:$jars/junit-platform-commons.jar
test_cp=$api_cp:$jars/junit-jupiter-params.jar:$jars/junit-platform-launcher.jar:$jars/junit-platform-engine.jar

echo "== javac: the library alone, no classpath (it needs nothing but the JDK)"
mapfile -t core < <(find src/main/java -name '*.java' -not -path '*/junit/*' | sort)
javac --release 17 -Xlint:all -Werror -d "$out/core" "${core[@]}"

echo "== javac: library + JUnit extension (junit-jupiter-api from $jars)"
mapfile -t main < <(find src/main/java -name '*.java' | sort)
javac --release 17 -Xlint:all -Werror -d "$out/main" -cp "$api_cp" "${main[@]}"

echo "== javadoc: the public API's comments are well formed (doclint)"
javadoc -quiet -Werror -Xdoclint:all,-missing -d "$out/doc" -cp "$api_cp" "${main[@]}" >/dev/null

echo "== javac: tests"
mapfile -t tests < <(find src/test/java -name '*.java' | sort)
javac --release 17 -Xlint:all -Xlint:-try -Werror -d "$out/test" -cp "$out/main:$test_cp" "${tests[@]}"

echo "== junit: every test under dev.mcfault, mcfault=$MCFAULT_BIN ($("$MCFAULT_BIN" --version 2>&1 | head -1))"
colors=()
[[ -t 1 ]] || colors=(--disable-ansi-colors)
timeout "${MCFAULT_JAVA_TEST_TIMEOUT:-900}" java -jar "$launcher" \
    --class-path "$out/main:$out/test" --select-package dev.mcfault \
    --fail-if-no-tests --disable-banner --details=tree "${colors[@]}" "$@"

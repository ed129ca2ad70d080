#!/usr/bin/env bash
# Checks the Kubernetes manifests of deploy/kubernetes with real tools, no
# cluster needed (docs/kubernetes.md, "What CI checks"):
#   1. kustomize build, by the kubectl of Debian 12's kubernetes-client;
#   2. every object against the Kubernetes v1.33 API schemas
#      (kubernetes-models from npm, pinned by tests/k8s/package-lock.json),
#      unknown fields included (schema.cjs);
#   3. references between the objects and the sidecar's command line, and
#      the security and resource settings of every container (check_refs.py);
#   4. the sidecar's own arguments run with this build's mcfault against a
#      real memcached: the ConfigMap's rules, each probe, the metrics
#      scrape, a ConfigMap update as the kubelet makes it (rehearse.py);
#   5. that 2 and 3 catch a list of deliberate breaks (selftest.py).
#
# Usage: tests/k8s/validate.sh
# Environment: MCFAULT_BIN (default build/mcfault), MEMCACHED_BIN (default
# memcached), K8S_WORK (tools and outputs, default build-k8s-validate),
# KUBECTL (a kubectl to use instead of Debian 12's).
# Needs python3-yaml, node and npm, memcached, and apt-get's package lists
# (apt-get update) the first time: kubernetes-client is fetched with
# apt-get download and unpacked under K8S_WORK, not installed, so that it
# cannot clash with another kubectl on the machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${MCFAULT_BIN:-$root/build/mcfault}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
work=${K8S_WORK:-$root/build-k8s-validate}
case $work in /*) ;; *) work=$PWD/$work ;; esac
memcached=${MEMCACHED_BIN:-memcached}
# Debian's python3, where python3-yaml is.
py=/usr/bin/python3
# Never a cluster: kustomize needs none, and nothing here may reach one.
export KUBECONFIG=/dev/null

fail() {
    echo "k8s: FAIL: $*" >&2
    exit 1
}

[ -x "$bin" ] || fail "no mcfault at $bin (set MCFAULT_BIN)"
command -v "$memcached" >/dev/null ||
    fail "no memcached (apt-get install memcached)"
"$py" -c 'import yaml' 2>/dev/null ||
    fail "no python3-yaml (apt-get install python3-yaml)"
command -v node >/dev/null || fail "no node (apt-get install nodejs)"
command -v npm >/dev/null || fail "no npm (apt-get install npm)"
mkdir -p "$work"

# Debian 12's kubectl (1.20.2, kustomize v2.0.3), unpacked once.
kubectl=${KUBECTL:-}
if [ -z "$kubectl" ]; then
    if [ "$(dpkg-query -W -f='${Status}' kubernetes-client 2>/dev/null)" = \
        "install ok installed" ]; then
        kubectl=/usr/bin/kubectl
    else
        kubectl=$work/kubernetes-client/usr/bin/kubectl
        if [ ! -x "$kubectl" ]; then
            rm -rf "$work/deb" "$work/kubernetes-client"
            mkdir -p "$work/deb"
            if ! (cd "$work/deb" && apt-get download kubernetes-client) \
                >"$work/deb/apt.log" 2>&1; then
                cat "$work/deb/apt.log" >&2
                fail "apt-get download kubernetes-client" \
                    "(apt-get update first?)"
            fi
            deb=$(ls "$work"/deb/kubernetes-client_*.deb)
            dpkg-deb -x "$deb" "$work/kubernetes-client"
        fi
    fi
fi
echo "k8s: $("$kubectl" version --client --short 2>/dev/null ||
    "$kubectl" version --client)"

# 1. The build.
"$kubectl" kustomize "$root/deploy/kubernetes" >"$work/built.yaml" ||
    fail "kubectl kustomize deploy/kubernetes"
"$py" - "$work/built.yaml" "$work/built.json" <<'EOF'
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]
if not all(isinstance(d, dict) for d in docs):
    sys.exit("k8s: the build holds a document that is not a mapping")
json.dump(docs, open(sys.argv[2], "w"), indent=1)
print("k8s: kustomize build: " + ", ".join(
    "%s/%s" % (d["kind"], d["metadata"]["name"]) for d in docs))
EOF

# 2. The schemas: kubernetes-models at the lockfile's versions.
npm_dir=$work/npm
stamp=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum)
if [ "$(cat "$npm_dir/.installed" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$npm_dir"
    mkdir -p "$npm_dir"
    cp "$here/package.json" "$here/package-lock.json" "$npm_dir/"
    (cd "$npm_dir" && npm ci --ignore-scripts --no-audit --no-fund \
        --loglevel=error) || fail "npm ci in $npm_dir"
    echo "$stamp" >"$npm_dir/.installed"
fi
export NODE_PATH=$npm_dir/node_modules
node "$here/schema.cjs" "$work/built.json" ||
    fail "objects that the Kubernetes schemas refuse (above)"

# 3. References, sidecar wiring, security and resources.
"$py" "$here/check_refs.py" "$work/built.json" "$root/Dockerfile" ||
    fail "references between the objects (above)"

# 4. The sidecar's command line, run here.
"$py" "$here/rehearse.py" "$work/built.json" "$bin" "$memcached" ||
    fail "the sidecar's rehearsal (above)"

# 5. The checks of 2 and 3 catch what they are meant to.
"$py" "$here/selftest.py" "$work/built.json" "$root/Dockerfile" node \
    "$here/schema.cjs" || fail "a deliberate break went unnoticed (above)"
echo "k8s: deploy/kubernetes ok"

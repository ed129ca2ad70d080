#!/usr/bin/env python3
"""tests/k8s/selftest.py: proves the checks of validate.sh can fail.

Breaks the kustomize build one way at a time (a misspelt field, a wrong
type, a renamed ConfigMap, a Service that selects nothing, a probe on the
wrong address, ...) and checks that schema.cjs or check_refs.py reports
each break with the expected words, and that the unbroken build passes.

Usage: selftest.py BUILT.json DOCKERFILE NODE SCHEMA_CJS
(NODE_PATH must let node find kubernetes-models.)
"""

import copy
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_refs  # noqa: E402


def get(objs, kind, name):
    return next(o for o in objs
                if o["kind"] == kind and o["metadata"]["name"] == name)


def pod(objs, name="app"):
    return get(objs, "Deployment", name)["spec"]["template"]


def sidecar(objs):
    return next(c for c in pod(objs)["spec"]["initContainers"]
                if c["name"] == "mcfault")


def app(objs):
    return next(c for c in pod(objs)["spec"]["containers"]
                if c["name"] == "app")


def set_arg(objs, option, value):
    args = sidecar(objs)["args"]
    args[args.index(option) + 1] = value


def drop_arg(objs, option):
    sidecar(objs)["args"].remove(option)


def rename(objs, kind, name, new):
    get(objs, kind, name)["metadata"]["name"] = new


# (what is broken, how, words the report must contain)
SCHEMA_BREAKS = [
    ("a misspelt field",
     lambda o: sidecar(o).__setitem__(
         "readinesProbe", sidecar(o).pop("readinessProbe")),
     "unknown field 'readinesProbe'"),
    ("a field in the wrong place",
     lambda o: pod(o)["spec"].__setitem__("replicas", 2),
     "unknown field 'replicas'"),
    ("a string for an integer",
     lambda o: get(o, "Deployment", "app")["spec"].__setitem__(
         "replicas", "2"),
     "/spec/replicas must be integer"),
    ("a value outside an enum",
     lambda o: sidecar(o).__setitem__("imagePullPolicy", "Sometimes"),
     "must be equal to one of the allowed values"),
    ("a malformed quantity",
     lambda o: sidecar(o)["resources"]["limits"].__setitem__(
         "memory", "128 MB"),
     'must match format "quantity"'),
    ("a missing required field",
     lambda o: sidecar(o).pop("name"),
     "must have required property name"),
    ("a misspelt kind",
     lambda o: get(o, "Service", "memcached").__setitem__(
         "kind", "Servce"),
     "no schema for apiVersion 'v1' kind 'Servce'"),
]

REFS_BREAKS = [
    ("an object name the API refuses",
     lambda o: rename(o, "Service", "memcached", "memcached_1"),
     "Service/memcached_1: not a valid name"),
    ("a port name over 15 characters",
     lambda o: sidecar(o)["ports"][0].__setitem__("name", "mcfault-metrics1"),
     "port name 'mcfault-metrics1' is not an IANA service name"),
    ("a removed API version",
     lambda o: get(o, "Deployment", "memcached").__setitem__(
         "apiVersion", "extensions/v1beta1"),
     "Deployment/memcached: apiVersion 'extensions/v1beta1'"),
    ("the ConfigMap renamed",
     lambda o: rename(o, "ConfigMap", "mcfault-rules", "rules"),
     "ConfigMap 'mcfault-rules' is not in the build"),
    ("-c outside the mounted directory",
     lambda o: set_arg(o, "-c", "/etc/rules.yaml"),
     "nothing is mounted at the directory of -c /etc/rules.yaml"),
    ("-c naming a key the ConfigMap lacks",
     lambda o: set_arg(o, "-c", "/etc/mcfault/rules.yml"),
     "gives no file for -c /etc/mcfault/rules.yml"),
    ("the rules mounted with subPath",
     lambda o: sidecar(o)["volumeMounts"][0].__setitem__(
         "subPath", "rules.yaml"),
     "mounted with subPath"),
    ("no --watch-config",
     lambda o: drop_arg(o, "--watch-config"),
     "no --watch-config"),
    ("an option mcfault lacks",
     lambda o: sidecar(o)["args"].append("--watch"),
     "unknown mcfault option '--watch'"),
    ("-u naming no Service",
     lambda o: set_arg(o, "-u", "cache:11211"),
     "no Service 'cache'"),
    ("-u on a port the Service lacks",
     lambda o: set_arg(o, "-u", "memcached:11212"),
     "Service 'memcached' has no port 11212"),
    ("a Service selecting nothing",
     lambda o: get(o, "Service", "memcached")["spec"]["selector"].__setitem__(
         "app.kubernetes.io/name", "memcache"),
     "selects no pods"),
    ("a Service targeting a missing port",
     lambda o: get(o, "Service", "mcfault-metrics")["spec"]["ports"][0]
     .__setitem__("targetPort", "admin"),
     "targetPort admin is no container port"),
    ("a selector the pod labels do not match",
     lambda o: get(o, "Deployment", "memcached")["spec"]["selector"][
         "matchLabels"].__setitem__("tier", "cache"),
     "does not match the pod labels"),
    ("a probe on another address than -l",
     lambda o: set_arg(o, "-l", "127.0.0.1:11212"),
     "want ['mcfault', '--health', '127.0.0.1:11212']"),
    ("a probe running a program the image lacks",
     lambda o: sidecar(o)["readinessProbe"]["exec"].__setitem__(
         "command", ["nc", "-z", "127.0.0.1", "11211"]),
     "which image 'mcfault:local' is not known to have"),
    ("an exec probe shorter than --health's wait",
     lambda o: sidecar(o)["readinessProbe"].__setitem__("timeoutSeconds", 1),
     "timeoutSeconds must exceed"),
    ("the app pointed elsewhere",
     lambda o: app(o)["env"][0].__setitem__("value", "memcached:11211"),
     "no other container has an environment value naming mcfault"),
    ("the admin port without the annotation",
     lambda o: set_arg(o, "--admin", "0.0.0.0:9090"),
     "prometheus.io/port is '8080', want '9090'"),
    ("the admin API on loopback",
     lambda o: set_arg(o, "--admin", "127.0.0.1:8080"),
     "loopback only"),
    ("a writable root filesystem",
     lambda o: sidecar(o)["securityContext"].__setitem__(
         "readOnlyRootFilesystem", False),
     "readOnlyRootFilesystem is not true"),
    ("privilege escalation allowed",
     lambda o: app(o)["securityContext"].pop("allowPrivilegeEscalation"),
     "allowPrivilegeEscalation is not false"),
    ("capabilities kept",
     lambda o: sidecar(o)["securityContext"]["capabilities"].__setitem__(
         "drop", []),
     "capabilities must drop ALL"),
    ("root allowed",
     lambda o: pod(o)["spec"]["securityContext"].pop("runAsNonRoot"),
     "runAsNonRoot is not true"),
    ("memcached's user by name only",
     lambda o: pod(o, "memcached")["spec"]["securityContext"].pop(
         "runAsUser"),
     "runAsUser must be a non-zero uid"),
    ("another uid than the image's",
     lambda o: sidecar(o)["securityContext"].__setitem__("runAsUser", 1000),
     "differs from the image's USER 10001"),
    ("no resource requests",
     lambda o: sidecar(o)["resources"].pop("requests"),
     "no resources.requests.cpu"),
    ("no memory limit",
     lambda o: app(o)["resources"].pop("limits"),
     "no resources.limits.memory"),
    ("an unpinned image",
     lambda o: pod(o, "memcached")["spec"]["containers"][0].__setitem__(
         "image", "memcached"),
     "has no pinned tag"),
]


def main(argv):
    if len(argv) != 5:
        print("usage: selftest.py BUILT.json DOCKERFILE NODE SCHEMA_CJS",
              file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        built = json.load(f)
    with open(argv[2]) as f:
        dockerfile = f.read()
    failed = []

    problems = check_refs.check(built, dockerfile)
    if problems:
        failed.append(f"the unbroken build: {problems}")
    for what, breaks, words in REFS_BREAKS:
        objs = copy.deepcopy(built)
        breaks(objs)
        problems = check_refs.check(objs, dockerfile)
        if not any(words in p for p in problems):
            failed.append(f"references, {what}: no '{words}' in {problems}")

    with tempfile.TemporaryDirectory(prefix="mcfault-k8s-self-") as tmp:
        files = []
        for i, (what, breaks, words) in enumerate(SCHEMA_BREAKS):
            objs = copy.deepcopy(built)
            breaks(objs)
            files.append(os.path.join(tmp, f"break{i}.json"))
            with open(files[-1], "w") as f:
                json.dump(objs, f)
        out = subprocess.run([argv[3], argv[4], *files], capture_output=True,
                             text=True)
        if out.returncode != 1:
            failed.append(f"schema.cjs exited {out.returncode} on broken "
                          f"builds: {out.stderr.strip()}")
        for path, (what, _, words) in zip(files, SCHEMA_BREAKS):
            lines = [ln for ln in out.stdout.splitlines()
                     if ln.startswith(path + ": ")]
            if not any(words in ln for ln in lines):
                failed.append(f"schema, {what}: no '{words}' in {lines}")

    total = len(REFS_BREAKS) + len(SCHEMA_BREAKS) + 1
    for f in failed:
        print(f"selftest: FAIL: {f}")
    print(f"selftest: {len(SCHEMA_BREAKS)} schema breaks, "
          f"{len(REFS_BREAKS)} reference breaks, the unbroken build")
    print(f"selftest: {total - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

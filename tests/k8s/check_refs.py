#!/usr/bin/env python3
"""tests/k8s/check_refs.py: what a schema cannot see in deploy/kubernetes.

References between objects (the ConfigMap a pod mounts, the Service
mcfault's -u names, what each Service selects and targets), the sidecar's
command line against the pod around it (rule file, probes, admin port,
Prometheus annotations, the app's address), and the house rules for every
container (non-root, read-only root, no privilege escalation, no
capabilities, resource requests, pinned images).

Usage: check_refs.py BUILT.json DOCKERFILE
Prints one line per problem; exits 0 when there is none, 1 otherwise.
"""

import json
import posixpath
import re
import sys

WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")

# The API version of each kind the base may use: the stable ones, served by
# every Kubernetes since 1.16 (the schemas also know removed versions).
API_VERSIONS = {
    "ConfigMap": "v1", "Service": "v1", "Secret": "v1",
    "ServiceAccount": "v1", "Deployment": "apps/v1",
    "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
}

# mcfault's options (src/main.c): name -> takes a value.
MCFAULT_OPTIONS = {
    "-l": True, "--listen": True, "-u": True, "--upstream": True,
    "-c": True, "--config": True, "--admin": True, "--event-log": True,
    "--log-file": True, "--grace": True, "--max-connections": True,
    "--watch-config": False, "-v": False, "-vv": False, "--verbose": False,
}
OPTION_ALIASES = {"--listen": "-l", "--upstream": "-u", "--config": "-c"}

# GET paths of the admin API (docs/admin-api.md) a probe may use.
ADMIN_GET_PATHS = ("/health", "/rules", "/stats", "/metrics", "/events")

# What the API server's validation wants of names (the schemas do not say):
# DNS-1123 subdomains for most objects, DNS-1035 labels for Services,
# DNS-1123 labels for containers, IANA service names for ports.
DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]+(-[a-z0-9]+)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")

QUANTITY = re.compile(r"^([0-9.]+)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
SCALE = {None: 1, "m": 1e-3, "k": 1e3, "Ki": 2**10, "M": 1e6, "Mi": 2**20,
         "G": 1e9, "Gi": 2**30, "T": 1e12, "Ti": 2**40}


def quantity(text):
    """A resource quantity as a number, or None when it is not one."""
    m = QUANTITY.match(str(text))
    if m is None:
        return None
    return float(m.group(1)) * SCALE[m.group(2)]


def split_hostport(text):
    """'host:port' or '[v6]:port' -> (host, port as int); None if bad."""
    m = re.match(r"^\[([^]]+)\]:([0-9]+)$|^([^:]+):([0-9]+)$", text or "")
    if m is None:
        return None
    host = m.group(1) or m.group(3)
    return host, int(m.group(2) or m.group(4))


def image_repo(image):
    """'registry/path/name:tag' -> 'name'."""
    name = image.rsplit("/", 1)[-1]
    return name.split("@", 1)[0].split(":", 1)[0]


def image_tag(image):
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "@digest"
    return name.split(":", 1)[1] if ":" in name else None


def parse_mcfault_args(args, problems, where):
    """mcfault's argv (without argv[0]) -> {option: value or True}."""
    opts = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, value = arg, None
        if arg.startswith("--") and "=" in arg:
            name, value = arg.split("=", 1)
        if name not in MCFAULT_OPTIONS:
            problems.append(f"{where}: unknown mcfault option '{arg}'")
            i += 1
            continue
        if MCFAULT_OPTIONS[name] and value is None:
            if i + 1 >= len(args):
                problems.append(f"{where}: option '{arg}' needs a value")
                break
            value = args[i + 1]
            i += 1
        opts[OPTION_ALIASES.get(name, name)] = (
            value if MCFAULT_OPTIONS[name] else True)
        i += 1
    return opts


def dockerfile_facts(text):
    """The mcfault image's USER uid and ENTRYPOINT program."""
    user = re.search(r"^USER\s+([0-9]+)", text, re.M)
    entry = re.search(r'^ENTRYPOINT\s+\[\s*"([^"]+)"', text, re.M)
    return (int(user.group(1)) if user else None,
            entry.group(1) if entry else None)


class Checker:
    def __init__(self, objs, dockerfile):
        self.objs = objs
        self.problems = []
        self.uid, self.entrypoint = dockerfile_facts(dockerfile)
        self.by_kind = {}
        for o in objs:
            self.by_kind.setdefault(o.get("kind"), {})[
                o.get("metadata", {}).get("name")] = o

    def problem(self, text):
        self.problems.append(text)

    def workloads(self):
        for kind in WORKLOADS:
            for name, o in sorted(self.by_kind.get(kind, {}).items()):
                yield f"{kind}/{name}", o

    # -- the objects themselves ------------------------------------------

    def check_ids(self):
        seen = set()
        for o in self.objs:
            ident = (o.get("kind"), o.get("metadata", {}).get("name"))
            if None in ident or not o.get("apiVersion"):
                self.problem(f"{ident}: apiVersion, kind and name needed")
            if ident in seen:
                self.problem(f"{ident[0]}/{ident[1]}: defined twice")
            seen.add(ident)
            name = ident[1] or ""
            pattern = (DNS1035_LABEL if ident[0] == "Service"
                       else DNS1123_SUBDOMAIN)
            if not pattern.match(name) or len(name) > 253:
                self.problem(f"{ident[0]}/{name}: not a valid name")
            for k, v in o.get("metadata", {}).get("labels", {}).items():
                if not LABEL_VALUE.match(str(v)):
                    self.problem(f"{ident[0]}/{name}: label {k}: bad value "
                                 f"{v!r}")
            want = API_VERSIONS.get(ident[0])
            if want is None:
                self.problem(f"{ident[0]}/{ident[1]}: kind not known to "
                             "these checks (add it to API_VERSIONS)")
            elif o.get("apiVersion") != want:
                self.problem(f"{ident[0]}/{ident[1]}: apiVersion "
                             f"'{o.get('apiVersion')}', want '{want}'")

    def pods_selected(self, selector):
        """The workloads whose pod labels include every selector label."""
        out = []
        for where, w in self.workloads():
            labels = w["spec"]["template"]["metadata"].get("labels", {})
            if selector and all(labels.get(k) == v
                                for k, v in selector.items()):
                out.append((where, w))
        return out

    def check_workload(self, where, w):
        spec = w["spec"]
        labels = spec["template"]["metadata"].get("labels", {})
        match = spec.get("selector", {}).get("matchLabels", {})
        if not match or any(labels.get(k) != v for k, v in match.items()):
            self.problem(f"{where}: selector.matchLabels {match} does not "
                         f"match the pod labels {labels}")
        pod = spec["template"]["spec"]
        containers = pod.get("initContainers", []) + pod["containers"]
        names = [c["name"] for c in containers]
        if len(set(names)) != len(names):
            self.problem(f"{where}: container names repeat: {names}")
        for n in names:
            if not DNS1123_LABEL.match(n):
                self.problem(f"{where}: container name '{n}' is not a "
                             "DNS label")
        for c in containers:
            for p in c.get("ports", []):
                if "name" in p and not PORT_NAME.match(p["name"]):
                    self.problem(f"{where}: port name '{p['name']}' is not "
                                 "an IANA service name (15 characters)")
        ports = {}
        for c in containers:
            for p in c.get("ports", []):
                key = p["containerPort"]
                if key in ports:
                    self.problem(f"{where}: port {key} declared by "
                                 f"{ports[key]} and {c['name']}")
                ports[key] = c["name"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in containers:
            cwhere = f"{where} container {c['name']}"
            self.check_container(cwhere, c, pod)
            self.check_mounts(cwhere, c, volumes)
            self.check_probes(cwhere, c)
        for v in volumes.values():
            self.check_volume(f"{where} volume {v['name']}", v)
        for c in containers:
            if image_repo(c["image"]) == "mcfault":
                self.check_mcfault(f"{where} container {c['name']}", c, w,
                                   containers, volumes)

    def check_container(self, where, c, pod):
        psc = pod.get("securityContext", {})
        sc = c.get("securityContext", {})

        def either(key):
            return sc.get(key, psc.get(key))

        if either("runAsNonRoot") is not True:
            self.problem(f"{where}: runAsNonRoot is not true")
        uid = either("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            self.problem(f"{where}: runAsUser must be a non-zero uid (the "
                         "kubelet cannot check a user name), got {uid}")
        if sc.get("allowPrivilegeEscalation") is not False:
            self.problem(f"{where}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            self.problem(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("privileged"):
            self.problem(f"{where}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []) or caps.get("add"):
            self.problem(f"{where}: capabilities must drop ALL, add none")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile")
                   or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            self.problem(f"{where}: no seccompProfile RuntimeDefault")
        res = c.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        for key in ("cpu", "memory"):
            if quantity(req.get(key)) is None:
                self.problem(f"{where}: no resources.requests.{key}")
        if quantity(lim.get("memory")) is None:
            self.problem(f"{where}: no resources.limits.memory")
        for key in ("cpu", "memory"):
            r, m = quantity(req.get(key)), quantity(lim.get(key))
            if r is not None and m is not None and r > m:
                self.problem(f"{where}: requests.{key} over limits.{key}")
        tag = image_tag(c["image"])
        if tag in (None, "latest"):
            self.problem(f"{where}: image '{c['image']}' has no pinned tag")

    def check_mounts(self, where, c, volumes):
        for m in c.get("volumeMounts", []):
            v = volumes.get(m["name"])
            if v is None:
                self.problem(f"{where}: mounts volume '{m['name']}', which "
                             "the pod does not have")
            elif "configMap" in v and m.get("subPath"):
                self.problem(f"{where}: ConfigMap volume '{m['name']}' "
                             "mounted with subPath: it would never be "
                             "updated")

    def check_volume(self, where, v):
        cm = v.get("configMap")
        if cm is None:
            return
        target = self.by_kind.get("ConfigMap", {}).get(cm.get("name"))
        if target is None:
            if not cm.get("optional"):
                self.problem(f"{where}: ConfigMap '{cm.get('name')}' is not "
                             "in the build")
            return
        keys = set(target.get("data", {})) | set(target.get("binaryData",
                                                            {}))
        for item in cm.get("items", []):
            if item["key"] not in keys:
                self.problem(f"{where}: ConfigMap '{cm['name']}' has no key "
                             f"'{item['key']}'")

    def port_of(self, c, port):
        """A probe's port (name or number) -> number, or None."""
        for p in c.get("ports", []):
            if port in (p.get("name"), p["containerPort"]):
                return p["containerPort"]
        return None

    def check_probes(self, where, c):
        is_mcfault = image_repo(c["image"]) == "mcfault"
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if probe is None:
                continue
            pwhere = f"{where} {kind}"
            if "exec" in probe:
                cmd = probe["exec"].get("command", [])
                if not (is_mcfault and cmd and cmd[0] == self.entrypoint):
                    self.problem(f"{pwhere}: runs {cmd[:1]}, which image "
                                 f"'{c['image']}' is not known to have")
            for handler in ("httpGet", "tcpSocket"):
                if handler in probe and self.port_of(
                        c, probe[handler]["port"]) is None:
                    self.problem(f"{pwhere}: port {probe[handler]['port']} "
                                 "is not a port of the container")

    # -- the sidecar -----------------------------------------------------

    def check_mcfault(self, where, c, w, containers, volumes):
        if c.get("command"):
            self.problem(f"{where}: command replaces the image's "
                         "entrypoint; give args only")
        opts = parse_mcfault_args(c.get("args", []), self.problems, where)
        if self.uid is not None and c.get("securityContext", {}).get(
                "runAsUser", self.uid) != self.uid:
            self.problem(f"{where}: runAsUser differs from the image's "
                         f"USER {self.uid}")
        self.check_rule_file(where, c, opts, volumes)
        listen = split_hostport(opts.get("-l"))
        if listen is None:
            self.problem(f"{where}: no -l ADDR:PORT")
        else:
            self.check_health_probes(where, c, listen)
            self.check_clients(where, c, containers, listen)
        self.check_upstream(where, opts.get("-u"))
        self.check_admin(where, c, w, opts.get("--admin"))

    def check_rule_file(self, where, c, opts, volumes):
        path = opts.get("-c")
        if path is None:
            self.problem(f"{where}: no -c rule file")
            return
        if "--watch-config" not in opts:
            self.problem(f"{where}: no --watch-config: a ConfigMap edit "
                         "would not reach the running mcfault")
        mounts = [m for m in c.get("volumeMounts", [])
                  if posixpath.dirname(path) == m["mountPath"].rstrip("/")]
        if not mounts:
            self.problem(f"{where}: nothing is mounted at the directory of "
                         f"-c {path}")
            return
        v = volumes.get(mounts[0]["name"], {})
        cm = self.by_kind.get("ConfigMap", {}).get(
            v.get("configMap", {}).get("name"))
        if cm is None:
            self.problem(f"{where}: -c {path} is not on a ConfigMap volume "
                         "of the build")
            return
        key = posixpath.basename(path)
        items = v["configMap"].get("items")
        if items:
            key = next((i["key"] for i in items if i["path"] == key), None)
        if key not in cm.get("data", {}):
            self.problem(f"{where}: ConfigMap '{cm['metadata']['name']}' "
                         f"gives no file for -c {path}")

    def check_health_probes(self, where, c, listen):
        host, port = listen
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        want = ["mcfault", "--health",
                f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
        if "readinessProbe" not in c or "livenessProbe" not in c:
            self.problem(f"{where}: needs a readiness and a liveness probe")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind, {})
            if "exec" in probe and probe["exec"]["command"] != want:
                self.problem(f"{where} {kind}: runs "
                             f"{probe['exec']['command']}, want {want} "
                             "(-l is " f"{host}:{port})")
            if "exec" in probe and probe.get("timeoutSeconds", 1) <= 3:
                self.problem(f"{where} {kind}: timeoutSeconds must exceed "
                             "--health's own 3 s")

    def check_clients(self, where, c, containers, listen):
        """Another container of the pod must be pointed at mcfault."""
        _, port = listen
        wants = {f"127.0.0.1:{port}", f"localhost:{port}"}
        for other in containers:
            if other is c:
                continue
            for env in other.get("env", []):
                if env.get("value") in wants:
                    return
        self.problem(f"{where}: no other container has an environment "
                     f"value naming mcfault's address (127.0.0.1:{port}; "
                     "-l is the listen address)")

    def check_upstream(self, where, upstream):
        hp = split_hostport(upstream)
        if hp is None:
            self.problem(f"{where}: no -u HOST:PORT")
            return
        host, port = hp
        name = host.split(".", 1)[0]
        svc = self.by_kind.get("Service", {}).get(name)
        if svc is None:
            self.problem(f"{where}: -u {upstream}: no Service '{name}' in "
                         "the build")
            return
        if port not in [p["port"] for p in svc["spec"].get("ports", [])]:
            self.problem(f"{where}: -u {upstream}: Service '{name}' has no "
                         f"port {port}")

    def check_admin(self, where, c, w, admin):
        hp = split_hostport(admin)
        if hp is None:
            self.problem(f"{where}: no --admin ADDR:PORT (needed for "
                         "/metrics and per-pod rule changes)")
            return
        host, port = hp
        named = [p for p in c.get("ports", []) if p["containerPort"] == port]
        if not named or named[0].get("name") != "metrics":
            self.problem(f"{where}: --admin port {port} is not declared as "
                         "the container port named 'metrics'")
        ann = w["spec"]["template"]["metadata"].get("annotations", {})
        want = {"prometheus.io/scrape": "true",
                "prometheus.io/port": str(port),
                "prometheus.io/path": "/metrics"}
        for k, v in want.items():
            if ann.get(k) != v:
                self.problem(f"{where}: pod annotation {k} is "
                             f"{ann.get(k)!r}, want {v!r} (--admin {admin})")
        if host in ("127.0.0.1", "::1", "localhost"):
            self.problem(f"{where}: --admin {admin} is loopback only: "
                         "Prometheus cannot scrape it")
        probe = c.get("livenessProbe", {}).get("httpGet")
        if probe is not None:
            if self.port_of(c, probe["port"]) != port:
                self.problem(f"{where} livenessProbe: httpGet port "
                             f"{probe['port']} is not the admin port {port}")
            if probe.get("path") not in ADMIN_GET_PATHS:
                self.problem(f"{where} livenessProbe: {probe.get('path')} "
                             "is no GET path of the admin API")

    # -- Services --------------------------------------------------------

    def check_service(self, where, s):
        selector = s["spec"].get("selector", {})
        selected = self.pods_selected(selector)
        if not selected:
            self.problem(f"{where}: selector {selector} selects no pods of "
                         "the build")
        names = [p.get("name") for p in s["spec"].get("ports", [])]
        if len(set(names)) != len(names):
            self.problem(f"{where}: port names repeat: {names}")
        for n in names:
            if n is not None and not PORT_NAME.match(n):
                self.problem(f"{where}: port name '{n}' is not an IANA "
                             "service name (15 characters)")
        for p in s["spec"].get("ports", []):
            target = p.get("targetPort", p["port"])
            for wwhere, w in selected:
                pod = w["spec"]["template"]["spec"]
                cs = pod.get("initContainers", []) + pod["containers"]
                if not any(self.port_of(c, target) for c in cs):
                    self.problem(f"{where}: port {p.get('name')}: "
                                 f"targetPort {target} is no container port "
                                 f"of {wwhere}")

    def run(self):
        self.check_ids()
        for where, w in self.workloads():
            self.check_workload(where, w)
        for name, s in sorted(self.by_kind.get("Service", {}).items()):
            self.check_service(f"Service/{name}", s)
        if not any(image_repo(c["image"]) == "mcfault"
                   for _, w in self.workloads()
                   for c in w["spec"]["template"]["spec"].get(
                       "initContainers", []) +
                   w["spec"]["template"]["spec"]["containers"]):
            self.problem("no workload has an mcfault container")
        return self.problems


def check(objs, dockerfile):
    """Problems of a kustomize build (a list of objects), as strings."""
    try:
        return Checker(objs, dockerfile).run()
    except (KeyError, TypeError, AttributeError) as e:
        # A shape the schema check reports better; say where it broke.
        return [f"malformed build ({type(e).__name__}: {e})"]


def main(argv):
    if len(argv) != 3:
        print("usage: check_refs.py BUILT.json DOCKERFILE", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        objs = json.load(f)
    with open(argv[2]) as f:
        dockerfile = f.read()
    problems = check(objs, dockerfile)
    for p in problems:
        print(p)
    print(f"references: {len(objs)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

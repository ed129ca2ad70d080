#!/usr/bin/env python3
"""tests/k8s/rehearse.py: the mcfault sidecar of deploy/kubernetes, run here.

Takes the sidecar's container from the kustomize build and runs its own
argument list with this machine's mcfault, changing only the addresses (to
free loopback ports, memcached's Service to a real memcached started here)
and the rule file's directory (to a copy laid out as the kubelet lays out a
ConfigMap volume). Then, as a kubelet and a Prometheus would: runs each
probe as written (exec commands with the binary's directory on PATH,
httpGet against the admin port), scrapes the annotated metrics path,
checks that the ConfigMap's rules are in force, updates the ConfigMap the
way the kubelet does (a new timestamped directory, the ..data symlink
swapped by rename) and waits for mcfault to reload it, swaps in a broken
file and checks the rules are kept, stops memcached (readiness must fail,
liveness must not), and stops mcfault with SIGTERM (exit 0).

Usage: rehearse.py BUILT.json MCFAULT_BIN [MEMCACHED_BIN]
Exits 0 when every step passed; stops everything it started.
"""

import http.client
import json
import os
import posixpath
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_refs import image_repo, split_hostport  # noqa: E402

RELOAD_WAIT = 5.0  # seconds for a reload to show (debounce is 200 ms)
REHEARSAL_RULE = {
    "name": "k8s-rehearsal",
    "key": "k8s-rehearsal:*",
    "action": "error",
    "message": "SERVER_ERROR k8s rehearsal",
}


class Failed(Exception):
    pass


def step(text):
    print(f"rehearse: {text}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Failed(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failed(f"{what}: nothing accepts on 127.0.0.1:{port} after 10 s")


def exchange(port, request, timeout=5):
    """Sends request, returns the first reply line (or what came before a
    close or the timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(request)
    got = b""
    try:
        while b"\r\n" not in got:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        pass
    s.close()
    return got


def http_get(port, path, timeout):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type", ""), r.read()
    finally:
        c.close()


def find_sidecar(objs):
    for o in objs:
        if o.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
            continue
        pod = o["spec"]["template"]
        for c in pod["spec"].get("initContainers", []) + \
                pod["spec"]["containers"]:
            if image_repo(c["image"]) == "mcfault":
                return o, pod, c
    raise Failed("no mcfault container in the build")


class ConfigMapVolume:
    """A directory laid out as the kubelet's atomic writer does."""

    def __init__(self, root):
        self.root = root
        self.generation = 0
        self.current = None
        os.makedirs(root)

    def write(self, files):
        self.generation += 1
        ts = "..2026_01_01_00_00_%02d.%09d" % (self.generation % 60,
                                               self.generation)
        os.mkdir(os.path.join(self.root, ts))
        for name, text in files.items():
            with open(os.path.join(self.root, ts, name), "w") as f:
                f.write(text)
        tmp = os.path.join(self.root, "..data_tmp")
        os.symlink(ts, tmp)
        os.rename(tmp, os.path.join(self.root, "..data"))
        for name in files:
            link = os.path.join(self.root, name)
            if not os.path.islink(link):
                os.symlink(posixpath.join("..data", name), link)
        if self.current is not None:
            shutil.rmtree(os.path.join(self.root, self.current))
        self.current = ts


class Rehearsal:
    def __init__(self, objs, mcfault, memcached, work):
        self.objs = objs
        self.bin = os.path.abspath(mcfault)
        self.memcached = memcached
        self.work = work
        self.procs = []
        self.log = os.path.join(work, "mcfault.log")

    def start(self, argv, out, what, **kw):
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
                p.wait()

    def run(self):
        w, pod, c = find_sidecar(self.objs)
        where = f"{w['kind']}/{w['metadata']['name']} container {c['name']}"
        step(f"{where}: mcfault {' '.join(c.get('args', []))}")
        args = list(c.get("args", []))

        # The rule file: the ConfigMap volume mounted at -c's directory.
        ci = args.index("-c") if "-c" in args else args.index("--config")
        rule_path = args[ci + 1]
        mount = next(m for m in c.get("volumeMounts", [])
                     if m["mountPath"].rstrip("/") ==
                     posixpath.dirname(rule_path))
        vol = next(v for v in pod["spec"]["volumes"]
                   if v["name"] == mount["name"])
        cm = next(o for o in self.objs if o["kind"] == "ConfigMap" and
                  o["metadata"]["name"] == vol["configMap"]["name"])
        files = dict(cm.get("data", {}))
        cmvol = ConfigMapVolume(os.path.join(self.work, "configmap"))
        cmvol.write(files)
        local_rules = os.path.join(cmvol.root, posixpath.basename(rule_path))
        out = subprocess.run([self.bin, "--check-config", local_rules],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise Failed(f"mcfault --check-config on ConfigMap "
                         f"'{cm['metadata']['name']}':\n{out.stdout}"
                         f"{out.stderr}")
        m = re.search(r"(\d+) rules?", out.stdout)
        nrules = int(m.group(1))
        step(f"ConfigMap {cm['metadata']['name']}: {out.stdout.strip()}")

        # memcached, standing in for the Service -u names.
        mc_port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.mc = self.start([self.memcached, *user, "-l", "127.0.0.1", "-p",
                              str(mc_port), "-U", "0", "-t", "1"],
                             subprocess.DEVNULL, "memcached")
        wait_port(mc_port, self.mc, "memcached")

        # The sidecar's own arguments, addresses and rule path moved here.
        i = args.index("-l") if "-l" in args else args.index("--listen")
        listen = split_hostport(args[i + 1])
        port = free_port()
        args[i + 1] = f"127.0.0.1:{port}"
        i = args.index("-u") if "-u" in args else args.index("--upstream")
        args[i + 1] = f"127.0.0.1:{mc_port}"
        i = args.index("--admin")
        admin_port = split_hostport(args[i + 1])[1]
        local_admin = free_port()
        args[i + 1] = f"127.0.0.1:{local_admin}"
        args[ci + 1] = local_rules
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MCFAULT_")}
        for e in c.get("env", []):
            env[e["name"]] = e["value"]
        with open(self.log, "w") as log:
            self.mcf = self.start([self.bin, *args], log, "mcfault", env=env)
        wait_port(port, self.mcf, "mcfault")
        wait_port(local_admin, self.mcf, "mcfault admin")
        step(f"running: mcfault {' '.join(args)}")

        def local(argv):
            """A probe's argv with the pod's addresses moved here."""
            out = []
            for a in argv:
                hp = split_hostport(a)
                if hp is not None and hp[1] == listen[1]:
                    a = f"127.0.0.1:{port}"
                out.append(a)
            return out

        ports = {p.get("name"): p["containerPort"]
                 for p in c.get("ports", [])}

        def probe(kind, want_ok=True):
            pr = c[kind]
            timeout = pr.get("timeoutSeconds", 1)
            if "exec" in pr:
                argv = local(pr["exec"]["command"])
                path = os.path.dirname(self.bin) + os.pathsep + \
                    env.get("PATH", "")
                try:
                    rc = subprocess.run(argv, env={**env, "PATH": path},
                                        timeout=timeout,
                                        capture_output=True).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
                ok, what = rc == 0, f"exec {' '.join(argv)}: {rc}"
            elif "httpGet" in pr:
                hg = pr["httpGet"]
                p = ports.get(hg["port"], hg["port"])
                if p != admin_port:
                    raise Failed(f"{kind}: httpGet port {hg['port']} is not "
                                 "the admin port")
                try:
                    status = http_get(local_admin, hg.get("path", "/"),
                                      timeout)[0]
                except OSError as e:
                    status = str(e)
                ok = isinstance(status, int) and 200 <= status < 400
                what = f"GET {hg.get('path', '/')}: {status}"
            else:
                raise Failed(f"{kind}: no exec or httpGet handler")
            if ok != want_ok:
                raise Failed(f"{kind}: {what}, want "
                             f"{'success' if want_ok else 'failure'}")
            step(f"{kind}: {what} ({'passes' if ok else 'fails'})")

        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in c:
                probe(kind)

        ann = pod["metadata"].get("annotations", {})
        status, ctype, body = http_get(local_admin,
                                       ann["prometheus.io/path"], 5)
        if status != 200 or not ctype.startswith("text/plain") or \
                b"mcfault_build_info" not in body:
            raise Failed(f"scrape {ann['prometheus.io/path']}: {status} "
                         f"{ctype}")
        step(f"scrape {ann['prometheus.io/path']}: {status}, "
             f"{body.count(b'# TYPE')} metric families")

        self.expect_rules(local_admin, nrules, "the ConfigMap's rules")
        key = b"k8s-rehearsal:1"
        setcmd = b"set " + key + b" 0 0 2\r\nhi\r\n"
        if exchange(port, setcmd, 2) != b"STORED\r\n":
            raise Failed("a set through mcfault was not STORED")

        # A ConfigMap edit, delivered as the kubelet delivers it.
        doc = yaml.safe_load(files[posixpath.basename(rule_path)]) or {}
        doc.setdefault("rules", []).append(REHEARSAL_RULE)
        files[posixpath.basename(rule_path)] = yaml.safe_dump(doc)
        cmvol.write(files)
        self.expect_rules(local_admin, nrules + 1, "after a ConfigMap update")
        got = exchange(port, setcmd, 2)
        if got != REHEARSAL_RULE["message"].encode() + b"\r\n":
            raise Failed(f"the updated rules do not apply: {got!r}")
        step("ConfigMap update: reloaded, the new rule fires")

        files[posixpath.basename(rule_path)] = "rules: [\n"
        cmvol.write(files)
        self.wait_log("reload: failed", "a broken ConfigMap")
        self.expect_rules(local_admin, nrules + 1, "after a broken update")
        step("broken ConfigMap: reload failed, the rules are kept")

        self.mc.kill()
        self.mc.wait()
        if "readinessProbe" in c:
            probe("readinessProbe", want_ok=False)
        if "livenessProbe" in c:
            probe("livenessProbe", want_ok="exec" not in c["livenessProbe"])

        self.mcf.send_signal(signal.SIGTERM)
        try:
            rc = self.mcf.wait(timeout=10)
        except subprocess.TimeoutExpired:
            raise Failed("mcfault still runs 10 s after SIGTERM")
        if rc != 0:
            raise Failed(f"mcfault exited {rc} on SIGTERM")
        step("SIGTERM: exit 0")

    def expect_rules(self, admin, n, what):
        deadline = time.monotonic() + RELOAD_WAIT
        while True:
            _, _, body = http_get(admin, "/rules", 5)
            got = sum(len(p["rules"]) for p in json.loads(body)["proxies"])
            if got == n:
                return
            if time.monotonic() > deadline:
                raise Failed(f"{what}: GET /rules shows {got} rules, want "
                             f"{n}")
            time.sleep(0.05)

    def wait_log(self, text, what):
        deadline = time.monotonic() + RELOAD_WAIT
        while time.monotonic() < deadline:
            with open(self.log) as f:
                if text in f.read():
                    return
            time.sleep(0.05)
        raise Failed(f"{what}: no '{text}' in mcfault's log")


def main(argv):
    if len(argv) not in (3, 4):
        print("usage: rehearse.py BUILT.json MCFAULT_BIN [MEMCACHED_BIN]",
              file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        objs = json.load(f)
    memcached = argv[3] if len(argv) == 4 else "memcached"
    work = tempfile.mkdtemp(prefix="mcfault-k8s-")
    r = Rehearsal(objs, argv[2], memcached, work)
    try:
        r.run()
    except (Failed, StopIteration, ValueError, KeyError) as e:
        print(f"rehearse: FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        if os.path.exists(r.log):
            with open(r.log) as f:
                lines = f.read().splitlines()
            if len(lines) > 30:
                lines = lines[:10] + ["..."] + lines[-20:]
            print("--- mcfault log:", *lines, sep="\n", file=sys.stderr)
        return 1
    finally:
        r.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print("rehearse: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

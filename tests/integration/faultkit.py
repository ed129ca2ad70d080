# Helpers shared by the fault-rule tests (test_rules.py, test_reload.py,
# test_pymemcache_faults.py, test_config_cli.py): rule files in temporary
# directories, raw exchanges through mcfault and directly with memcached,
# waiting for log lines, reading the event log. Stdlib only.

import json
import os
import re
import socket
import tempfile
import time

import harness


def write_file(tc, text, name='rules.yaml', directory=None):
    """Writes text into a new temporary directory (removed at cleanup) and
    returns the file's path."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix='mcfault-it-')
        tc.addCleanup(_rmtree, directory)
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def write_class_file(cls, text, name='rules.yaml'):
    directory = tempfile.mkdtemp(prefix='mcfault-it-')
    cls.addClassCleanup(_rmtree, directory)
    path = os.path.join(directory, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def start_with_rules(cls, rules, args=()):
    """For a test class: a memcached (cls.up) and an mcfault (cls.mcfault)
    in front of it with the rule file text `rules` (cls.cfg) and any more
    args, both stopped at class cleanup."""
    cls.up = harness.start_memcached_for_class(cls)
    cls.cfg = write_class_file(cls, rules)
    cls.mcfault = harness.start_mcfault_for_class(
        cls, cls.up.port, ['-c', cls.cfg] + list(args))


def start_with_admin(cls, rules):
    """start_with_rules, with the admin API on cls.admin."""
    cls.admin = harness.free_port()
    start_with_rules(cls, rules, ['--admin', str(cls.admin)])
    harness.wait_port(cls.admin, 10, cls.mcfault.proc, 'admin API')


def newer_action_rules(prefix):
    """Rule-file lines (inside `rules:`) with one rule per newer action
    and close mode, each on keys "PREFIX:<what>:*" (rst, rstf, thr, sl,
    cut, cutw, cutr, rot, rotw, ev) plus writes over 512KiB refused: the
    table the pymemcache and pylibmc fault tests share."""
    return _NEWER_ACTION_RULES.format(p=prefix)


_NEWER_ACTION_RULES = '''  - {{name: reset, key: "{p}:rst:*", action: drop, close: reset}}
  - {{name: reset-fwd, command: set, key: "{p}:rstf:*", action: drop,
     close: reset, forward: true}}
  - {{name: throttle, key: "{p}:thr:*", action: throttle, rate: 200KiB/s}}
  - {{name: slice, key: "{p}:sl:*", action: slice, size: 1-16, interval: 1ms}}
  - {{name: cut, command: [get, gets], key: "{p}:cut:*", action: truncate,
     keep: 50%}}
  - {{name: cut-write, command: set, key: "{p}:cutw:*", action: truncate,
     keep: 3}}
  - {{name: cut-reset, key: "{p}:cutr:*", action: truncate, keep: 20,
     close: reset}}
  - {{name: rot, command: [get, gets], key: "{p}:rot:*", action: corrupt,
     flips: 3}}
  - {{name: rot-write, command: set, key: "{p}:rotw:*", action: corrupt,
     flips: 2}}
  - {{name: evict, key: "{p}:ev:*", action: evict}}
  - {{name: too-big, command: [set, add, replace, cas], min_size: 512KiB,
     action: error, message: SERVER_ERROR object too large for cache}}
'''


def replace_file(path, text):
    """Replaces path's content atomically (a reload never sees half a
    file)."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def _rmtree(d):
    for root, dirs, files in os.walk(d, topdown=False):
        for n in files:
            try:
                os.unlink(os.path.join(root, n))
            except OSError:
                pass
        for n in dirs:
            try:
                os.rmdir(os.path.join(root, n))
            except OSError:
                pass
    try:
        os.rmdir(d)
    except OSError:
        pass


def talk(port, data, tail, timeout=5.0, drain=0.1):
    """One new connection: sends data, reads until the reply ends with tail
    (plus `drain` seconds for stray bytes), EOF or timeout. Returns the
    Reply; the socket is closed."""
    s = harness.connect(port, timeout)
    try:
        return harness.exchange(s, data, tail, timeout=timeout, drain=drain)
    finally:
        s.close()


def direct(port, data, tail, timeout=5.0):
    """memcached's own reply (raises when tail does not arrive)."""
    return harness.request(port, data, tail, timeout)


def get_value(port, key):
    """The value memcached (at port, directly) holds for key, or None."""
    if isinstance(key, str):
        key = key.encode()
    out = harness.request(port, b'get ' + key + b'\r\n', b'END\r\n')
    if out == b'END\r\n':
        return None
    m = re.match(rb'VALUE (\S+) (\d+) (\d+)\r\n', out)
    if not m:
        raise AssertionError('odd get reply %r' % out)
    n = int(m.group(3))
    return out[m.end():m.end() + n]


def put(port, key, value, flags=0):
    """Stores key directly in memcached."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(value, str):
        value = value.encode()
    out = harness.request(port, b'set %s %d 0 %d\r\n%s\r\n'
                          % (key, flags, len(value), value), b'\r\n')
    if out != b'STORED\r\n':
        raise AssertionError('set %r: %r' % (key, out))


def wait_stderr(mcfault, pattern, timeout=5.0, count=1):
    """Waits until regex pattern matches at least count lines of mcfault's
    stderr; returns the stderr text (the caller asserts)."""
    rx = re.compile(pattern, re.M)

    def ok():
        t = mcfault.stderr_text()
        return len(rx.findall(t)) >= count and t
    return harness.wait_for(ok, timeout) or mcfault.stderr_text()


def count_lines(mcfault, pattern):
    return len(re.findall(pattern, mcfault.stderr_text(), re.M))


def read_events(path):
    """The event log's JSON lines as dicts (raises on a line that is not
    JSON: every line must parse)."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path, 'rb') as f:
        for raw in f.read().split(b'\n'):
            if raw == b'':
                continue
            out.append(json.loads(raw.decode('utf-8')))
    return out


def wait_events(path, pred, timeout=5.0):
    """Waits until pred(events) is true; returns the events."""
    def ok():
        ev = read_events(path)
        return ev if pred(ev) else None
    return harness.wait_for(ok, timeout) or read_events(path)


def wait_fds(pid, want, timeout=5.0):
    """Waits until the process has `want` descriptors; returns the count."""
    harness.wait_for(lambda: harness.fd_count(pid) == want, timeout)
    return harness.fd_count(pid)


def settled_fd_count(pid, quiet=0.3, timeout=5.0):
    """The process's descriptor count once it stayed the same for `quiet`
    seconds (the harness's port probe leaves a connection that mcfault
    closes a moment later)."""
    deadline = time.monotonic() + timeout
    last, since = harness.fd_count(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        n = harness.fd_count(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


class Timed:
    """A connection that records when each byte of the reply arrived."""

    def __init__(self, port, timeout=10.0):
        self.sock = harness.connect(port, timeout)
        self.data = b''
        self.arrivals = []  # (monotonic time, total length after the chunk)
        self.eof = False

    def send(self, data):
        self.sent_at = time.monotonic()
        self.sock.sendall(data)

    def read_until(self, tail, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.data.endswith(tail):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                break
            if not chunk:
                self.eof = True
                break
            self.data += chunk
            self.arrivals.append((time.monotonic(), len(self.data)))
        return self.data

    def time_of(self, prefix_len):
        """When the reply first held at least prefix_len bytes (None if it
        never did)."""
        for t, n in self.arrivals:
            if n >= prefix_len:
                return t
        return None

    def close(self):
        self.sock.close()

# Integration test harness: starts real memcached and mcfault processes,
# talks raw bytes to them, and compares what comes back.
# Stdlib only; every test module under tests/integration imports this.

import atexit
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = '127.0.0.1'
MCFAULT_BIN = os.environ.get('MCFAULT_BIN', '/work/main/build/mcfault')
MEMCACHED_BIN = os.environ.get('MEMCACHED_BIN', '/usr/bin/memcached')
# memcached refuses to run as root unless told which user to become.
MEMCACHED_USER_ARGS = ['-u', 'nobody'] if os.geteuid() == 0 else []
# Plenty of memory: evictions would make replies depend on the LRU
# maintainer thread's timing, which the byte-for-byte oracle cannot allow.
MEMCACHED_MEM_MB = 1024

INJECT_REPLY = b'SERVER_ERROR mcfault injected\r\n'

# Markers printed by sanitizers; any of them in mcfault's stderr fails a test.
SANITIZER_MARKERS = ('Sanitizer', 'runtime error')

# Every process started here, so that an interrupted run (ctest timeout,
# ^C) does not leave any behind.
_started = []


def _kill_leftovers():
    for p in _started:
        if p.poll() is None:
            p.kill()


atexit.register(_kill_leftovers)

_ports_handed_out = set()
_ports_lock = threading.Lock()


def free_port():
    """Returns a TCP port on 127.0.0.1 nothing listens on right now, never
    the same one twice in this process."""
    for _ in range(200):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        with _ports_lock:
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise RuntimeError('could not find a free port')


def port_accepts(port, timeout=0.2):
    try:
        s = socket.create_connection((HOST, port), timeout=timeout)
    except OSError:
        return False
    s.close()
    return True


def wait_port(port, timeout=10.0, proc=None, what='process'):
    """Waits until something accepts on port. Raises if proc dies first or
    the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError('%s exited with %s before accepting on %d'
                               % (what, proc.returncode, port))
        if port_accepts(port):
            return
        time.sleep(0.02)
    raise RuntimeError('%s did not accept on port %d within %.1fs'
                       % (what, port, timeout))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------
# memcached


class Memcached:
    """A real memcached on 127.0.0.1:port. Fresh instances hand out the same
    CAS ids for the same command sequence, which the oracles rely on."""

    def __init__(self, port=None, extra_args=()):
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args)
        self.proc = None

    def start(self, timeout=10.0):
        cmd = [MEMCACHED_BIN, '-l', HOST, '-p', str(self.port), '-U', '0',
               '-t', '2', '-m', str(MEMCACHED_MEM_MB)]
        cmd += MEMCACHED_USER_ARGS + self.extra_args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _started.append(self.proc)
        wait_port(self.port, timeout, self.proc, 'memcached')
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def stats(self):
        """The 'stats' command's STAT lines as a dict of strings."""
        out = request(self.port, b'stats\r\n', b'END\r\n')
        d = {}
        for line in out.split(b'\r\n'):
            parts = line.split(b' ')
            if len(parts) == 3 and parts[0] == b'STAT':
                d[parts[1].decode()] = parts[2].decode()
        return d


# --------------------------------------------------------------------------
# mcfault


class Mcfault:
    """An mcfault process listening on 127.0.0.1:port and forwarding to
    127.0.0.1:upstream_port. Its stderr goes to a temporary file."""

    def __init__(self, upstream_port, args=(), port=None, binary=None,
                 env=None):
        """binary: the mcfault to run (default MCFAULT_BIN); env: variables
        to set on top of this process's environment."""
        self.port = port if port is not None else free_port()
        self.upstream_port = upstream_port
        self.args = list(args)
        self.binary = binary if binary is not None else MCFAULT_BIN
        self.extra_env = dict(env or {})
        self.proc = None
        self.stderr_path = None
        self.returncode = None
        self._stderr_final = None

    def command(self):
        return [self.binary, '-l', '%s:%d' % (HOST, self.port),
                '-u', '%s:%d' % (HOST, self.upstream_port)] + self.args

    def start(self, timeout=15.0):
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError('mcfault binary not found or not executable: '
                               '%s (set MCFAULT_BIN)' % self.binary)
        fd, self.stderr_path = tempfile.mkstemp(prefix='mcfault-',
                                                suffix='.stderr')
        env = dict(os.environ)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
        env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1')
        env.update(self.extra_env)
        try:
            self.proc = subprocess.Popen(self.command(),
                                         stdin=subprocess.DEVNULL,
                                         stdout=fd, stderr=fd, env=env)
        finally:
            os.close(fd)
        _started.append(self.proc)
        try:
            wait_port(self.port, timeout, self.proc, 'mcfault')
        except RuntimeError as e:
            self.stop()
            raise RuntimeError('%s\nstderr:\n%s' % (e, self.stderr_text()))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        if self._stderr_final is not None:
            return self._stderr_final
        if self.stderr_path is None:
            return ''
        try:
            with open(self.stderr_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def stderr_tail(self, n=4000):
        t = self.stderr_text()
        return t[-n:]

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Stops mcfault with sig and returns its exit status (negative for
        a signal, as subprocess reports it). Idempotent."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = 'hung after %s' % sig.name
        if self.returncode is None:
            self.returncode = self.proc.returncode
        self._stderr_final = None
        self._stderr_final = self.stderr_text()
        if self.stderr_path:
            try:
                os.unlink(self.stderr_path)
            except OSError:
                pass
        self.proc = None
        return self.returncode

    def stop_and_check(self, sig=signal.SIGTERM):
        """Stops mcfault and raises AssertionError unless it exited with 0
        and its stderr holds no sanitizer report."""
        alive = self.alive()
        listening = alive and port_accepts(self.port)
        rc = self.stop(sig)
        problems = []
        if not alive:
            problems.append('mcfault had already exited (status %r) before '
                            'it was sent %s' % (rc, sig.name))
        elif not listening:
            problems.append('mcfault was alive but no longer accepting '
                            'connections before it was sent %s' % sig.name)
        if rc != 0:
            how = rc
            if isinstance(rc, int) and rc < 0:
                how = 'killed by %s' % signal.Signals(-rc).name
            problems.append('exit status %r after %s (want 0)'
                            % (how, sig.name))
        text = self._stderr_final or ''
        for m in SANITIZER_MARKERS:
            if m in text:
                problems.append('stderr contains %r' % m)
        if problems:
            raise AssertionError('mcfault (%s): %s\n--- stderr tail ---\n%s'
                                 % (' '.join(self.command()),
                                    '; '.join(problems), text[-6000:]))


def start_memcached_for_class(cls, **kw):
    m = Memcached(**kw).start()
    cls.addClassCleanup(m.stop)
    return m


def start_mcfault_for_class(cls, upstream_port, args=(), **kw):
    """Starts mcfault for a test class; at class teardown it is stopped with
    SIGTERM and the class errors unless it exits cleanly."""
    p = Mcfault(upstream_port, args, **kw)
    cls.addClassCleanup(p.stop_and_check)
    p.start()
    return p


def start_memcached_for_test(tc, **kw):
    m = Memcached(**kw).start()
    tc.addCleanup(m.stop)
    return m


def start_mcfault_for_test(tc, upstream_port, args=(), **kw):
    p = Mcfault(upstream_port, args, **kw)
    tc.addCleanup(p.stop_and_check)
    p.start()
    return p


# --------------------------------------------------------------------------
# Process resource helpers


def fd_count(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


def fd_targets(pid):
    """{fd number: readlink target} of a process."""
    d = {}
    base = '/proc/%d/fd' % pid
    for name in os.listdir(base):
        try:
            d[int(name)] = os.readlink(os.path.join(base, name))
        except OSError:
            pass
    return d


def rss_kb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS for pid %d' % pid)


def stop_process(pid, timeout=5.0):
    """Sends SIGSTOP and waits until every thread of pid is stopped (the
    signal is only queued when kill returns: a busy worker thread may still
    run a moment)."""
    os.kill(pid, signal.SIGSTOP)

    def all_stopped():
        try:
            tids = os.listdir('/proc/%d/task' % pid)
        except FileNotFoundError:
            return True
        for tid in tids:
            try:
                with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                    state = f.read().rsplit(')', 1)[1].split()[0]
            except (FileNotFoundError, IndexError):
                continue
            if state not in ('T', 't'):
                return False
        return True

    if not wait_for(all_stopped, timeout, 0.005):
        raise RuntimeError('process %d did not stop' % pid)


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the TCP socket 127.0.0.1:local_port <->
    127.0.0.1:remote_port from /proc/net/tcp, or None. tx_queue: bytes
    written but not yet acknowledged by the peer; rx_queue: bytes received
    but not yet read by the process owning the socket."""
    want_local = '0100007F:%04X' % local_port
    want_remote = '0100007F:%04X' % remote_port
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want_local and parts[2] == want_remote:
                tx, rx = parts[4].split(':')
                return int(tx, 16), int(rx, 16)
    return None


def binary_has_asan(path):
    """Whether the executable at path is built with AddressSanitizer (it
    references __asan_init, linked statically or dynamically)."""
    with open(path, 'rb') as f:
        return b'__asan_init' in f.read()


def asan_env_for_memory():
    """ASAN_OPTIONS for an mcfault whose RSS is measured: ASan keeps freed
    memory in a quarantine (256 MiB by default), which would count freed
    buffers as resident. A small quarantine keeps RSS close to what the
    process holds. Only the extra options; harmless for other builds."""
    base = os.environ.get('ASAN_OPTIONS', 'detect_leaks=1')
    return {'ASAN_OPTIONS': base + ':quarantine_size_mb=4'
            ':thread_local_quarantine_size_kb=64'}


def raise_nofile(want):
    """Raises this process's soft RLIMIT_NOFILE to at least want (children
    started afterwards inherit it). Returns the new soft limit, which is
    lower than want when the hard limit is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def wait_for(pred, timeout=5.0, interval=0.05):
    """Polls pred() until it returns a true value or timeout passes; returns
    the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def server_side_connections(port):
    """How many accepted TCP connections on 127.0.0.1:port the server still
    holds open (ESTABLISHED, or CLOSE_WAIT: the client closed, the server has
    not yet), from /proc/net/tcp."""
    want_local = '0100007F:%04X' % port
    n = 0
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            parts = line.split()
            if (parts[1] == want_local and parts[3] in ('01', '08') and
                    not parts[2].endswith(':0000')):
                n += 1
    return n


def socket_inode_of_connection(local_port, remote_port):
    """Inode of the TCP socket 127.0.0.1:local_port <-> 127.0.0.1:remote_port
    from /proc/net/tcp, or None."""
    want_local = '0100007F:%04X' % local_port
    want_remote = '0100007F:%04X' % remote_port
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want_local and parts[2] == want_remote:
                return int(parts[9])
    return None


# --------------------------------------------------------------------------
# Raw socket client helpers


def connect(port, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def piece_sizes(rng, max_piece=65536):
    """Endless random piece sizes from 1 byte to max_piece, spread over
    orders of magnitude so tiny and big writes both happen."""
    while True:
        r = rng.random()
        if r < 0.25:
            hi = 16
        elif r < 0.5:
            hi = 1024
        elif r < 0.85:
            hi = 16384
        else:
            hi = max_piece
        yield rng.randint(1, max(1, min(hi, max_piece)))


def send_pieces(sock, data, rng=None, max_piece=65536, sleep_prob=0.0,
                max_sleep=0.003):
    """Sends data on a blocking socket, in random-sized pieces when rng is
    given, with optional small sleeps between pieces."""
    if rng is None:
        sock.sendall(data)
        return
    view = memoryview(data)
    pos = 0
    sizes = piece_sizes(rng, max_piece)
    while pos < len(data):
        n = next(sizes)
        sock.sendall(view[pos:pos + n])
        pos += n
        if sleep_prob and rng.random() < sleep_prob:
            time.sleep(rng.uniform(0.0002, max_sleep))


class Reply:
    """What exchange() collected."""

    def __init__(self):
        self.data = b''
        self.eof = False
        self.reset = False
        self.timed_out = False
        self.sent = 0

    def __repr__(self):
        return ('Reply(len=%d eof=%s reset=%s timed_out=%s sent=%d)'
                % (len(self.data), self.eof, self.reset, self.timed_out,
                   self.sent))


def exchange(sock, data, tail=None, rng=None, timeout=60.0,
             max_piece=65536, sleep_prob=0.01, drain=0.2, until_eof=False,
             shut_wr=False):
    """Writes data (random pieces when rng is given) while reading replies,
    so neither side can block the other. Stops when everything was sent and
    the received bytes end with tail (then keeps reading for `drain` seconds
    to catch stray extra bytes), or at EOF, or at the timeout. With
    until_eof, reads until EOF. With shut_wr, shuts down the write side
    after the last byte. Returns a Reply; never raises on timeout."""
    rep = Reply()
    out = bytearray()
    view = memoryview(data)
    pos = 0
    sizes = piece_sizes(rng, max_piece) if rng is not None else None
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    done_sending = len(data) == 0
    if done_sending and shut_wr:
        sock.shutdown(socket.SHUT_WR)
    tail_seen_at = None
    try:
        while True:
            now = time.monotonic()
            if done_sending and not until_eof and tail is not None:
                if tail_seen_at is None and out.endswith(tail):
                    tail_seen_at = now
                if tail_seen_at is not None and now - tail_seen_at >= drain:
                    break
            if now >= deadline:
                rep.timed_out = True
                break
            wait = min(deadline - now, 0.05)
            wl = [sock] if not done_sending else []
            r, w, _ = select.select([sock], wl, [], wait)
            if r:
                try:
                    chunk = sock.recv(1 << 20)
                except ConnectionResetError:
                    rep.reset = True
                    break
                except BlockingIOError:
                    chunk = None
                if chunk == b'':
                    rep.eof = True
                    break
                if chunk:
                    out += chunk
            if w and not done_sending:
                n = next(sizes) if sizes is not None else len(data) - pos
                try:
                    sent = sock.send(view[pos:pos + n])
                except BlockingIOError:
                    sent = 0
                except (BrokenPipeError, ConnectionResetError):
                    # The peer closed; keep reading what it sent before.
                    done_sending = True
                    sent = 0
                pos += sent
                if pos >= len(data):
                    done_sending = True
                    if shut_wr:
                        try:
                            sock.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                if sent and rng is not None and sleep_prob \
                        and rng.random() < sleep_prob:
                    time.sleep(rng.uniform(0.0002, 0.003))
    finally:
        sock.setblocking(True)
    rep.data = bytes(out)
    rep.sent = pos
    return rep


def recv_until(sock, terminator=None, timeout=10.0, nbytes=None):
    """Reads until the data ends with terminator, nbytes were read, EOF, or
    timeout. Returns a Reply (data, eof, reset, timed_out)."""
    rep = Reply()
    out = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        if terminator is not None and out.endswith(terminator):
            break
        if nbytes is not None and len(out) >= nbytes:
            break
        left = deadline - time.monotonic()
        if left <= 0:
            rep.timed_out = True
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            rep.timed_out = True
            break
        except ConnectionResetError:
            rep.reset = True
            break
        if not chunk:
            rep.eof = True
            break
        out += chunk
    rep.data = bytes(out)
    return rep


def recv_for(sock, seconds):
    """Reads whatever arrives within `seconds`; returns a Reply."""
    return recv_until(sock, None, timeout=seconds)


def request(port, data, terminator, timeout=10.0):
    """One connection, one request, read until terminator; returns bytes.
    Raises AssertionError when the terminator does not arrive."""
    s = connect(port, timeout)
    try:
        s.sendall(data)
        rep = recv_until(s, terminator, timeout)
    finally:
        s.close()
    if not rep.data.endswith(terminator):
        raise AssertionError('request %r to port %d: wanted reply ending %r, '
                             'got %r (%r)' % (data[:200], port, terminator,
                                              rep.data[-400:], rep))
    return rep.data


# --------------------------------------------------------------------------
# Comparing byte streams


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            for j in range(i, min(i + 4096, n)):
                if a[j] != b[j]:
                    return j
    if len(a) != len(b):
        return n
    return -1


def describe_diff(expected, actual, context=160):
    off = first_diff(expected, actual)
    if off < 0:
        return 'identical'
    lo = max(0, off - context)
    return ('first difference at byte offset %d (expected %d bytes, got %d)\n'
            '  expected[%d:%d] = %r\n  actual  [%d:%d] = %r'
            % (off, len(expected), len(actual),
               lo, off + context, expected[lo:off + context],
               lo, off + context, actual[lo:off + context]))


def assert_same_bytes(tc, expected, actual, what='', extra=''):
    if expected == actual:
        return
    tc.fail('%s: byte streams differ: %s%s'
            % (what, describe_diff(expected, actual),
               ('\n' + extra) if extra else ''))


# --------------------------------------------------------------------------
# Misc


def memcached_version():
    out = subprocess.run([MEMCACHED_BIN, '-V'], capture_output=True,
                         text=True, timeout=10).stdout.strip()
    return out.split()[-1]


def which(name):
    return shutil.which(name)


def log(msg):
    """Progress notes for -v runs (stderr, so unittest output stays clean)."""
    if os.environ.get('MCFAULT_IT_QUIET'):
        return
    sys.stderr.write('    [it] %s\n' % msg)
    sys.stderr.flush()

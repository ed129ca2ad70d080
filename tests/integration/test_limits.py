# Limits at the edges: the process out of file descriptors (no busy loop,
# no log flood, accepting resumes), --max-connections (memcached's
# "ERROR Too many open connections"), and an upstream name that moves to
# another address while mcfault runs.

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import HOST  # noqa: E402

FULL_REPLY = b'ERROR Too many open connections\r\n'

# Out of descriptors: the limit mcfault runs under, and more clients than
# fit in it (each client costs mcfault two descriptors).
NOFILE = 23
CLIENTS = 20
# Out of descriptors, mcfault may spend this much CPU over HOLD_S seconds
# (a busy accept loop spends all of it).
HOLD_S = 3.0
MAX_CPU_S = 0.5
# Log lines about accepting allowed over the whole episode.
MAX_ACCEPT_LINES = 10


def cpu_seconds(pid):
    """utime + stime of pid, in seconds, from /proc/PID/stat."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14, 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def set_get(sock, key, value):
    """set then get key on an open connection; returns the get's reply."""
    sock.sendall(b'set %s 0 0 %d\r\n%s\r\nget %s\r\n'
                 % (key, len(value), value, key))
    rep = harness.recv_until(sock, b'END\r\n', timeout=5.0)
    return rep.data


def served(sock, key=b'k', value=b'v'):
    """True when a set and get on sock get memcached's answers."""
    want = b'STORED\r\nVALUE %s 0 %d\r\n%s\r\nEND\r\n' % (key, len(value),
                                                          value)
    try:
        return set_get(sock, key, value) == want
    except OSError:
        return False


def serve_one(port, key=b'k', value=b'v'):
    """A new connection through mcfault does a set and a get."""
    try:
        s = harness.connect(port, timeout=5.0)
    except OSError:
        return False
    try:
        return served(s, key, value)
    finally:
        s.close()


def client_sockets(port):
    """Client connections mcfault listening on 127.0.0.1:port holds (or has
    queued): its side of them, ESTABLISHED or CLOSE_WAIT, in
    /proc/net/tcp."""
    local = '0100007F:%04X' % port
    n = 0
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            parts = line.split()
            n += parts[1] == local and parts[3] in ('01', '08')
    return n


def wait_clients(port, at_most):
    """Waits until mcfault on port holds at most at_most clients (the
    harness's start-up probe, or a client just closed, may still count)."""
    if not harness.wait_for(lambda: client_sockets(port) <= at_most,
                            timeout=5.0, interval=0.01):
        raise AssertionError('mcfault on %d still holds %d clients'
                             % (port, client_sockets(port)))


class NofileMcfault(harness.Mcfault):
    """mcfault whose soft and hard RLIMIT_NOFILE are both `nofile` (mcfault
    raises its soft limit up to the hard one)."""

    def __init__(self, upstream_port, nofile, args=()):
        super().__init__(upstream_port, args)
        self.nofile = nofile

    def command(self):
        return ['prlimit', '--nofile=%d:%d' % (self.nofile, self.nofile),
                '--'] + super().command()


class OutOfDescriptorsTest(unittest.TestCase):
    """With 20 clients and room for a few, the listener used to stay
    readable with every accept failing (EMFILE): a core at 100% and a log
    line per failure."""

    def test_no_busy_loop_and_accepting_resumes(self):
        if harness.which('prlimit') is None:
            self.skipTest('prlimit not installed')
        mc = harness.start_memcached_for_test(self)
        px = NofileMcfault(mc.port, NOFILE)
        self.addCleanup(px.stop_and_check)
        px.start()

        clients = []
        self.addCleanup(lambda: [c.close() for c in clients])
        for _ in range(CLIENTS):
            clients.append(harness.connect(px.port))
        # Each client asks; those mcfault has room for are answered.
        for i, c in enumerate(clients):
            c.sendall(b'set k%d 0 0 1\r\nx\r\n' % i)
        time.sleep(0.5)

        before = cpu_seconds(px.pid)
        time.sleep(HOLD_S)
        spent = cpu_seconds(px.pid) - before
        self.assertTrue(px.alive(), px.stderr_tail())
        self.assertLess(spent, MAX_CPU_S,
                        'mcfault spent %.2fs of CPU in %.1fs out of '
                        'descriptors\n%s' % (spent, HOLD_S,
                                             px.stderr_tail(2000)))

        answered = 0
        for c in clients:
            c.settimeout(0.05)
            try:
                answered += c.recv(100) == b'STORED\r\n'
            except OSError:
                pass
        self.assertGreater(answered, 0, 'no client was served at all')
        self.assertLess(answered, CLIENTS,
                        'every client was served: the limit was not hit')

        for c in clients:
            c.close()
        clients.clear()
        # Accepting resumes: new clients are served.
        ok = harness.wait_for(lambda: serve_one(px.port), timeout=10.0,
                              interval=0.1)
        self.assertTrue(ok, 'no new client served after the others closed\n'
                        + px.stderr_tail(2000))
        for i in range(5):
            self.assertTrue(serve_one(px.port, b'n%d' % i),
                            px.stderr_tail(2000))

        log = px.stderr_text().splitlines()
        accept_lines = [ln for ln in log if 'accept' in ln]
        self.assertLess(len(accept_lines), MAX_ACCEPT_LINES,
                        '%d log lines about accept:\n%s'
                        % (len(accept_lines), '\n'.join(accept_lines[:20])))
        self.assertLess(len(log), 50, '\n'.join(log[:60]))


class ConfigMcfault(harness.Mcfault):
    """mcfault started with -c FILE alone (the file names the addresses);
    port is one of its listeners."""

    def __init__(self, path, port):
        super().__init__(0, port=port)
        self.path = path

    def command(self):
        return [harness.MCFAULT_BIN, '-c', self.path]


class MaxConnectionsTest(unittest.TestCase):

    def hold(self, port, n):
        """n clients through mcfault, each served once, left open."""
        wait_clients(port, 0)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(n):
            s = harness.connect(port)
            socks.append(s)
            self.assertTrue(served(s, b'c%d' % i), 'client %d' % i)
        return socks

    def assert_refused(self, port):
        s = harness.connect(port)
        try:
            rep = harness.recv_until(s, None, timeout=5.0)
        finally:
            s.close()
        self.assertEqual(rep.data, FULL_REPLY, rep)
        self.assertTrue(rep.eof, rep)

    def test_past_the_limit_a_client_gets_memcacheds_error(self):
        mc = harness.start_memcached_for_test(self)
        px = harness.start_mcfault_for_test(
            self, mc.port, ['--max-connections', '5'])
        socks = self.hold(px.port, 5)

        self.assert_refused(px.port)
        self.assert_refused(px.port)
        # the five are untouched
        for i, s in enumerate(socks):
            self.assertTrue(served(s, b'again%d' % i), 'client %d' % i)

        socks.pop().close()
        wait_clients(px.port, 4)
        self.assertTrue(serve_one(px.port),
                        'no client served after one of five closed\n'
                        + px.stderr_tail())

    def test_file_key_and_flag_wins(self):
        mc = harness.start_memcached_for_test(self)
        d = tempfile.mkdtemp(prefix='mcfault-limits-')
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, 'limits.yaml')
        with open(path, 'w') as f:
            f.write('max_connections: 2\n')

        px = harness.start_mcfault_for_test(self, mc.port, ['-c', path])
        self.hold(px.port, 2)
        self.assert_refused(px.port)

        px2 = harness.start_mcfault_for_test(
            self, mc.port, ['-c', path, '--max-connections', '3'])
        self.hold(px2.port, 3)
        self.assert_refused(px2.port)

    def test_limit_is_over_all_proxies(self):
        mc = harness.start_memcached_for_test(self)
        d = tempfile.mkdtemp(prefix='mcfault-limits-')
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, 'two.yaml')
        pa, pb = harness.free_port(), harness.free_port()
        with open(path, 'w') as f:
            f.write('max_connections: 3\n'
                    'proxies:\n'
                    '  - {name: a, listen: "%s:%d", upstream: "%s:%d"}\n'
                    '  - {name: b, listen: "%s:%d", upstream: "%s:%d"}\n'
                    % (HOST, pa, HOST, mc.port, HOST, pb, HOST, mc.port))
        px = ConfigMcfault(path, pa)
        self.addCleanup(px.stop_and_check)
        px.start()
        harness.wait_port(pb, proc=px.proc, what='mcfault')

        wait_clients(pb, 0)
        socks = self.hold(pa, 2) + self.hold(pb, 1)
        self.assert_refused(pa)
        self.assert_refused(pb)
        socks[0].close()
        wait_clients(pa, 1)
        self.assertTrue(serve_one(pb), px.stderr_tail())

    def test_bad_flag(self):
        for bad in ('0', '-1', 'x', '', '500001', '5x'):
            r = subprocess.run([harness.MCFAULT_BIN, '--max-connections',
                                bad], capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn("--max-connections: want 1..500000, got '%s'"
                          % bad, r.stderr)


# --------------------------------------------------------------------------
# The upstream moves


def start_memcached_at(tc, host, port):
    """A memcached on host:port (host any 127.0.0.0/8 address), stopped at
    cleanup. Returns the Popen."""
    cmd = [harness.MEMCACHED_BIN, '-l', host, '-p', str(port), '-U', '0',
           '-t', '1', '-m', '64'] + harness.MEMCACHED_USER_ARGS
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    harness._started.append(p)

    def stop():
        if p.poll() is None:
            p.terminate()
            p.wait(5)
    tc.addCleanup(stop)

    def up():
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        except OSError:
            return False
    if not harness.wait_for(up, timeout=10.0, interval=0.02):
        raise RuntimeError('memcached on %s:%d did not start' % (host, port))
    return p


def direct_set(host, port, key, value):
    s = socket.create_connection((host, port), timeout=5.0)
    try:
        s.sendall(b'set %s 0 0 %d\r\n%s\r\n' % (key, len(value), value))
        rep = harness.recv_until(s, b'\r\n', timeout=5.0)
    finally:
        s.close()
    assert rep.data == b'STORED\r\n', rep


def get_through(port, key):
    """The value of key read through mcfault, or None (refused, closed)."""
    try:
        s = harness.connect(port, timeout=5.0)
    except OSError:
        return None
    try:
        s.sendall(b'get %s\r\n' % key)
        rep = harness.recv_until(s, b'END\r\n', timeout=5.0)
    except OSError:
        return None
    finally:
        s.close()
    lines = rep.data.split(b'\r\n')
    if len(lines) >= 3 and lines[0].startswith(b'VALUE '):
        return lines[1]
    return None


class HostsMcfault(harness.Mcfault):
    """mcfault in a mount namespace of its own where `hosts` is bind-mounted
    over /etc/hosts, its upstream a name."""

    def __init__(self, upstream, hosts, args=()):
        super().__init__(0, args)
        self.upstream = upstream
        self.hosts = hosts

    def command(self):
        cmd = super().command()
        cmd[cmd.index('-u') + 1] = self.upstream
        return ['unshare', '-m', 'sh', '-c',
                'mount --bind "$0" /etc/hosts && exec "$@"',
                self.hosts] + cmd


def can_bind_mount_hosts():
    if os.geteuid() != 0 or harness.which('unshare') is None:
        return False
    r = subprocess.run(['unshare', '-m', 'sh', '-c',
                        'mount --bind /etc/hosts /etc/hosts'],
                       capture_output=True, timeout=10)
    return r.returncode == 0


class UpstreamMovesTest(unittest.TestCase):
    """The upstream's name used to be resolved once, at start: after the
    upstream moved to another address, every client was refused."""

    NAME = 'mcup.test'

    def write_hosts(self, addr, create=False):
        """Writes the hosts file in place (same inode: the bind mount keeps
        showing it)."""
        with open(self.hosts, 'w' if create else 'r+') as f:
            f.seek(0)
            f.truncate()
            f.write(self.base_hosts + '%s %s\n' % (addr, self.NAME))

    def test_new_clients_follow_the_name(self):
        if not can_bind_mount_hosts():
            self.skipTest('needs root and unshare -m (a mount namespace)')
        d = tempfile.mkdtemp(prefix='mcfault-hosts-')
        self.addCleanup(shutil.rmtree, d, True)
        self.hosts = os.path.join(d, 'hosts')
        with open('/etc/hosts') as f:
            self.base_hosts = ''.join(ln for ln in f
                                      if self.NAME not in ln)
        if not self.base_hosts.endswith('\n'):
            self.base_hosts += '\n'
        self.write_hosts('127.0.0.2', create=True)
        port = harness.free_port()

        a = start_memcached_at(self, '127.0.0.2', port)
        direct_set('127.0.0.2', port, b'where', b'A')
        px = HostsMcfault('%s:%d' % (self.NAME, port), self.hosts, ['-v'])
        self.addCleanup(px.stop_and_check)
        px.start()
        self.assertTrue(
            harness.wait_for(lambda: get_through(px.port, b'where') == b'A',
                             timeout=10.0, interval=0.1),
            'not served by A at first\n' + px.stderr_tail())

        a.terminate()
        a.wait(5)
        self.write_hosts('127.0.0.3')
        start_memcached_at(self, '127.0.0.3', port)
        direct_set('127.0.0.3', port, b'where', b'B')

        got = []
        self.assertTrue(
            harness.wait_for(
                lambda: got.append(get_through(px.port, b'where')) or
                got[-1] == b'B', timeout=10.0, interval=0.1),
            'new clients not served by B after the name moved (got %r)\n%s'
            % (got[-5:], px.stderr_tail()))
        # and the ones after that too
        for _ in range(3):
            self.assertEqual(get_through(px.port, b'where'), b'B')
        self.assertIn('is now 127.0.0.3:%d (was 127.0.0.2:%d)' % (port, port),
                      px.stderr_text())


if __name__ == '__main__':
    unittest.main()

# Failure and edge behaviour: upstream down or killed, clients vanishing,
# half-close, connection churn, binary tunnel, long lines, huge get lines,
# watch, command-line errors, signals, and backpressure.

import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest

import harness
from harness import HOST

VERSION_LINE = ('VERSION %s\r\n' % harness.memcached_version()).encode()


def closed(rep):
    return rep.eof or rep.reset


class FailuresTest(unittest.TestCase):
    """Tests sharing one memcached and one mcfault."""

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.mc.port,
                                                      ['-v'])

    def conn(self, port):
        s = harness.connect(port)
        self.addCleanup(s.close)
        return s

    def roundtrip(self, port, data, tail, timeout=10):
        s = self.conn(port)
        rep = harness.exchange(s, data, tail, timeout=timeout, drain=0.05)
        s.close()
        return rep

    def assert_works(self, port, what=''):
        rep = self.roundtrip(port, b'version\r\n', VERSION_LINE)
        self.assertEqual(rep.data, VERSION_LINE, '%s: %r' % (what, rep))

    def curr_connections(self):
        # The stats connection itself is counted; callers compare values
        # taken the same way.
        return int(self.mc.stats()['curr_connections'])

    # ---- client side failures

    def test_client_gone_mid_data_block(self):
        base_conns = self.curr_connections()
        others = [self.conn(self.mcfault.port) for _ in range(5)]

        def work(tag):
            for i, o in enumerate(others):
                v = b'%s-%d' % (tag, i)
                o.sendall(b'set other%d 0 0 %d\r\n%s\r\nget other%d\r\n'
                          % (i, len(v), v, i))
                want = b'STORED\r\nVALUE other%d 0 %d\r\n%s\r\nEND\r\n' % (
                    i, len(v), v)
                rep = harness.recv_until(o, want, timeout=5)
                self.assertEqual(rep.data, want,
                                 'concurrent connection %d' % i)

        work(b'before')
        s = harness.connect(self.mcfault.port)
        s.sendall(b'set gone 0 0 100000\r\n' + b'a' * 50000)
        time.sleep(0.2)
        work(b'during')
        s.close()
        time.sleep(0.2)
        work(b'after')
        for o in others:
            o.close()
        got = harness.request(self.mc.port, b'get gone\r\n', b'END\r\n')
        self.assertEqual(got, b'END\r\n',
                         'memcached stored a value whose client went away '
                         'mid data block')
        # mcfault closed its upstream connections too.
        n = harness.wait_for(lambda: self.curr_connections() <= base_conns,
                             timeout=5)
        self.assertTrue(n, 'memcached curr_connections %d, was %d before: '
                        'upstream connections left open'
                        % (self.curr_connections(), base_conns))
        self.assertTrue(self.mcfault.alive())

    def test_half_close_replies_still_arrive(self):
        v = bytes(random.Random(5).choice(b'abcdefgh') for _ in range(1000))
        n = 2000
        data = b''.join(b'set hc%d 0 0 %d\r\n%s\r\nget hc%d\r\n'
                        % (i, len(v), v, i) for i in range(n))
        data += b'set hc_last 0 0 1 noreply\r\nZ\r\n'
        expected = b''.join(b'STORED\r\nVALUE hc%d 0 %d\r\n%s\r\nEND\r\n'
                            % (i, len(v), v) for i in range(n))
        results = {}
        for name, port in (('direct', self.mc.port),
                           ('mcfault', self.mcfault.port)):
            harness.request(self.mc.port, b'delete hc_last\r\n', b'\r\n')
            s = self.conn(port)
            rep = harness.exchange(s, data, rng=random.Random(1),
                                   until_eof=True, shut_wr=True, timeout=30)
            results[name] = rep
            last = harness.request(self.mc.port, b'get hc_last\r\n',
                                   b'END\r\n')
            self.assertEqual(last, b'VALUE hc_last 0 1\r\nZ\r\nEND\r\n',
                             '%s: the last command before the half-close '
                             'never reached memcached' % name)
        d, p = results['direct'], results['mcfault']
        self.assertTrue(d.eof and d.data == expected,
                        'precondition: memcached itself answers everything '
                        'then closes after a half-close: %r' % d)
        harness.assert_same_bytes(self, expected, p.data,
                                  'half-close through mcfault')
        self.assertTrue(p.eof, 'mcfault did not close after the half-close '
                        'and the replies: %r' % p)

        # A small one: one get, then FIN.
        for port in (self.mc.port, self.mcfault.port):
            s = self.conn(port)
            rep = harness.exchange(s, b'get nothing_here\r\n',
                                   until_eof=True, shut_wr=True, timeout=5)
            self.assertEqual((rep.data, rep.eof), (b'END\r\n', True),
                             'port %d' % port)

    def test_connection_churn_returns_to_baseline(self):
        pid = self.mcfault.pid
        self.assert_works(self.mcfault.port)
        base_conns = self.curr_connections()
        time.sleep(0.1)
        base_fds = harness.fd_count(pid)
        rss = []
        for rnd in range(3):
            socks = []
            for i in range(200):
                socks.append(harness.connect(self.mcfault.port))
            for s in socks:
                s.sendall(b'version\r\n')
            for i, s in enumerate(socks):
                rep = harness.recv_until(s, VERSION_LINE, timeout=10)
                self.assertEqual(rep.data, VERSION_LINE,
                                 'round %d connection %d: %r' % (rnd, i, rep))
            during = harness.fd_count(pid)
            self.assertGreaterEqual(during, base_fds + 400,
                                    'mcfault should hold a client and an '
                                    'upstream socket per connection')
            for i, s in enumerate(socks):
                if i % 3 == 0:
                    # Abortive close (RST).
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack('ii', 1, 0))
                elif i % 3 == 1:
                    # Leave a request unanswered-yet behind.
                    s.sendall(b'get x\r\n')
                s.close()
            ok = harness.wait_for(lambda: harness.fd_count(pid) <= base_fds,
                                  timeout=10)
            self.assertTrue(ok, 'round %d: mcfault holds %d fds, %d before'
                            % (rnd, harness.fd_count(pid), base_fds))
            rss.append(harness.rss_kb(pid))
        ok = harness.wait_for(lambda: self.curr_connections() <= base_conns,
                              timeout=10)
        self.assertTrue(ok, 'memcached has %d connections, %d before'
                        % (self.curr_connections(), base_conns))
        harness.log('churn: fds %d, RSS after rounds %s kB'
                    % (base_fds, rss))
        self.assert_works(self.mcfault.port, 'after churn')

    # ---- protocol edges

    def test_binary_protocol_tunnel(self):
        def pkt(opcode, key=b'', value=b'', extras=b'', opaque=0, cas=0):
            body = extras + key + value
            return struct.pack('>BBHBBHIIQ', 0x80, opcode, len(key),
                               len(extras), 0, 0, len(body), opaque,
                               cas) + body

        reqs = [pkt(0x0a, opaque=0xdeadbeef),                 # noop
                pkt(0x0b, opaque=1),                          # version
                pkt(0x00, key=b'binkey', opaque=2),           # get (miss)
                pkt(0x01, key=b'binkey', value=b'v\r\nEND\r\n',
                    extras=struct.pack('>II', 7, 0), opaque=3),  # set
                pkt(0x00, key=b'binkey', opaque=4),           # get (hit)
                pkt(0x0c, key=b'binkey', opaque=5),           # getk
                pkt(0x04, key=b'binkey', opaque=6),           # delete
                pkt(0x0a, opaque=7)]

        def run(port):
            s = self.conn(port)
            out = []
            for r in reqs:
                s.sendall(r)
                rep = harness.recv_until(s, nbytes=24, timeout=5)
                if len(rep.data) < 24:
                    return out + [('short', rep)]
                blen = struct.unpack('>I', rep.data[8:12])[0]
                if len(rep.data) < 24 + blen:
                    more = harness.recv_until(s, nbytes=24 + blen
                                              - len(rep.data), timeout=5)
                    rep.data += more.data
                out.append(rep.data)
            return out

        direct_mc = harness.start_memcached_for_test(self)
        up = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, up.port)
        d = run(direct_mc.port)
        self.assertEqual(d[0][:2], b'\x81\x0a', 'precondition: %r' % d[0])
        got = run(p.port)
        for i, (a, b) in enumerate(zip(d, got)):
            self.assertEqual(a, b, 'binary response %d (request %r)'
                             % (i, reqs[i][:40]))
        self.assertEqual(len(d), len(got))

    def long_line_probe(self, port, parts, expect_close):
        """Sends parts with pauses. When the connection should stay open,
        follows with mn and reads until MN; otherwise only waits for the
        close (sending more could hand memcached a newline in the same read
        and change its mind). Returns (bytes, closed)."""
        s = self.conn(port)
        for p in parts:
            try:
                s.sendall(p)
            except (BrokenPipeError, ConnectionResetError):
                return b'', True
            time.sleep(0.3)
        if expect_close:
            rep = harness.recv_until(s, None, timeout=3)
            return rep.data, closed(rep)
        try:
            s.sendall(b'mn\r\n')
        except (BrokenPipeError, ConnectionResetError):
            return b'', True
        rep = harness.recv_until(s, b'MN\r\n', timeout=3)
        return rep.data, closed(rep)

    def check_long_line(self, parts, want):
        d = self.long_line_probe(self.mc.port, parts, want[1])
        self.assertEqual(d, want, 'precondition: memcached answers %r' % (d,))
        p = self.long_line_probe(self.mcfault.port, parts, want[1])
        self.assertEqual(p, d, 'input %r... (%d bytes in %d pieces): '
                         'memcached %r, mcfault %r'
                         % (parts[0][:40], sum(map(len, parts)), len(parts),
                            d, p))

    def test_long_line_without_newline_closes(self):
        self.check_long_line([b'x' * 3000], (b'', True))
        self.check_long_line([b'x' * 2049], (b'', True))
        # 2049 bytes with no newline yet, the last one a \r: memcached has
        # no way to know a \n follows and closes.
        self.check_long_line([b'x' * 2048 + b'\r'], (b'', True))
        self.check_long_line([b'x' * 2000, b'x' * 48 + b'\r'], (b'', True))
        self.check_long_line([b'x' * 1000, b'x' * 1049], (b'', True))
        self.check_long_line([b'set k 0 0 5 ' + b'9' * 2040], (b'', True))
        self.check_long_line([b'gat 0 ' + b'key ' * 600], (b'', True))
        # The same after a complete command in the same read.
        self.check_long_line([b'mn\r\n' + b'y' * 2100], (b'MN\r\n', True))

    def test_line_at_the_limit_stays_open(self):
        # 2048 bytes without a newline is still fine for memcached.
        self.check_long_line([b'x' * 2047 + b'\r', b'\n'],
                             (b'ERROR\r\nMN\r\n', False))
        self.check_long_line([b'x' * 2048, b'\r\n'],
                             (b'ERROR\r\nMN\r\n', False))
        self.check_long_line([b'mn\r\n' + b'x' * 2048, b'\r\n'],
                             (b'MN\r\nERROR\r\nMN\r\n', False))

    def test_long_get_line_in_pieces(self):
        keys = b' '.join(b'nokey%d' % i for i in range(600))
        self.check_long_line([b'get ' + keys, b'\r\n'],
                             (b'END\r\nMN\r\n', False))
        self.check_long_line([b'gets ' + keys, b' nokey\r\n'],
                             (b'END\r\nMN\r\n', False))
        self.check_long_line([b'get ' + keys[:1500], keys[1500:], b'\r\n'],
                             (b'END\r\nMN\r\n', False))

    def test_long_get_line_with_leading_spaces(self):
        # memcached skips up to 100 leading spaces before looking for
        # "get " (proto_text.c try_read_command_ascii).
        keys = b' '.join(b'nokey%d' % i for i in range(600))
        self.check_long_line([b' ' * 50 + b'get ' + keys, b'\r\n'],
                             (b'END\r\nMN\r\n', False))
        self.check_long_line([b' ' * 101 + b'get ' + keys], (b'', True))

    def test_quit_mid_pipeline(self):
        v = b'w' * 5000
        cases = [b'get a\r\nquit\r\nget b\r\n',
                 b''.join(b'set qt%d 0 0 %d\r\n%s\r\nget qt%d\r\n'
                          % (i, len(v), v, i) for i in range(300))
                 + b'quit\r\nset after_quit 0 0 1\r\nx\r\nget qt1\r\n',
                 b'quit\r\n', b'mg nokey q v\r\nquit\r\n']
        for data in cases:
            out = {}
            for name, port in (('direct', self.mc.port),
                               ('mcfault', self.mcfault.port)):
                s = self.conn(port)
                out[name] = harness.exchange(s, data, rng=random.Random(2),
                                             until_eof=True, timeout=10)
            d, p = out['direct'], out['mcfault']
            self.assertTrue(d.eof, 'precondition: %r' % d)
            harness.assert_same_bytes(self, d.data, p.data,
                                      'quit in %r...' % data[:60])
            self.assertTrue(p.eof, 'mcfault kept the connection open '
                            'after quit: %r' % p)
        got = harness.request(self.mc.port, b'get after_quit\r\n',
                              b'END\r\n')
        self.assertEqual(got, b'END\r\n', 'a command after quit was run')

    def test_get_with_5000_keys(self):
        setup = b''.join(b'set many%d 0 0 %d noreply\r\n%d\r\n'
                         % (i, len(b'%d' % (i * 7)), i * 7)
                         for i in range(0, 5000, 2)) + b'mn\r\n'
        harness.request(self.mc.port, setup, b'MN\r\n')
        for cmd in (b'get', b'gets'):
            line = cmd + b' ' + b' '.join(b'many%d' % i
                                          for i in range(5000)) + b'\r\n'
            out = {}
            for name, port in (('direct', self.mc.port),
                               ('mcfault', self.mcfault.port)):
                s = self.conn(port)
                rep = harness.exchange(s, line, b'END\r\n',
                                       rng=random.Random(9), max_piece=3000,
                                       timeout=20)
                out[name] = rep.data
            self.assertEqual(out['direct'].count(b'VALUE '), 2500,
                             'precondition')
            harness.assert_same_bytes(self, out['direct'], out['mcfault'],
                                      '%s with 5000 keys' % cmd.decode())

    def test_watch(self):
        norm = re.compile(rb'(ts|gid|cfd)=\S+')

        def run(port):
            harness.request(self.mc.port, b'delete watched\r\n', b'\r\n')
            w = self.conn(port)
            w.sendall(b'watch fetchers mutations\r\n')
            rep = harness.recv_until(w, b'\r\n', timeout=5)
            if rep.data != b'OK\r\n':
                return rep.data, []
            c = self.conn(port)
            c.sendall(b'get watched\r\nset watched 0 0 2\r\nhi\r\n'
                      b'get watched\r\nmg watched v\r\n')
            harness.recv_until(c, b'VA 2\r\nhi\r\n', timeout=5)
            lines = []
            buf = b''
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                r = harness.recv_until(w, None, timeout=0.5)
                buf += r.data
                if buf.count(b'\n') >= 4 and not r.data:
                    break
            for line in buf.split(b'\n'):
                if line:
                    lines.append(norm.sub(rb'\1=X', line))
            return rep.data, lines

        d = run(self.mc.port)
        self.assertEqual(d[0], b'OK\r\n')
        self.assertGreaterEqual(len(d[1]), 4, 'precondition: %r' % (d,))
        p = run(self.mcfault.port)
        self.assertEqual(p, d, 'watch through mcfault (ts/gid/cfd masked)')

    # ---- upstream failures (own processes)

    def test_upstream_down_at_connect(self):
        port = harness.free_port()
        p = harness.start_mcfault_for_test(self, port, ['-v'])
        t0 = time.monotonic()
        s = self.conn(p.port)
        rep = harness.recv_until(s, None, timeout=5)
        took = time.monotonic() - t0
        self.assertEqual((rep.data, rep.eof), (b'', True),
                         'upstream refused: client should get EOF: %r' % rep)
        self.assertLess(took, 2.0, 'EOF took %.1fs' % took)
        # With a request already sent (a reset is fine then).
        s = self.conn(p.port)
        s.sendall(b'version\r\n')
        rep = harness.recv_until(s, None, timeout=5)
        self.assertTrue(closed(rep) and rep.data == b'', repr(rep))
        self.assertTrue(harness.wait_for(
            lambda: 'refused' in p.stderr_text().lower(), timeout=3),
            'the refusal is not logged with -v; stderr: %r'
            % p.stderr_tail(1000))
        self.assertTrue(p.alive())
        harness.start_memcached_for_test(self, port=port)
        self.assert_works(p.port, 'after memcached came up')
        self.assertTrue(p.alive())

    def test_upstream_killed_mid_stream(self):
        m = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, m.port)
        # Idle connection: EOF promptly when memcached dies.
        idle = self.conn(p.port)
        idle.sendall(b'version\r\n')
        self.assertEqual(harness.recv_until(idle, VERSION_LINE).data,
                         VERSION_LINE)
        # Busy connection: many big replies in flight.
        v = random.Random(3).randbytes(500000)
        harness.request(m.port, b'set big 0 0 %d\r\n%s\r\n' % (len(v), v),
                        b'STORED\r\n')
        one = b'VALUE big 0 %d\r\n%s\r\nEND\r\n' % (len(v), v)
        busy = self.conn(p.port)
        busy.sendall(b'get big\r\n' * 100)
        first = harness.recv_until(busy, nbytes=2 * len(one), timeout=10)
        self.assertGreaterEqual(len(first.data), 2 * len(one), repr(first))
        m.kill9()
        t0 = time.monotonic()
        rest = harness.recv_until(busy, None, timeout=15)
        got = first.data + rest.data
        self.assertTrue(closed(rest), 'no EOF after memcached died: %r'
                        % rest)
        self.assertLess(time.monotonic() - t0, 10)
        full = one * 100
        self.assertTrue(full.startswith(got),
                        'bytes after memcached died are not a prefix of its '
                        'replies: %s' % harness.describe_diff(
                            full[:len(got)], got))
        irep = harness.recv_until(idle, None, timeout=5)
        self.assertEqual((irep.data, irep.eof), (b'', True),
                         'idle client: %r' % irep)
        self.assertTrue(p.alive(), 'mcfault died with its upstream')
        m.start()
        self.assert_works(p.port, 'after memcached restarted')

    def test_upstream_connection_limit_error_passes_through(self):
        # memcached over its -c limit accepts, sends "ERROR Too many open
        # connections" unasked, and closes.
        m = harness.Memcached(extra_args=['-c', '30'])
        self.addCleanup(m.stop)
        m.start()
        p = harness.start_mcfault_for_test(self, m.port)

        def run(port):
            socks = [self.conn(port) for _ in range(40)]
            out = []
            for s in socks:
                try:
                    s.sendall(b'version\r\n')
                except OSError as e:
                    out.append(('send failed', type(e).__name__))
                    continue
                r = harness.recv_until(s, b'\r\n', timeout=3)
                if r.data.startswith(b'ERROR'):
                    r2 = harness.recv_until(s, None, timeout=3)
                    out.append((r.data + r2.data, closed(r2)))
                else:
                    out.append((r.data, closed(r)))
            for s in socks:
                s.close()

            def drained():
                try:
                    return int(m.stats()['curr_connections']) <= 2
                except AssertionError:      # still over the limit
                    return False
            self.assertTrue(harness.wait_for(drained, timeout=10))
            return out

        # Which connection is the first one over the limit depends on when
        # memcached notices earlier ones closing; the shapes must match.
        ok = (VERSION_LINE, False)
        refused = (b'ERROR Too many open connections\r\n', True)
        d = run(m.port)
        self.assertTrue(ok in d and refused in d and set(d) == {ok, refused},
                        'precondition: %r' % d)
        got = run(p.port)
        self.assertEqual(set(got), {ok, refused}, got)
        self.assertLessEqual(abs(got.count(ok) - d.count(ok)), 2, got)

    # ---- backpressure (house style: stop reading one side while the
    # other side's output is over a high mark)

    def test_slow_client_does_not_make_mcfault_buffer_everything(self):
        m = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, m.port)
        v = random.Random(4).randbytes(1000000)
        harness.request(m.port, b'set big 0 0 %d\r\n%s\r\n' % (len(v), v),
                        b'STORED\r\n')
        one = b'VALUE big 0 %d\r\n%s\r\nEND\r\n' % (len(v), v)
        self.assert_works(p.port)
        base = harness.rss_kb(p.pid)
        s = self.conn(p.port)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        n = 120
        s.sendall(b'get big\r\n' * n)
        time.sleep(3)
        grew = (harness.rss_kb(p.pid) - base) // 1024
        rep = harness.recv_until(s, nbytes=len(one) * n, timeout=60)
        self.assertEqual(len(rep.data), len(one) * n, repr(rep))
        self.assertTrue(rep.data == one * n, 'reply bytes wrong')
        harness.log('slow client: RSS grew %d MB' % grew)
        self.assertLess(grew, 32,
                        'mcfault RSS grew by %d MB while a client did not '
                        'read %d MB of replies' % (grew, len(one) * n >> 20))

    def test_stopped_upstream_does_not_make_mcfault_buffer_everything(self):
        m = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, m.port)
        self.assert_works(p.port)
        base = harness.rss_kb(p.pid)
        v = random.Random(6).randbytes(500000)
        n = 160
        req = b''.join(b'set up%d 0 0 %d noreply\r\n%s\r\n'
                       % (i % 7, len(v), v)
                       for i in range(n)) + b'mn\r\n'
        s = self.conn(p.port)
        harness.stop_process(m.pid)
        try:
            sent = []
            t = threading.Thread(target=lambda: sent.append(
                s.sendall(req)), daemon=True)
            t.start()
            time.sleep(3)
            grew = (harness.rss_kb(p.pid) - base) // 1024
        finally:
            os.kill(m.pid, signal.SIGCONT)
        t.join(60)
        rep = harness.recv_until(s, b'MN\r\n', timeout=60)
        self.assertEqual(rep.data, b'MN\r\n')
        harness.log('stopped upstream: RSS grew %d MB' % grew)
        self.assertLess(grew, 32,
                        'mcfault RSS grew by %d MB while memcached was '
                        'stopped and a client sent %d MB' % (grew,
                                                             len(req) >> 20))


class SignalsTest(unittest.TestCase):

    def test_sigint_exits_cleanly(self):
        m = harness.start_memcached_for_test(self)
        p = harness.Mcfault(m.port)
        p.start()
        try:
            harness.request(p.port, b'version\r\n', VERSION_LINE)
        finally:
            p.stop_and_check(signal.SIGINT)

    def test_sigterm_with_busy_connections(self):
        m = harness.start_memcached_for_test(self)
        p = harness.Mcfault(m.port)
        p.start()
        socks = []
        try:
            v = b'q' * 300000
            harness.request(m.port, b'set big 0 0 %d\r\n%s\r\n' % (len(v), v),
                            b'STORED\r\n')
            for i in range(10):
                s = harness.connect(p.port)
                socks.append(s)
                if i % 3 == 0:
                    s.sendall(b'set mid 0 0 100000\r\n' + b'x' * 1000)
                elif i % 3 == 1:
                    s.sendall(b'get big\r\n' * 20)
                else:
                    s.sendall(b'get big\r\n')
                    harness.recv_until(s, b'END\r\n', timeout=5)
            time.sleep(0.3)
        finally:
            try:
                p.stop_and_check(signal.SIGTERM)
            finally:
                for s in socks:
                    s.close()


class CommandLineTest(unittest.TestCase):

    def run_mcfault(self, args, timeout=10):
        env = dict(os.environ)
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
        return subprocess.run([harness.MCFAULT_BIN] + args,
                              capture_output=True, timeout=timeout, env=env)

    def assert_no_sanitizer(self, r):
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m.encode(), r.stderr)

    def test_bad_options_exit_2(self):
        free = harness.free_port()
        good_u = '%s:%d' % (HOST, harness.free_port())
        cases = [
            ['--bogus'],
            ['-x'],
            ['-l'],
            ['-u'],
            ['-l', '127.0.0.1:99999', '-u', good_u],
            ['-l', '127.0.0.1:abc', '-u', good_u],
            ['-l', '127.0.0.1:0', '-u', good_u],
            ['-l', '127.0.0.1:%d' % free, '-u', '127.0.0.1:65536'],
            ['-l', '[::1', '-u', good_u],
            ['-l', '127.0.0.1:%d' % free, '-u', good_u, '-c'],
            ['-l', '127.0.0.1:%d' % free, '-u', good_u, '--event-log'],
            ['-l', '127.0.0.1:%d' % free, '-u', good_u, 'stray'],
        ]
        for args in cases:
            with self.subTest(args=args):
                try:
                    r = self.run_mcfault(args, timeout=5)
                except subprocess.TimeoutExpired:
                    self.fail('mcfault %s did not exit (it should refuse '
                              'the options with status 2)' % args)
                self.assertEqual(r.returncode, 2, 'mcfault %s: status %d, '
                                 'stderr %r' % (args, r.returncode,
                                                r.stderr[-500:]))
                self.assertTrue(r.stderr.strip(), 'no message on stderr')
                self.assert_no_sanitizer(r)

    def test_listen_port_in_use_fails(self):
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind((HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        try:
            r = self.run_mcfault(['-l', '%s:%d' % (HOST, port), '-u',
                                  '%s:%d' % (HOST, harness.free_port())],
                                 timeout=5)
        except subprocess.TimeoutExpired:
            self.fail('mcfault kept running although it could not listen')
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(r.stderr.strip())
        self.assert_no_sanitizer(r)

    def test_version(self):
        with open(os.path.join(os.path.dirname(__file__), '..', '..',
                               'CMakeLists.txt')) as f:
            want = re.search(r'project\(mcfault VERSION ([0-9.]+)',
                             f.read()).group(1)
        r = self.run_mcfault(['--version'])
        self.assertEqual(r.returncode, 0)
        self.assertIn(want.encode(), r.stdout + r.stderr)
        self.assert_no_sanitizer(r)

    def test_help(self):
        r = self.run_mcfault(['--help'])
        self.assertEqual(r.returncode, 0)
        text = r.stdout + r.stderr
        for opt in (b'-l', b'-u', b'-v', b'--version'):
            self.assertIn(opt, text)
        self.assert_no_sanitizer(r)


if __name__ == '__main__':
    unittest.main()

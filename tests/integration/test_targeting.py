# Which connections and commands a rule applies to: `client:` (addresses
# and CIDR blocks, IPv4 and IPv6), `connections:` (a seeded share of
# connections, one draw per connection shared by all rules), `min_size` /
# `max_size` (data blocks of storage commands), `schedule` (windows counted
# from when the rule was loaded, shown by GET /rules), and `command:
# connect` rules (drop with FIN or RST, delay, hang, error) on new
# connections.
#
# Clients pick their source address with bind() on the 127.0.0.0/8
# loopback block, so one mcfault tells 127.0.0.1 from 127.0.0.2. Times are
# only checked as lower bounds, or where the outcome cannot depend on the
# machine's speed (a schedule sample counts only when every moment the
# command could have been judged at lies in the same window).

import http.client
import json
import os
import select
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put  # noqa: E402

TOO_LARGE = b'SERVER_ERROR object too large for cache\r\n'
TOO_MANY = b'ERROR Too many open connections\r\n'


# --------------------------------------------------------------------------
# helpers


def connect_from(port, src, timeout=5.0, host=harness.HOST):
    """A TCP connection to host:port from source address src (port 0).
    May raise ConnectionResetError when the server resets it at once."""
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        s.close()
        raise
    return s


def ask(port, src, data, tail, timeout=5.0, host=harness.HOST):
    """One connection from src: sends data, reads until tail (or EOF,
    reset, timeout). Returns the harness Reply."""
    s = connect_from(port, src, timeout, host)
    try:
        return harness.exchange(s, data, tail, timeout=timeout, drain=0.05)
    finally:
        s.close()


def value_reply(key, value, flags=0):
    return b'VALUE %s %d %d\r\n%s\r\nEND\r\n' % (key, flags, len(value), value)


def admin_rules(port, proxy=None):
    """GET /rules as {name: rule dict} (the one proxy's rules)."""
    c = http.client.HTTPConnection(harness.HOST, port, timeout=5)
    try:
        c.request('GET', '/rules')
        r = c.getresponse()
        body = r.read()
    finally:
        c.close()
    if r.status != 200:
        raise AssertionError('GET /rules: %d %r' % (r.status, body[:300]))
    doc = json.loads(body)
    rules = doc['proxies'][0]['rules']
    return {x['name']: x for x in rules}


def start_with_admin(tc, up_port, cfg):
    """For one test: an mcfault with the rule file cfg and the admin API;
    (the mcfault, the admin port)."""
    admin = harness.free_port()
    m = harness.start_mcfault_for_test(tc, up_port,
                                       ['-c', cfg, '--admin', str(admin)])
    harness.wait_port(admin, 10, m.proc, 'admin API')
    return m, admin


class DualStackMcfault(harness.Mcfault):
    """mcfault listening on [::]:port: IPv6 clients (::1) and IPv4 clients
    (seen as ::ffff:127.0.0.1) on one port; the harness probes still reach
    it on 127.0.0.1."""

    def command(self):
        return [self.binary, '-l', '[::]:%d' % self.port,
                '-u', '%s:%d' % (harness.HOST, self.upstream_port)] + self.args


def ipv6_loopback_usable():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        s.bind(('::1', 0))
        return True
    except OSError:
        return False
    finally:
        s.close()


# --------------------------------------------------------------------------
# client:

CLIENT_RULES = r'''
rules:
  - {name: only-two, client: 127.0.0.2, key: "c2:*", action: error,
     message: SERVER_ERROR only two}
  - {name: loopback, client: 127.0.0.0/8, key: "c8:*", action: error,
     message: SERVER_ERROR loopback}
  - {name: six, client: "::1", key: "c6:*", action: error,
     message: SERVER_ERROR six}
  - {name: listed, client: [127.0.0.3, "::1"], key: "cl:*", action: error,
     message: SERVER_ERROR listed}
  # The first rule only for 127.0.0.2; everyone else falls through to the
  # second.
  - {name: first, client: 127.0.0.2, key: "ft:*", action: error,
     message: SERVER_ERROR first}
  - {name: second, key: "ft:*", action: error, message: SERVER_ERROR second}
'''


class ClientTargetingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, CLIENT_RULES)
        for k in ('c2:k', 'c8:k', 'c6:k', 'cl:k', 'ft:k', 'plain:k'):
            put(cls.up.port, k, 'val-' + k)

    def get_from(self, src, key, n=3):
        """n pipelined gets of key on one connection from src; returns the
        reply to one of them after checking that all n got the same."""
        one = self._one(key)
        s = connect_from(self.mcfault.port, src)
        data = b''
        try:
            s.sendall(b'get %s\r\n' % key * n)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                if data == one * n:
                    return one
                line = data.split(b'\r\n', 1)[0] + b'\r\n'
                if line.startswith(b'SERVER_ERROR') and data == line * n:
                    return line
                r = harness.recv_until(s, None, timeout=0.05)
                data += r.data
                if r.eof or r.reset:
                    break
        finally:
            s.close()
        self.fail('%s from %s: %d gets, mixed or odd replies %r'
                  % (key, src, n, data))

    def _one(self, key):
        return value_reply(key, b'val-' + key)

    def test_single_address_matches_only_that_client(self):
        self.assertEqual(self.get_from('127.0.0.2', b'c2:k'),
                         b'SERVER_ERROR only two\r\n')
        for src in ('127.0.0.1', '127.0.0.3', '127.0.2.2'):
            self.assertEqual(self.get_from(src, b'c2:k'),
                             self._one(b'c2:k'), src)

    def test_cidr_matches_every_address_in_it(self):
        for src in ('127.0.0.1', '127.0.0.2', '127.200.1.1'):
            self.assertEqual(self.get_from(src, b'c8:k'),
                             b'SERVER_ERROR loopback\r\n', src)
        # Other keys from the same clients are untouched.
        self.assertEqual(self.get_from('127.0.0.2', b'plain:k'),
                         self._one(b'plain:k'))

    def test_ipv6_address_never_matches_ipv4_clients(self):
        for src in ('127.0.0.1', '127.0.0.2', '127.0.0.3'):
            self.assertEqual(self.get_from(src, b'c6:k'),
                             self._one(b'c6:k'), src)
        # The list form: 127.0.0.3 is in it, 127.0.0.1 is not.
        self.assertEqual(self.get_from('127.0.0.3', b'cl:k'),
                         b'SERVER_ERROR listed\r\n')
        self.assertEqual(self.get_from('127.0.0.1', b'cl:k'),
                         self._one(b'cl:k'))

    def test_other_client_falls_through_and_is_not_counted(self):
        before = admin_rules(self.admin)
        self.assertEqual(before['only-two']['client'], ['127.0.0.2/32'])
        self.assertEqual(before['loopback']['client'], ['127.0.0.0/8'])
        self.assertEqual(before['listed']['client'],
                         ['127.0.0.3/32', '::1/128'])
        # Three gets from 127.0.0.1, two connections from 127.0.0.2.
        self.assertEqual(self.get_from('127.0.0.1', b'ft:k', n=3),
                         b'SERVER_ERROR second\r\n')
        self.assertEqual(self.get_from('127.0.0.2', b'ft:k', n=2),
                         b'SERVER_ERROR first\r\n')
        after = admin_rules(self.admin)

        def delta(name, field):
            return after[name][field] - before[name][field]
        self.assertEqual((delta('first', 'matched'), delta('first', 'fired')),
                         (2, 2), 'only the 127.0.0.2 gets count for first')
        self.assertEqual((delta('second', 'matched'),
                          delta('second', 'fired')), (3, 3))

    @unittest.skipUnless(ipv6_loopback_usable(), 'no IPv6 loopback')
    def test_ipv6_client_on_dual_stack_listener(self):
        m = DualStackMcfault(self.up.port, ['-c', self.cfg])
        self.addCleanup(m.stop_and_check)
        m.start()
        for key, want in ((b'c6:k', b'SERVER_ERROR six\r\n'),
                          (b'cl:k', b'SERVER_ERROR listed\r\n'),
                          (b'c8:k', self._one(b'c8:k')),
                          (b'c2:k', self._one(b'c2:k'))):
            rep = ask(m.port, '::1', b'get %s\r\n' % key, want[-2:],
                      host='::1')
            self.assertEqual(rep.data, want, 'from ::1: %s' % key)
        # An IPv4 client on the same listener (::ffff:127.0.0.1) is still
        # an IPv4 client for the rules.
        for key, want in ((b'c6:k', self._one(b'c6:k')),
                          (b'c8:k', b'SERVER_ERROR loopback\r\n')):
            rep = ask(m.port, '127.0.0.1', b'get %s\r\n' % key, want[-2:])
            self.assertEqual(rep.data, want, 'from 127.0.0.1: %s' % key)


# --------------------------------------------------------------------------
# connections:

SHARE_RULES = r'''
seed: %d
rules:
  - {name: half, connections: 50%%, key: "h:*", action: error,
     message: SERVER_ERROR half}
  - {name: tenth, connections: 10%%, key: "t:*", action: error,
     message: SERVER_ERROR tenth}
  - {name: quarter, connections: 0.25, key: "q:*", action: error,
     message: SERVER_ERROR quarter}
'''

N_CONNS = 40
N_HALF = 8  # gets of h:k per connection


class ConnectionShareTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.up = harness.start_memcached_for_class(cls)
        for k in ('h:k', 't:k', 'q:k'):
            put(cls.up.port, k, 'v')

    def pattern(self, seed):
        """Starts an mcfault with the given seed, makes N_CONNS connections
        one after another, each sending N_HALF gets of h:k then t:k and
        q:k; returns three tuples of booleans (faulted per connection) for
        half, tenth and quarter. Fails when one connection got both
        answers for the same rule."""
        cfg = faultkit.write_file(self, SHARE_RULES % seed)
        m = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        ok = {k: value_reply(k, b'v') for k in (b'h:k', b't:k', b'q:k')}
        err = {b'h:k': b'SERVER_ERROR half\r\n',
               b't:k': b'SERVER_ERROR tenth\r\n',
               b'q:k': b'SERVER_ERROR quarter\r\n'}
        req = b'get h:k\r\n' * N_HALF + b'get t:k\r\nget q:k\r\n'
        half, tenth, quarter = [], [], []
        for i in range(N_CONNS):
            s = harness.connect(m.port)
            try:
                rep = harness.exchange(s, req, b'\r\n', timeout=5, drain=0)
                # Read until the last reply is complete.
                want_min = N_HALF * len(err[b'h:k']) + len(err[b't:k']) + \
                    len(err[b'q:k'])
                data = rep.data
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if self._parse(data, ok, err) is not None:
                        break
                    more = harness.recv_until(s, None, timeout=0.05)
                    data += more.data
                    if more.eof or more.reset:
                        break
            finally:
                s.close()
            parsed = self._parse(data, ok, err)
            self.assertIsNotNone(
                parsed, 'connection %d (seed %d): replies mix faulted and '
                'normal answers for one rule, or are cut: %r (at least %d '
                'bytes expected)' % (i, seed, data, want_min))
            h, t, q = parsed
            half.append(h)
            tenth.append(t)
            quarter.append(q)
        return tuple(half), tuple(tenth), tuple(quarter)

    @staticmethod
    def _parse(data, ok, err):
        for h in (False, True):
            for t in (False, True):
                for q in (False, True):
                    want = ((err if h else ok)[b'h:k'] * N_HALF
                            + (err if t else ok)[b't:k']
                            + (err if q else ok)[b'q:k'])
                    if data == want:
                        return h, t, q
        return None

    def test_share_is_per_connection_seeded_and_nested(self):
        half, tenth, quarter = self.pattern(1234)
        n = sum(half)
        harness.log('seed 1234: half %d, tenth %d, quarter %d of %d'
                    % (n, sum(tenth), sum(quarter), N_CONNS))
        self.assertTrue(0 < n < N_CONNS,
                        'connections: 50%% faulted %d of %d connections'
                        % (n, N_CONNS))
        # One draw per connection, shared: the 10% rule's connections are
        # among the 25% rule's, which are among the 50% rule's.
        for i in range(N_CONNS):
            if tenth[i]:
                self.assertTrue(quarter[i], 'connection %d: tenth without '
                                'quarter: %r / %r' % (i, tenth, quarter))
            if quarter[i]:
                self.assertTrue(half[i], 'connection %d: quarter without '
                                'half: %r / %r' % (i, quarter, half))
        self.assertLess(sum(quarter), N_CONNS)
        # The same seed, a new process: the same connections.
        again = self.pattern(1234)
        self.assertEqual(again, (half, tenth, quarter),
                         'seed 1234 gave another pattern on a second run')
        # Another seed: another draw (the chance of 40 equal coin flips is
        # 2^-40).
        other = self.pattern(99)
        self.assertNotEqual(other[0], half,
                            'seed 99 drew the same connections as seed 1234')


# --------------------------------------------------------------------------
# min_size / max_size

SIZE_RULES = r'''
rules:
  # Writes over 512 KiB fail the way memcached refuses items over -I.
  - name: too-big
    command: [set, add, replace, append, prepend, cas, ms]
    min_size: 512KiB
    action: error
    message: SERVER_ERROR object too large for cache
  - {name: band, key: "b:*", min_size: 100, max_size: 200, action: error,
     message: SERVER_ERROR band}
  # No command list: only commands with a data block can match.
  - {name: sized, key: "g:*", max_size: 1MiB, action: error,
     message: SERVER_ERROR sized}
'''


class SizeTargetingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, SIZE_RULES)

    def store(self, cmd, key, n, extra=b''):
        """`cmd key 0 0 n` (classic) with n bytes of data; the reply."""
        data = bytes((ord('a') + i % 26) for i in range(n))
        req = b'%s %s 0 0 %d%s\r\n%s\r\n' % (cmd, key, n, extra, data)
        rep = faultkit.talk(self.mcfault.port, req, b'\r\n', timeout=20)
        return rep.data, data

    def test_large_write_refused_small_stored(self):
        data, _ = self.store(b'set', b'big:1', 600 * 1024)
        self.assertEqual(data, TOO_LARGE)
        self.assertIsNone(get_value(self.up.port, 'big:1'))
        data, value = self.store(b'set', b'big:2', 1024)
        self.assertEqual(data, b'STORED\r\n')
        self.assertEqual(get_value(self.up.port, 'big:2'), value)
        # Meta: the same line (memcached sends no opaque or k on it).
        big = b'x' * (600 * 1024)
        rep = faultkit.talk(self.mcfault.port, b'ms big:3 %d O7 k\r\n%s\r\n'
                            % (len(big), big), b'\r\n', timeout=20)
        self.assertEqual(rep.data, TOO_LARGE)
        self.assertIsNone(get_value(self.up.port, 'big:3'))
        small = b'y' * 1024
        rep = faultkit.talk(self.mcfault.port, b'ms big:4 %d O7 k\r\n%s\r\n'
                            % (len(small), small), b'\r\n')
        self.assertEqual(rep.data, b'HD O7 kbig:4\r\n')
        self.assertEqual(get_value(self.up.port, 'big:4'), small)

    def test_other_storage_commands_and_pipelines(self):
        put(self.up.port, 'big:app', 'base')
        data, _ = self.store(b'append', b'big:app', 600 * 1024)
        self.assertEqual(data, TOO_LARGE)
        self.assertEqual(get_value(self.up.port, 'big:app'), b'base')
        data, _ = self.store(b'add', b'big:add', 700 * 1024)
        self.assertEqual(data, TOO_LARGE)
        # In a pipeline the refused write's reply sits in its place.
        big = b'z' * (513 * 1024)
        req = (b'set big:p1 0 0 2\r\nok\r\n'
               b'set big:p2 0 0 %d\r\n%s\r\n'
               b'get big:p1\r\n' % (len(big), big))
        rep = faultkit.talk(self.mcfault.port, req, b'END\r\n', timeout=20)
        self.assertEqual(rep.data, b'STORED\r\n' + TOO_LARGE
                         + value_reply(b'big:p1', b'ok'))

    def test_bounds_are_inclusive_and_exclude_crlf(self):
        for key, n, want in ((b'big:b0', 512 * 1024 - 1, b'STORED\r\n'),
                             (b'big:b1', 512 * 1024, TOO_LARGE),
                             (b'b:99', 99, b'STORED\r\n'),
                             (b'b:100', 100, b'SERVER_ERROR band\r\n'),
                             (b'b:200', 200, b'SERVER_ERROR band\r\n'),
                             (b'b:201', 201, b'STORED\r\n')):
            data, _ = self.store(b'set', key, n)
            self.assertEqual(data, want, '%s: %d bytes' % (key, n))

    def test_commands_without_data_block_never_match(self):
        before = admin_rules(self.admin)
        self.assertEqual((before['too-big']['min_size'],
                          before['too-big']['max_size']), (524288, None))
        self.assertEqual((before['band']['min_size'],
                          before['band']['max_size']), (100, 200))
        # A write matches...
        data, _ = self.store(b'set', b'g:1', 10)
        self.assertEqual(data, b'SERVER_ERROR sized\r\n')
        # ...reads, deletes, counters, touches do not, whatever they carry.
        big = b'B' * (600 * 1024)
        put(self.up.port, 'g:2', big)
        put(self.up.port, 'g:n', '5')
        req = (b'get g:2\r\nmg g:2 s v\r\ngets g:n\r\nincr g:n 1\r\n'
               b'touch g:n 0\r\ndelete g:n\r\nmn\r\n')
        rep = faultkit.talk(self.mcfault.port, req, b'MN\r\n', timeout=20)
        cas = rep.data.split(b'VALUE g:n 0 1 ', 1)[1].split(b'\r\n', 1)[0]
        want = (value_reply(b'g:2', big)
                + b'VA %d s%d\r\n%s\r\n' % (len(big), len(big), big)
                + b'VALUE g:n 0 1 ' + cas + b'\r\n5\r\nEND\r\n'
                + b'6\r\nTOUCHED\r\nDELETED\r\nMN\r\n')
        harness.assert_same_bytes(self, want, rep.data, 'unsized commands')
        after = admin_rules(self.admin)
        self.assertEqual(after['sized']['matched']
                         - before['sized']['matched'], 1,
                         'only the set counts as matched')
        self.assertEqual(after['too-big']['matched'],
                         before['too-big']['matched'],
                         'a 600 KiB value read back is not a match')


# --------------------------------------------------------------------------
# schedule

SCHEDULE_RULES = r'''
rules:
  - {name: blink, key: "s:*", action: error, message: SERVER_ERROR blink,
     schedule: {start: 1s, duration: 1s, every: 2s}}
  - {name: blink-connect, command: connect, client: 127.0.0.3, action: error,
     message: SERVER_ERROR refused,
     schedule: {start: 1s, duration: 1s, every: 2s}}
  - {name: later, key: "l:*", action: error, message: SERVER_ERROR later,
     schedule: {start: 1500ms}}
  - {name: once, key: "o:*", action: error, message: SERVER_ERROR once,
     schedule: {start: 0s, duration: 1s}}
  - {name: always, key: "a:*", action: error, message: SERVER_ERROR always}
'''


def blink_on(e):
    """In force e seconds after load for {start 1s, duration 1s, every 2s}."""
    return e >= 1.0 and (e - 1.0) % 2.0 < 1.0


def window_state(lo, hi, on):
    """True/False when on(e) is the same for the whole interval [lo, hi]
    (sampled every 5 ms plus both ends), None when it changes within."""
    vals = set()
    e = lo
    while e < hi:
        vals.add(on(e))
        e += 0.005
    vals.add(on(hi))
    return vals.pop() if len(vals) == 1 else None


class ScheduleTest(unittest.TestCase):

    MARGIN = 0.02  # seconds of slack around the known load interval

    @classmethod
    def setUpClass(cls):
        cls.up = harness.start_memcached_for_class(cls)
        for k in ('s:k', 'l:k', 'o:k', 'a:k'):
            put(cls.up.port, k, 'v')

    def start(self, text=SCHEDULE_RULES):
        cfg = faultkit.write_file(self, text)
        t0 = time.monotonic()
        m, admin = start_with_admin(self, self.up.port, cfg)
        t1 = time.monotonic()
        # The rules were loaded in [t0, t1]: the process started after t0
        # and accepted connections before t1.
        return m, admin, cfg, t0, t1

    def sample(self, sock, key):
        """One get on an open connection: (sent, received, faulted)."""
        ok = value_reply(key, b'v')
        ts = time.monotonic()
        sock.sendall(b'get %s\r\n' % key)
        r = harness.recv_until(sock, b'\r\n', timeout=5)
        if r.data.startswith(b'VALUE') and not r.data.endswith(b'END\r\n'):
            r.data += harness.recv_until(sock, b'END\r\n', timeout=5).data
        tr = time.monotonic()
        if r.data == ok:
            return ts, tr, False
        self.assertTrue(r.data.startswith(b'SERVER_ERROR'),
                        'get %s: %r' % (key, r.data))
        return ts, tr, r.data

    def connect_sample(self, port):
        """A new connection from 127.0.0.3 asking `version`: (sent,
        received, refused)."""
        ts = time.monotonic()
        try:
            s = connect_from(port, '127.0.0.3')
        except ConnectionResetError:
            self.fail('connect from 127.0.0.3 reset')
        try:
            s.sendall(b'version\r\n')
            r = harness.recv_until(s, b'\r\n', timeout=5)
        finally:
            s.close()
        tr = time.monotonic()
        if r.data.startswith(b'VERSION '):
            return ts, tr, False
        self.assertEqual(r.data, b'SERVER_ERROR refused\r\n', r)
        return ts, tr, True

    def test_windows_on_and_off(self):
        m, admin, cfg, t0, t1 = self.start()
        s = harness.connect(m.port)
        self.addCleanup(s.close)
        seen = {'blink': [], 'connect': [], 'later': [], 'once': []}
        faulted_blinks = 0
        sent_blinks = 0
        end = t1 + 4.3
        while time.monotonic() < end:
            ts, tr, f = self.sample(s, b's:k')
            sent_blinks += 1
            if f:
                self.assertEqual(f, b'SERVER_ERROR blink\r\n')
                faulted_blinks += 1
            seen['blink'].append((ts, tr, bool(f)))
            seen['connect'].append(self.connect_sample(m.port))
            ts, tr, f = self.sample(s, b'l:k')
            seen['later'].append((ts, tr, bool(f)))
            ts, tr, f = self.sample(s, b'o:k')
            seen['once'].append((ts, tr, bool(f)))
            ts, tr, f = self.sample(s, b'a:k')
            self.assertEqual(f, b'SERVER_ERROR always\r\n')
            time.sleep(0.05)
        ons = {'blink': blink_on, 'connect': blink_on,
               'later': lambda e: e >= 1.5,
               'once': lambda e: e < 1.0}
        for name, samples in seen.items():
            sure = {True: 0, False: 0}
            for ts, tr, got in samples:
                # Judged at some moment in [ts, tr]; loaded in [t0, t1].
                lo = ts - t1 - self.MARGIN
                hi = tr - t0 + self.MARGIN
                want = window_state(max(lo, 0.0), hi, ons[name])
                if want is None:
                    continue
                sure[want] += 1
                self.assertEqual(
                    got, want, '%s: a command %.3f-%.3f s after load was %s '
                    '(want %s)' % (name, lo, hi,
                                   'faulted' if got else 'served',
                                   'faulted' if want else 'served'))
            harness.log('schedule %s: %d sure on, %d sure off, %d samples'
                        % (name, sure[True], sure[False], len(samples)))
            self.assertGreaterEqual(sure[True], 2, name)
            self.assertGreaterEqual(sure[False], 2, name)
        # matched counts only the commands inside a window.
        rules = admin_rules(admin)
        self.assertLess(faulted_blinks, sent_blinks)
        self.assertEqual(rules['blink']['matched'], faulted_blinks)
        self.assertEqual(rules['blink']['fired'], faulted_blinks)
        self.assertEqual(rules['blink-connect']['matched'],
                         sum(1 for x in seen['connect'] if x[2]))
        self.assertEqual(rules['always']['matched'], sent_blinks)

    def test_admin_shows_in_force_and_next_change(self):
        m, admin, cfg, t0, t1 = self.start()
        rules = admin_rules(admin)
        b = rules['blink']
        self.assertEqual(b['schedule'], {'start_us': 1000000,
                                         'duration_us': 1000000,
                                         'every_us': 2000000})
        self.assertEqual(rules['later']['schedule'],
                         {'start_us': 1500000, 'duration_us': 0,
                          'every_us': 0})
        self.assertIs(rules['always']['in_force'], True)
        self.assertIsNone(rules['always']['next_change_ms'])
        self.assertNotIn('schedule', rules['always'])
        s = harness.connect(m.port)
        self.addCleanup(s.close)
        checked = set()
        deadline = t1 + 5.0
        while time.monotonic() < deadline and len(checked) < 2:
            b = admin_rules(admin)['blink']
            state, nxt = b['in_force'], b['next_change_ms']
            self.assertIsInstance(state, bool)
            self.assertIsInstance(nxt, int)
            self.assertTrue(0 < nxt <= 2000, b)
            if nxt < 300 or state in checked:
                time.sleep(nxt / 1000.0 + 0.05)
                continue
            # Well inside a window: a command now sees the same state...
            _, _, f = self.sample(s, b's:k')
            self.assertEqual(bool(f), state, b)
            # ...and once next_change_ms has passed, the other one.
            time.sleep(nxt / 1000.0 + 0.05)
            b2 = admin_rules(admin)['blink']
            self.assertIs(b2['in_force'], not state, (b, b2))
            checked.add(state)
        self.assertEqual(checked, {True, False})
        # By now (> 2 s) `later` is on for good and `once` is over.
        self.assertGreater(time.monotonic() - t1, 2.0)
        rules = admin_rules(admin)
        self.assertEqual((rules['later']['in_force'],
                          rules['later']['next_change_ms']), (True, None))
        self.assertEqual((rules['once']['in_force'],
                          rules['once']['next_change_ms']), (False, None))

    def test_reload_keeping_the_name_keeps_the_clock(self):
        text = r'''
rules:
  - {name: kept, key: "s:*", action: error, message: SERVER_ERROR kept,
     schedule: {start: 2s}}
'''
        m, admin, cfg, t0, t1 = self.start(text)
        time.sleep(max(0.0, t1 + 1.0 - time.monotonic()))
        faultkit.replace_file(cfg, text + r'''
  - {name: fresh, key: "l:*", action: error, message: SERVER_ERROR fresh,
     schedule: {start: 2s}}
''')
        before = faultkit.count_lines(m, r'reload: ok')
        t_hup = time.monotonic()
        m.proc.send_signal(signal.SIGHUP)
        text_err = faultkit.wait_stderr(m, r'reload: ok', timeout=5,
                                        count=before + 1)
        self.assertEqual(faultkit.count_lines(m, r'reload: ok'), before + 1,
                         text_err[-2000:])
        # 2.1 s after the first load (at the latest), less than 2 s after
        # the reload: the kept rule is on, the new one not yet.
        time.sleep(max(0.0, t1 + 2.1 - time.monotonic()))
        s = harness.connect(m.port)
        self.addCleanup(s.close)
        ts, tr, kept = self.sample(s, b's:k')
        ts2, tr2, fresh = self.sample(s, b'l:k')
        if tr2 >= t_hup + 1.95:
            self.skipTest('machine too slow: %.2f s since SIGHUP'
                          % (tr2 - t_hup))
        self.assertEqual(kept, b'SERVER_ERROR kept\r\n',
                         'the reload restarted the clock of a kept rule')
        self.assertIs(fresh, False, 'a new rule starts its clock at reload')
        rules = admin_rules(admin)
        self.assertIs(rules['kept']['in_force'], True)
        self.assertIs(rules['fresh']['in_force'], False)
        self.assertTrue(0 < rules['fresh']['next_change_ms'] <= 2000,
                        rules['fresh'])


# --------------------------------------------------------------------------
# command: connect

CONNECT_RULES = r'''
rules:
  - {name: refuse-fin, command: connect, client: 127.0.0.2, action: drop}
  - {name: refuse-rst, command: connect, client: 127.0.0.3, action: drop,
     close: reset}
  - {name: slow-accept, command: connect, client: 127.0.0.4, action: delay,
     delay: 1s}
  - {name: black-hole, command: connect, client: 127.0.0.5, action: hang}
  - {name: too-many, command: connect, client: 127.0.0.6, action: error}
  - {name: go-away, command: connect, client: 127.0.0.7, action: error,
     message: SERVER_ERROR go away}
  # command "*" is about commands, never about connecting.
  - {name: star-error, command: "*", client: 127.0.0.8, action: error,
     message: SERVER_ERROR star}
  - {name: star-drop, client: 127.0.0.9, action: drop}
  - {name: some, command: connect, client: 127.0.0.10, connections: 50%,
     action: error, message: SERVER_ERROR some}
'''


class ConnectRulesTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, CONNECT_RULES)
        put(cls.up.port, 'k', 'val')

    def served(self, src='127.0.0.1'):
        rep = ask(self.mcfault.port, src, b'get k\r\n', b'END\r\n')
        self.assertEqual(rep.data, value_reply(b'k', b'val'),
                         'client %s not served: %r' % (src, rep))

    def test_drop_closes_with_fin(self):
        s = connect_from(self.mcfault.port, '127.0.0.2')
        try:
            r = harness.recv_until(s, None, timeout=3)
        finally:
            s.close()
        self.assertEqual((r.data, r.eof, r.reset, r.timed_out),
                         (b'', True, False, False), r)
        self.served()

    def test_drop_reset(self):
        try:
            s = connect_from(self.mcfault.port, '127.0.0.3')
        except ConnectionResetError:
            # The RST came before connect() returned.
            pass
        else:
            try:
                r = harness.recv_until(s, None, timeout=3)
            finally:
                s.close()
            self.assertEqual((r.data, r.eof, r.reset), (b'', False, True), r)
        self.served()

    def test_delay_holds_the_connection(self):
        t = time.monotonic()
        s = connect_from(self.mcfault.port, '127.0.0.4')
        self.addCleanup(s.close)
        s.sendall(b'version\r\nget k\r\n')
        # Meanwhile another client is served, before the held one: a
        # delay that blocked the proxy would answer the held connection
        # first.
        self.served('127.0.0.1')
        held_answered = select.select([s], [], [], 0)[0]
        r = harness.recv_until(s, b'END\r\n', timeout=5)
        t_reply = time.monotonic()
        self.assertTrue(r.data.startswith(b'VERSION '), r.data)
        self.assertTrue(r.data.endswith(b'\r\n' + value_reply(b'k', b'val')),
                        r.data)
        self.assertGreaterEqual(t_reply - t, 0.95,
                                'answered before the 1 s connect delay')
        self.assertEqual(held_answered, [],
                         'the held connection was answered before a client '
                         'that came later')
        # Once through, the connection is normal.
        s.sendall(b'get k\r\n')
        r = harness.recv_until(s, b'END\r\n', timeout=5)
        self.assertEqual(r.data, value_reply(b'k', b'val'))

    def test_hang_never_answers_and_closes_with_the_client(self):
        pid = self.mcfault.pid
        base = faultkit.settled_fd_count(pid)
        s = connect_from(self.mcfault.port, '127.0.0.5')
        try:
            s.sendall(b'version\r\nget k\r\n')
            r = harness.recv_until(s, None, timeout=0.5)
            self.assertEqual((r.data, r.eof, r.reset, r.timed_out),
                             (b'', False, False, True), r)
            # Held open, and nobody else notices.
            self.assertGreater(harness.fd_count(pid), base)
            self.served('127.0.0.1')
            self.served('127.0.0.11')
        finally:
            s.close()
        self.assertEqual(faultkit.wait_fds(pid, base), base,
                         'the hung connection was not closed after the '
                         'client closed')

    def test_error_sends_memcached_line_then_closes(self):
        for src, want in (('127.0.0.6', TOO_MANY),
                          ('127.0.0.7', b'SERVER_ERROR go away\r\n')):
            s = connect_from(self.mcfault.port, src)
            try:
                r = harness.recv_until(s, None, timeout=3)
            finally:
                s.close()
            self.assertEqual((r.data, r.eof, r.reset), (want, True, False),
                             '%s: %r' % (src, r))

    def test_other_clients_are_served(self):
        for src in ('127.0.0.1', '127.0.0.12', '127.1.0.2'):
            self.served(src)

    def test_star_rules_never_affect_connecting(self):
        for src in ('127.0.0.8', '127.0.0.9'):
            s = connect_from(self.mcfault.port, src)
            try:
                r = harness.recv_for(s, 0.3)
                self.assertEqual((r.data, r.eof, r.reset), (b'', False, False),
                                 '%s: something happened at connect: %r'
                                 % (src, r))
                s.sendall(b'get k\r\n')
                r = harness.recv_until(s, b'\r\n', timeout=3)
            finally:
                s.close()
            if src == '127.0.0.8':
                self.assertEqual(r.data, b'SERVER_ERROR star\r\n')
            else:
                self.assertEqual((r.data, r.eof), (b'', True), r)
        rules = admin_rules(self.admin)
        self.assertEqual(rules['refuse-fin']['command'], ['connect'])

    def test_connections_share_on_connect(self):
        refused = 0
        n = 30
        for i in range(n):
            s = connect_from(self.mcfault.port, '127.0.0.10')
            try:
                s.sendall(b'version\r\n')
                r = harness.recv_until(s, b'\r\n', timeout=3)
            finally:
                s.close()
            if r.data == b'SERVER_ERROR some\r\n':
                refused += 1
            else:
                self.assertTrue(r.data.startswith(b'VERSION '), r)
        self.assertTrue(0 < refused < n, '%d of %d refused' % (refused, n))


# --------------------------------------------------------------------------
# which combinations the rule file accepts

COMBINATIONS = [
    # (rule, accepted)
    ('{command: connect, action: drop, close: reset, client: 10.0.0.0/8, '
     'connections: 50%, schedule: {start: 1s, duration: 1s, every: 2s}}',
     True),
    ('{command: connect, action: delay, delay: 2s}', True),
    ('{command: connect, action: hang}', True),
    ('{command: connect, action: error}', True),
    ('{command: connect, key: "a:*", action: drop}', False),
    ('{command: [connect, get], action: drop}', False),
    ('{command: connect, action: miss}', False),
    ('{command: connect, action: throttle, rate: 1KiB/s}', False),
    ('{command: connect, action: delay, delay: 1s, forward: true}', False),
    ('{command: connect, action: error, min_size: 1}', False),
    ('{action: drop, close: reset, forward: true}', True),
    ('{action: hang, forward: true}', True),
    ('{action: throttle, rate: 10KiB/s, forward: true}', False),
    ('{action: slice, size: 4, forward: true}', False),
    ('{action: truncate, keep: 4, forward: true}', False),
    ('{action: corrupt, forward: true}', False),
    ('{action: evict, forward: true}', False),
    ('{action: error, message: ERROR, close: reset}', False),
    ('{action: drop, min_size: 2KiB, max_size: 1KiB}', False),
    ('{action: drop, client: 300.1.1.1}', False),
    ('{action: drop, connections: 150%}', False),
    ('{action: drop, schedule: {every: 2s}}', False),
    ('{action: drop, schedule: {start: 1s}}', True),
]


class CombinationsTest(unittest.TestCase):
    """The combinations docs/faults.md lists as valid or refused."""

    def test_check_config(self):
        import subprocess
        for rule, ok in COMBINATIONS:
            with self.subTest(rule):
                path = faultkit.write_file(self, 'rules:\n  - %s\n' % rule)
                p = subprocess.run([harness.MCFAULT_BIN, '--check-config',
                                    path], capture_output=True, text=True,
                                   timeout=30)
                self.assertEqual(p.returncode, 0 if ok else 1,
                                 '%s\nstdout: %s\nstderr: %s'
                                 % (rule, p.stdout, p.stderr))
                for mark in harness.SANITIZER_MARKERS:
                    self.assertNotIn(mark, p.stderr)


if __name__ == '__main__':
    unittest.main()

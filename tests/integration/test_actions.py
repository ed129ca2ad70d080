# The shaping and state actions on the wire: drop with close: reset / fin,
# throttle, slice, truncate, corrupt and evict, on classic and meta
# commands, single and multi-key, noreply / quiet, in pipelines; the stream
# stays in sync after each fault; --check-config on the new keys.
#
# Expected bytes always come from a real memcached: the same request sent
# directly to the upstream memcached (reads that do not change what they
# read) or to a reference memcached holding the same items. Timing checks
# are lower bounds derived from the rule (a rate, an interval) and orderings
# between events; never upper bounds on time.

import base64
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

# Runnable as a path (python3 -m unittest tests/integration/test_actions.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import direct, get_value, put  # noqa: E402

RATE = 20 * 1024  # bytes per second: the throttle rule below says 20KiB/s
SLICE = 7         # the slice rule's piece size
SLICE_GAP = 0.020  # and its interval (20ms)
KEEP = 10         # the truncate rules' keep

RULES = r'''
# Rules of ActionsTest: each key prefix selects one fault.
seed: 11
rules:
  - {name: drop-reset, key: "dr:*", action: drop, close: reset}
  - {name: drop-fin, key: "df:*", action: drop, close: fin}
  - {name: drop-fwd-reset, key: "drf:*", action: drop, forward: true,
     close: reset}
  - {name: throttle, key: "th:*", action: throttle, rate: 20KiB/s}
  - {name: slice, key: "sl:*", action: slice, size: 7, interval: 20ms}
  - {name: slice-range, key: "slr:*", action: slice, size: 1-16,
     interval: 20ms}
  - {name: trunc, key: "tr:*", action: truncate, keep: 10}
  - {name: trunc-reset, key: "trr:*", action: truncate, keep: 10,
     close: reset}
  - {name: trunc-half, key: "trh:*", action: truncate, keep: 50%}
  - {name: corrupt, key: "co:*", action: corrupt, flips: 3}
  - {name: corrupt-bad, command: [get, gets, gat, gats, mg],
     key: "bad:*", action: corrupt, flips: 2}
  - {name: evict, key: "ev:*", action: evict}
'''


def value_of(n, seed):
    """n pseudo-random bytes (any byte value, \\r and \\n included)."""
    return random.Random(seed).randbytes(n)


def bit_diff(a, b):
    """Number of differing bits of two equally long byte strings."""
    assert len(a) == len(b), (len(a), len(b))
    return sum(bin(x ^ y).count('1') for x, y in zip(a, b))


def value_spans(reply):
    """[(key, start, end)] of every value block in a reply made of classic
    VALUE and meta VA replies (plus any line-only replies), using the
    lengths the header lines state. key is None for a VA without k."""
    out = []
    pos = 0
    while pos < len(reply):
        eol = reply.find(b'\r\n', pos)
        if eol < 0:
            break
        parts = reply[pos:eol].split(b' ')
        pos = eol + 2
        n = None
        key = None
        if parts[0] == b'VALUE' and len(parts) >= 4:
            key, n = parts[1], int(parts[3])
        elif parts[0] == b'VA' and len(parts) >= 2:
            n = int(parts[1])
            for f in parts[2:]:
                if f.startswith(b'k'):
                    key = f[1:]
        if n is not None:
            out.append((key, pos, pos + n))
            pos += n + 2
    return out


def b64(s):
    return base64.b64encode(s)


class Collector(threading.Thread):
    """Reads a socket in the background until `want` bytes arrived (or EOF,
    a reset, the timeout), recording when each chunk came."""

    def __init__(self, sock, want, timeout=20.0):
        super().__init__(daemon=True)
        self.sock = sock
        self.want = want
        self.timeout = timeout
        self.data = b''
        self.arrivals = []  # (monotonic time, total length after the chunk)
        self.eof = False
        self.reset = False
        self.lock = threading.Lock()

    def run(self):
        deadline = time.monotonic() + self.timeout
        while len(self.data) < self.want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(min(left, 0.5))
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except ConnectionResetError:
                self.reset = True
                break
            if not chunk:
                self.eof = True
                break
            with self.lock:
                self.data += chunk
                self.arrivals.append((time.monotonic(), len(self.data)))

    def total(self):
        with self.lock:
            return len(self.data)

    def time_of(self, n):
        """When the reply first held at least n bytes (None if never)."""
        for t, total in self.arrivals:
            if total >= n:
                return t
        return None

    def total_at_time_of(self, n):
        """The total received by the chunk that completed the first n
        bytes."""
        for _, total in self.arrivals:
            if total >= n:
                return total
        return None


def recv_chunks(sock, want, timeout=10.0):
    """Reads continuously until want bytes arrived, EOF or the timeout;
    returns the list of chunks recv() returned."""
    chunks = []
    got = 0
    deadline = time.monotonic() + timeout
    while got < want:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            c = sock.recv(4096)
        except socket.timeout:
            break
        if not c:
            break
        chunks.append(c)
        got += len(c)
    return chunks


class ActionsTest(unittest.TestCase):
    """One mcfault with the rules above, in front of `up`; `ref` is a second
    memcached that serves as the oracle where a request changes state."""

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_rules(cls, RULES)
        cls.ref = harness.start_memcached_for_class(cls)

    # ------------------------------------------------------------ helpers

    def both(self, key, value):
        """Stores key in the upstream and in the reference memcached."""
        put(self.up.port, key, value)
        put(self.ref.port, key, value)

    def px(self, data, tail=b'MN\r\n', timeout=10.0):
        """The whole reply through mcfault (asserts it ended with tail and
        the connection stayed open)."""
        rep = faultkit.talk(self.mcfault.port, data, tail, timeout)
        self.assertTrue(rep.data.endswith(tail),
                        'reply through mcfault did not end with %r: %r (%r)'
                        '\nstderr tail:\n%s' % (tail, rep.data[-500:], rep,
                                                self.mcfault.stderr_tail()))
        self.assertFalse(rep.eof or rep.reset,
                         'mcfault closed the connection: %r' % rep)
        return rep.data

    def px_close(self, data, timeout=10.0):
        """Sends data and reads until EOF or a reset; returns the Reply."""
        s = harness.connect(self.mcfault.port, timeout)
        try:
            s.sendall(data)
            return harness.recv_until(s, None, timeout=timeout)
        finally:
            s.close()

    def assert_absent_for_a_while(self, key, wait=0.4):
        """key is not in the upstream memcached, and does not appear there
        within `wait` seconds."""
        v = harness.wait_for(lambda: get_value(self.up.port, key), wait,
                             interval=0.05)
        self.assertIsNone(v, '%s reached memcached' % key)

    def stat(self, name):
        return int(self.up.stats()[name])

    def assert_corrupted(self, want, got, flips, corrupted_keys=None,
                         what=''):
        """got is want with exactly `flips` bits flipped in each value block
        (of the keys in corrupted_keys, or of all values), every other byte
        identical."""
        self.assertEqual(len(got), len(want),
                         '%s: length changed: want %r, got %r'
                         % (what, want[:300], got[:300]))
        spans = value_spans(want)
        self.assertTrue(spans, 'test bug: no values in %r' % want[:200])
        pos = 0
        for key, start, end in spans:
            harness.assert_same_bytes(self, want[pos:start], got[pos:start],
                                      '%s: framing before value %r'
                                      % (what, key))
            if corrupted_keys is None or key in corrupted_keys:
                n = bit_diff(want[start:end], got[start:end])
                self.assertEqual(n, flips,
                                 '%s: value %r: %d bits differ, want %d'
                                 % (what, key, n, flips))
            else:
                harness.assert_same_bytes(self, want[start:end],
                                          got[start:end],
                                          '%s: value %r (not matched by the '
                                          'rule) changed' % (what, key))
            pos = end
        harness.assert_same_bytes(self, want[pos:], got[pos:],
                                  '%s: framing after the last value' % what)

    # ------------------------------------------------------------ drop

    def test_drop_close_reset_after_pipelined_replies(self):
        self.both('ok:dr1', 'one')
        put(self.up.port, 'ok:dr9', 'untouched')
        before = (b'get ok:dr1\r\n'
                  b'set ok:dr2 0 0 2\r\nhi\r\n'
                  b'set ok:dr3 0 0 1 noreply\r\nz\r\n'
                  b'mg ok:dr1 v q k\r\n')
        want = direct(self.ref.port, before, b'kok:dr1\r\none\r\n')
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(before + b'set dr:1 0 0 1\r\nx\r\n'
                  b'delete ok:dr9\r\nget ok:dr1\r\n')
        rep = harness.recv_until(s, want, timeout=10)
        harness.assert_same_bytes(self, want, rep.data,
                                  'replies owed before the dropped command')
        s.settimeout(10)
        with self.assertRaises(ConnectionResetError,
                               msg='close: reset must end with a reset, '
                               'not EOF or more bytes'):
            extra = s.recv(65536)
            self.fail('after the replies: %r instead of a reset' % extra)
        self.assertEqual(get_value(self.up.port, 'ok:dr2'), b'hi')
        self.assertEqual(get_value(self.up.port, 'ok:dr3'), b'z')
        self.assertIsNone(get_value(self.up.port, 'dr:1'),
                          'the dropped set reached memcached')
        self.assertEqual(get_value(self.up.port, 'ok:dr9'), b'untouched',
                         'a command after the drop reached memcached')

    def test_drop_close_reset_nothing_owed(self):
        for req in (b'get dr:2\r\n', b'mg dr:3 v q\r\nmn\r\n',
                    b'set dr:4 0 0 1 noreply\r\nx\r\nmn\r\n'):
            with self.subTest(req=req):
                rep = self.px_close(req)
                self.assertTrue(rep.reset, '%r: want a reset, got %r %r'
                                % (req, rep, rep.data))
                self.assertEqual(rep.data, b'')
        self.assertIsNone(get_value(self.up.port, 'dr:4'))

    def test_drop_close_fin_after_pipelined_replies(self):
        self.both('ok:df1', 'one')
        before = b'get ok:df1\r\nset ok:df2 0 0 2\r\nhi\r\nmn\r\n'
        want = direct(self.ref.port, before, b'MN\r\n')
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(before + b'get df:1\r\nset ok:df3 0 0 1\r\nx\r\n')
        rep = harness.recv_until(s, want, timeout=10)
        harness.assert_same_bytes(self, want, rep.data,
                                  'replies owed before the dropped command')
        rest = harness.recv_until(s, None, timeout=10)
        self.assertTrue(rest.eof and not rest.reset,
                        'close: fin must end with EOF: %r' % rest)
        self.assertEqual(rest.data, b'')
        self.assertEqual(get_value(self.up.port, 'ok:df2'), b'hi')
        self.assertIsNone(get_value(self.up.port, 'ok:df3'))

    def test_drop_forward_reset_write_lands(self):
        self.both('ok:drf0', 'zz')
        want = direct(self.ref.port, b'get ok:drf0\r\n', b'END\r\n')
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(b'get ok:drf0\r\nset drf:1 0 0 2\r\nhi\r\n'
                  b'set ok:drf2 0 0 1\r\nx\r\n')
        rep = harness.recv_until(s, None, timeout=10)
        self.assertTrue(rep.reset, 'want a reset, got %r %r'
                        % (rep, rep.data))
        harness.assert_same_bytes(self, want, rep.data, 'before the drop')
        v = harness.wait_for(lambda: get_value(self.up.port, 'drf:1'), 2)
        self.assertEqual(v, b'hi', 'forward: true, the set was not stored')
        self.assertIsNone(get_value(self.up.port, 'ok:drf2'))
        # noreply and quiet: forwarded, then the reset.
        put(self.up.port, 'drf:del', 'x')
        for req in (b'set drf:3 0 0 2 noreply\r\nho\r\nmn\r\n',
                    b'md drf:del q\r\nmn\r\n'):
            with self.subTest(req=req):
                rep = self.px_close(req)
                self.assertTrue(rep.reset, '%r: %r' % (req, rep))
                self.assertEqual(rep.data, b'')
        self.assertEqual(harness.wait_for(
            lambda: get_value(self.up.port, 'drf:3'), 2), b'ho')
        self.assertTrue(harness.wait_for(
            lambda: get_value(self.up.port, 'drf:del') is None, 2),
            'the forwarded md did not run')

    # ------------------------------------------------------------ throttle

    def test_throttle_big_get_paced_pipeline_waits_others_not(self):
        big = value_of(40 * 1024, 1)
        put(self.up.port, 'th:big', big)
        put(self.up.port, 'ok:tsmall', 'small')
        # An unthrottled value as big, for the other connection.
        put(self.up.port, 'ok:tbig', value_of(40 * 1024, 2))
        req = b'get ok:tsmall\r\nget th:big\r\nget ok:tsmall\r\n'
        small = direct(self.up.port, b'get ok:tsmall\r\n', b'END\r\n')
        want = small + direct(self.up.port, b'get th:big\r\n',
                              b'END\r\n') + small
        small_len = len(small)
        big_len = len(want) - 2 * small_len
        self.assertGreater(big_len, 40 * 1024)
        want_b = direct(self.up.port, b'get ok:tbig\r\n', b'END\r\n')

        a = harness.connect(self.mcfault.port)
        self.addCleanup(a.close)
        col = Collector(a, len(want))
        col.start()
        t0 = time.monotonic()
        a.sendall(req)
        # The throttled reply has begun (some of it arrived)...
        self.assertTrue(harness.wait_for(
            lambda: col.total() > small_len, 10, interval=0.005),
            'nothing of the throttled reply arrived: %r' % col.data[:200])
        # ... and meanwhile another connection is served at full speed.
        b = harness.connect(self.mcfault.port)
        self.addCleanup(b.close)
        b.sendall(b'get ok:tbig\r\n')
        rb = harness.recv_until(b, want_b, timeout=10)
        tb = time.monotonic()
        col.join(30)
        harness.assert_same_bytes(self, want_b, rb.data,
                                  'the other connection')
        harness.assert_same_bytes(self, want, col.data,
                                  'throttled pipeline (%r)' % col.eof)
        t_big = col.time_of(small_len + big_len)
        # Lower bound from the rate (the first ~10ms step may go at once).
        took = t_big - t0
        floor = 0.75 * big_len / RATE
        self.assertGreaterEqual(took, floor,
                                'throttled %d bytes at 20KiB/s in %.3fs '
                                '(want >= %.2fs)' % (big_len, took, floor))
        # The reply before it came at once: the chunk that completed it
        # held at most half of the throttled reply.
        self.assertLess(col.total_at_time_of(small_len),
                        small_len + big_len // 2,
                        'the reply before the throttled one waited for it')
        self.assertLess(col.time_of(small_len), t_big)
        # The other connection finished while this one was still paced.
        self.assertLess(tb, t_big, 'the other connection was slowed down')
        # The reply after it came after it (and not before).
        self.assertGreaterEqual(col.time_of(len(want)), t_big)

    def test_throttle_meta_multikey_noreply(self):
        val = value_of(4096, 3)
        for k in ('th:m1', 'th:m2'):
            self.both(k, val)
        self.both('ok:tm', 'plain')
        cases = [
            ('mg with v', b'mg th:m1 v k t f\r\nmn\r\n'),
            ('quiet mg hit', b'mg th:m1 v q k\r\nmn\r\n'),
            ('multi-key get', b'get th:m1 ok:tm th:m2\r\nmn\r\n'),
            ('gets', b'gets th:m2\r\nmn\r\n'),
        ]
        for name, req in cases:
            with self.subTest(name):
                want = direct(self.up.port, req, b'MN\r\n')
                a = faultkit.Timed(self.mcfault.port)
                self.addCleanup(a.close)
                a.send(req)
                got = a.read_until(b'MN\r\n', timeout=10)
                harness.assert_same_bytes(self, want, got, name)
                paced = len(want) - len(b'MN\r\n')
                took = a.time_of(paced) - a.sent_at
                floor = 0.5 * paced / RATE
                self.assertGreaterEqual(
                    took, floor, '%s: %d bytes at 20KiB/s in %.3fs'
                    % (name, paced, took))
        # noreply: no reply to pace; the stream goes on.
        req = (b'set th:nr 0 0 4096 noreply\r\n' + val + b'\r\n'
               b'version\r\nmn\r\n')
        want = direct(self.ref.port, req, b'MN\r\n')
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'throttled noreply set')
        self.assertEqual(get_value(self.up.port, 'th:nr'), val)

    # ------------------------------------------------------------ slice

    def test_slice_fixed_size_pieces(self):
        put(self.up.port, 'sl:1', value_of(200, 4))
        req = b'get sl:1\r\n'
        want = direct(self.up.port, req, b'END\r\n')
        pieces = -(-len(want) // SLICE)
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        s.sendall(req)
        chunks = recv_chunks(s, len(want))
        took = time.monotonic() - t0
        harness.assert_same_bytes(self, want, b''.join(chunks), 'slice 7')
        sizes = [len(c) for c in chunks]
        # Each piece is its own send: whatever the reader coalesced, every
        # chunk boundary falls on a piece boundary.
        ends = []
        acc = 0
        for n in sizes:
            acc += n
            ends.append(acc)
        bad = [e for e in ends if e % SLICE and e != len(want)]
        self.assertEqual(bad, [], 'chunk boundaries off the 7-byte pieces; '
                         'chunk sizes %r' % sizes)
        self.assertGreaterEqual(len(chunks), pieces // 2,
                                'only %d chunks for %d pieces: %r'
                                % (len(chunks), pieces, sizes))
        self.assertGreaterEqual(took, 0.5 * (pieces - 1) * SLICE_GAP)
        # The connection goes on.
        more = self.px(b'mn\r\n')
        self.assertEqual(more, b'MN\r\n')

    def test_slice_meta_and_in_pipeline(self):
        val = value_of(120, 5)
        put(self.up.port, 'sl:2', val)
        put(self.up.port, 'ok:sl', 'o')
        req = b'get ok:sl\r\nmg sl:2 v k\r\nget ok:sl\r\nmn\r\n'
        want = direct(self.up.port, req, b'MN\r\n')
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(req)
        chunks = recv_chunks(s, len(want))
        harness.assert_same_bytes(self, want, b''.join(chunks),
                                  'sliced mg in a pipeline')
        self.assertGreaterEqual(len(chunks), len(val) // SLICE // 2,
                                [len(c) for c in chunks])

    def test_slice_size_range(self):
        put(self.up.port, 'slr:1', value_of(150, 6))
        req = b'get slr:1\r\n'
        want = direct(self.up.port, req, b'END\r\n')
        least = -(-len(want) // 16)  # pieces of at most 16 bytes
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(req)
        chunks = recv_chunks(s, len(want))
        harness.assert_same_bytes(self, want, b''.join(chunks),
                                  'slice 1-16')
        sizes = [len(c) for c in chunks]
        self.assertGreaterEqual(len(chunks), least // 2,
                                'only %d chunks: %r' % (len(chunks), sizes))
        self.assertGreater(len(set(sizes)), 1,
                           'size 1-16 but every piece alike: %r' % sizes)
        self.assertLessEqual(min(sizes), 16, sizes)

    # ------------------------------------------------------------ truncate

    def test_truncate_keep_bytes_then_eof_later_not_run(self):
        put(self.up.port, 'tr:1', value_of(200, 7))
        full = direct(self.up.port, b'get tr:1\r\n', b'END\r\n')
        rep = self.px_close(b'get tr:1\r\nset after:tr1 0 0 1\r\nx\r\n'
                            b'get tr:1\r\n')
        self.assertTrue(rep.eof and not rep.reset, rep)
        harness.assert_same_bytes(self, full[:KEEP], rep.data, 'keep 10')
        self.assert_absent_for_a_while('after:tr1')

    def test_truncate_close_reset(self):
        put(self.up.port, 'trr:1', value_of(200, 8))
        full = direct(self.up.port, b'get trr:1\r\n', b'END\r\n')
        rep = self.px_close(b'get trr:1\r\nset after:trr1 0 0 1\r\nx\r\n')
        self.assertTrue(rep.reset, 'want a reset: %r %r' % (rep, rep.data))
        harness.assert_same_bytes(self, full[:KEEP], rep.data,
                                  'keep 10, close reset')
        self.assert_absent_for_a_while('after:trr1')

    def test_truncate_keep_percent(self):
        for n in (200, 201, 7):
            with self.subTest(n=n):
                k = 'trh:%d' % n
                put(self.up.port, k, value_of(n, n))
                full = direct(self.up.port, b'get %s\r\n' % k.encode(),
                              b'END\r\n')
                rep = self.px_close(b'get %s\r\nset after:trh%d 0 0 1\r\n'
                                    b'x\r\n' % (k.encode(), n))
                self.assertTrue(rep.eof, rep)
                harness.assert_same_bytes(self, full[:len(full) // 2],
                                          rep.data, 'keep 50%% of %d'
                                          % len(full))
                self.assert_absent_for_a_while('after:trh%d' % n, 0.2)

    def test_truncate_mg_and_multikey_get(self):
        put(self.up.port, 'tr:2', value_of(100, 9))
        put(self.up.port, 'ok:tr', 'kept')
        for req in (b'mg tr:2 v k f t\r\n',
                    b'get ok:tr tr:2 ok:tr\r\n',
                    b'gets ok:tr tr:2\r\n'):
            with self.subTest(req=req):
                full = direct(self.up.port, req + b'mn\r\n',
                              b'MN\r\n')[:-4]
                self.assertGreater(len(full), KEEP)
                rep = self.px_close(req + b'mn\r\n')
                self.assertTrue(rep.eof, rep)
                harness.assert_same_bytes(self, full[:KEEP], rep.data, req)

    def test_truncate_short_reply_whole_then_eof(self):
        # A reply shorter than keep arrives whole; the command ran; the
        # connection closes and nothing after it runs.
        want = direct(self.ref.port, b'set tr:s 0 0 1\r\nx\r\n', b'\r\n')
        rep = self.px_close(b'set tr:s 0 0 1\r\nx\r\n'
                            b'set after:trs 0 0 1\r\nx\r\n')
        self.assertTrue(rep.eof, rep)
        harness.assert_same_bytes(self, want, rep.data, 'short reply')
        self.assertEqual(get_value(self.up.port, 'tr:s'), b'x')
        self.assert_absent_for_a_while('after:trs')

    def test_truncate_noreply_and_quiet(self):
        # The replies of a noreply / quiet command are what is cut: here
        # there are none (or a quiet hit's VA), then the close; the mn
        # after it is never answered.
        put(self.up.port, 'tr:q', value_of(50, 10))
        full_q = direct(self.up.port, b'mg tr:q v q\r\nmn\r\n', b'MN\r\n')
        full_q = full_q[:-len(b'MN\r\n')]
        cases = [
            (b'set tr:nr 0 0 1 noreply\r\nx\r\nmn\r\n', b''),
            (b'mg tr:nothere v q\r\nmn\r\n', b''),
            (b'mg tr:q v q\r\nmn\r\n', full_q[:KEEP]),
        ]
        for req, want in cases:
            with self.subTest(req=req):
                rep = self.px_close(req)
                self.assertTrue(rep.eof, rep)
                harness.assert_same_bytes(self, want, rep.data, req)
        self.assertEqual(get_value(self.up.port, 'tr:nr'), b'x')

    # ------------------------------------------------------------ corrupt

    def test_corrupt_retrievals_flip_exactly_n_bits(self):
        val = value_of(100, 11)
        put(self.up.port, 'co:g1', val)
        put(self.up.port, 'co:g2', b'\x00')  # 1 byte: 3 of its 8 bits
        for req in (b'get co:g1\r\n', b'gets co:g1\r\n',
                    b'mg co:g1 v k c f\r\n', b'get co:g2\r\n',
                    b'gat 0 co:g1\r\n'):
            with self.subTest(req=req):
                want = direct(self.up.port, req + b'mn\r\n',
                              b'MN\r\n')[:-4]
                got = self.px(req + b'mn\r\n')
                self.assertTrue(got.endswith(b'MN\r\n'))
                self.assert_corrupted(want, got[:-4], 3, what=req)
        # The stored value is untouched: a reply was corrupted, not the item.
        self.assertEqual(get_value(self.up.port, 'co:g1'), val)

    def test_corrupt_quiet_mg_hit_then_mn(self):
        put(self.up.port, 'co:q1', value_of(64, 12))
        req = b'mg co:q1 v q\r\nmg co:nothere v q\r\nmn\r\n'
        want = direct(self.up.port, req, b'MN\r\n')
        got = self.px(req)
        self.assert_corrupted(want, got, 3, what='quiet mg')

    def test_corrupt_multikey_only_matching_keys(self):
        vals = {}
        for i, k in enumerate(('ok:cm1', 'bad:cm2', 'ok:cm3', 'bad:cm4')):
            vals[k] = value_of(80 + i, 20 + i)
            put(self.up.port, k, vals[k])
        req = b'get ok:cm1 bad:cm2 ok:cm3 bad:cm4 bad:cmmissing\r\n'
        want = direct(self.up.port, req, b'END\r\n')
        got = self.px(req + b'mn\r\n')[:-4]
        self.assert_corrupted(want, got, 2, {b'bad:cm2', b'bad:cm4'},
                              'multi-key get')
        req = b'gets bad:cm2 ok:cm1\r\n'
        want = direct(self.up.port, req, b'END\r\n')
        got = self.px(req + b'mn\r\n')[:-4]
        self.assert_corrupted(want, got, 2, {b'bad:cm2'}, 'multi-key gets')

    def test_corrupt_storage_commands_store_flipped_value(self):
        val = value_of(100, 30)
        cases = [
            ('set', b'set co:s1 0 0 100\r\n' + val + b'\r\n', 'co:s1'),
            ('set noreply', b'set co:s2 5 0 100 noreply\r\n' + val + b'\r\n',
             'co:s2'),
            ('ms', b'ms co:s3 100 T0 F3\r\n' + val + b'\r\n', 'co:s3'),
            ('ms quiet', b'ms co:s4 100 q\r\n' + val + b'\r\n', 'co:s4'),
            ('add', b'add co:s5 0 0 100\r\n' + val + b'\r\n', 'co:s5'),
        ]
        for name, req, key in cases:
            with self.subTest(name):
                req = req + b'mn\r\n'
                want = direct(self.ref.port, req, b'MN\r\n')
                got = self.px(req)
                harness.assert_same_bytes(self, want, got, name)
                stored = get_value(self.up.port, key)
                self.assertIsNotNone(stored, '%s: not stored' % name)
                self.assertEqual(len(stored), len(val))
                self.assertEqual(bit_diff(val, stored), 3,
                                 '%s: stored value differs in %d bits'
                                 % (name, bit_diff(val, stored)))
        # Flags as sent: only the data block is hit.
        self.assertEqual(direct(self.up.port, b'mg co:s2 f s\r\n', b'\r\n'),
                         b'HD f5 s100\r\n')

    def test_corrupt_other_commands_untouched(self):
        self.both('co:o1', '10')
        req = (b'incr co:o1 5\r\ntouch co:o1 0\r\nmg co:o1 s\r\n'
               b'delete co:o1\r\nmn\r\n')
        want = direct(self.ref.port, req, b'MN\r\n')
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'keyed non-value commands')

    # ------------------------------------------------------------ evict

    def test_evict_get_misses_for_real(self):
        put(self.up.port, 'ev:g1', 'there')
        hits = self.stat('delete_hits')
        req = b'get ev:g1\r\n'
        got = self.px(req + b'mn\r\n')
        want = direct(self.ref.port, req + b'mn\r\n', b'MN\r\n')
        self.assertEqual(want, b'END\r\nMN\r\n', 'oracle self-check')
        harness.assert_same_bytes(self, want, got, 'evicted get')
        self.assertIsNone(get_value(self.up.port, 'ev:g1'),
                          'the key is still in memcached')
        self.assertEqual(self.stat('delete_hits'), hits + 1,
                         'no md reached memcached')

    def test_evict_multikey_only_matching_keys(self):
        for k in ('ok:em1', 'ev:em2', 'ok:em3', 'ev:em4'):
            put(self.up.port, k, k.upper())
        req = b'get ok:em1 ev:em2 ok:em3 ev:em4\r\n'
        got = self.px(req + b'mn\r\n')
        # memcached's own answer now that ev:* are gone.
        want = direct(self.up.port, req, b'END\r\n') + b'MN\r\n'
        harness.assert_same_bytes(self, want, got, 'multi-key evict')
        self.assertIn(b'VALUE ok:em1 ', got)
        self.assertIn(b'VALUE ok:em3 ', got)
        self.assertNotIn(b'ev:em', got)
        self.assertEqual(get_value(self.up.port, 'ok:em1'), b'OK:EM1')
        self.assertIsNone(get_value(self.up.port, 'ev:em2'))
        self.assertIsNone(get_value(self.up.port, 'ev:em4'))

    def test_evict_storage_still_stores(self):
        put(self.up.port, 'ev:s1', 'old')
        put(self.up.port, 'ev:s2', 'old')
        hits = self.stat('delete_hits')
        req = (b'set ev:s1 0 0 3\r\nnew\r\n'
               b'add ev:s2 0 0 3\r\nnew\r\n'
               b'mn\r\n')
        got = self.px(req)
        # On memcached without the keys: both store.
        want = direct(self.ref.port, req, b'MN\r\n')
        self.assertEqual(want, b'STORED\r\nSTORED\r\nMN\r\n',
                         'oracle self-check')
        harness.assert_same_bytes(self, want, got, 'evict then store')
        self.assertEqual(get_value(self.up.port, 'ev:s1'), b'new')
        self.assertEqual(get_value(self.up.port, 'ev:s2'), b'new',
                         'add after evict must store')
        self.assertEqual(self.stat('delete_hits'), hits + 2)

    def test_evict_meta_base64_key(self):
        put(self.up.port, 'ev:b1', 'secret')
        kb = b64(b'ev:b1')
        req = b'mg ' + kb + b' b v k\r\nmn\r\n'
        want = direct(self.ref.port, req, b'MN\r\n')
        self.assertTrue(want.startswith(b'EN '), 'oracle self-check: %r'
                        % want)
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'mg base64 evicted')
        self.assertIsNone(get_value(self.up.port, 'ev:b1'))
        # A miss evicts nothing and still answers as memcached does.
        req = b'mg ' + b64(b'ev:b2') + b' b v q\r\nmn\r\n'
        harness.assert_same_bytes(self, direct(self.ref.port, req,
                                               b'MN\r\n'),
                                  self.px(req), 'mg b64 miss quiet')

    # ------------------------------------------------- the stream in sync

    def test_noreply_and_quiet_keep_stream_in_sync(self):
        """After each fault on a noreply / quiet command, the version and mn
        behind it get exactly memcached's replies. `up` holds the keys of
        the first list; the reference holds what memcached would hold when
        the fault's effect is real (evicted keys absent)."""
        tail = b'version\r\nmn\r\n'
        v4 = value_of(400, 40)
        # (name, keys stored in up, keys stored in ref, request)
        cases = [
            ('throttle noreply set', {}, {},
             b'set th:y1 0 0 400 noreply\r\n' + v4 + b'\r\n'),
            ('throttle quiet mg hit', {'th:y2': v4}, {'th:y2': v4},
             b'mg th:y2 v q\r\n'),
            ('throttle quiet mg miss', {}, {}, b'mg th:y3 v q\r\n'),
            ('throttle quiet md', {'th:y4': b'x'}, {'th:y4': b'x'},
             b'md th:y4 q\r\n'),
            ('slice noreply set', {}, {},
             b'set sl:y1 0 0 400 noreply\r\n' + v4 + b'\r\n'),
            ('slice quiet mg hit', {'sl:y2': v4[:60]}, {'sl:y2': v4[:60]},
             b'mg sl:y2 v q k\r\n'),
            ('slice quiet ms', {}, {}, b'ms sl:y3 2 q\r\nab\r\n'),
            ('corrupt quiet mg miss', {}, {}, b'mg co:y1 v q\r\n'),
            ('corrupt noreply delete', {'co:y2': b'x'}, {'co:y2': b'x'},
             b'delete co:y2 noreply\r\n'),
            ('evict noreply set', {'ev:y1': b'old'}, {},
             b'set ev:y1 0 0 3 noreply\r\nnew\r\n'),
            ('evict quiet mg', {'ev:y2': b'old'}, {}, b'mg ev:y2 v q\r\n'),
            ('evict quiet md', {'ev:y3': b'old'}, {}, b'md ev:y3 q\r\n'),
            ('evict noreply add', {'ev:y4': b'old'}, {},
             b'add ev:y4 0 0 3 noreply\r\nnew\r\n'),
        ]
        for name, up_keys, ref_keys, req in cases:
            with self.subTest(name):
                for k, v in up_keys.items():
                    put(self.up.port, k, v)
                for k, v in ref_keys.items():
                    put(self.ref.port, k, v)
                want = direct(self.ref.port, req + tail, b'MN\r\n')
                got = self.px(req + tail)
                harness.assert_same_bytes(self, want, got, name)
        self.assertEqual(get_value(self.up.port, 'th:y1'), v4)
        self.assertEqual(get_value(self.up.port, 'sl:y1'), v4)
        self.assertEqual(get_value(self.up.port, 'sl:y3'), b'ab')
        self.assertIsNone(get_value(self.up.port, 'co:y2'))
        self.assertEqual(get_value(self.up.port, 'ev:y1'), b'new')
        self.assertIsNone(get_value(self.up.port, 'ev:y2'))
        self.assertIsNone(get_value(self.up.port, 'ev:y3'))
        self.assertEqual(get_value(self.up.port, 'ev:y4'), b'new')

    def test_shaped_replies_back_to_back(self):
        # Two shaped replies in a row on one connection (throttle then
        # slice, slice then throttle, the same rule twice): each is paced or
        # cut in turn, then the rest of the pipeline.
        v = value_of(60, 51)
        for k in ('th:bb', 'sl:bb'):
            put(self.up.port, k, v)
        put(self.up.port, 'ok:bb', 'x')
        for req in (b'get th:bb\r\nget sl:bb\r\n',
                    b'get sl:bb\r\nget th:bb\r\n',
                    b'get sl:bb\r\nget sl:bb\r\n',
                    b'get th:bb\r\nget th:bb\r\n',
                    b'mg th:bb v\r\nmg sl:bb v q k\r\nget ok:bb\r\n'):
            with self.subTest(req=req):
                req = req + b'mn\r\n'
                want = direct(self.up.port, req, b'MN\r\n')
                rep = faultkit.talk(self.mcfault.port, req, b'MN\r\n',
                                    timeout=5)
                harness.assert_same_bytes(self, want, rep.data,
                                          'two shaped replies (%r)' % rep)

    def test_faults_in_one_pipeline_same_bytes_in_pieces(self):
        # Several faults in one pipeline, sent whole and in 1-3 byte
        # pieces: the same bytes as memcached's (evict's effect made real
        # on the reference).
        v = value_of(90, 50)
        for port in (self.up.port, self.ref.port):
            put(port, 'ok:p1', 'one')
            put(port, 'th:p2', v)
            put(port, 'sl:p3', v)
        req = (b'get ok:p1\r\n'
               b'get th:p2 ok:p1\r\n'
               b'set ev:p4 0 0 2 noreply\r\nev\r\n'
               b'mg sl:p3 v q k\r\n'
               b'mg ev:p5 v q\r\n'
               b'get ok:p1 sl:p3\r\n'
               b'version\r\nmn\r\n')
        want = direct(self.ref.port, req, b'MN\r\n')
        for seed in (0, 1, 2):
            with self.subTest(seed=seed):
                put(self.up.port, 'ev:p5', 'gone soon')
                s = harness.connect(self.mcfault.port)
                self.addCleanup(s.close)
                rng = random.Random(seed) if seed else None
                rep = harness.exchange(s, req, b'MN\r\n', timeout=5,
                                       rng=rng, max_piece=3)
                harness.assert_same_bytes(self, want, rep.data,
                                          'pipeline, seed %d' % seed)
                self.assertIsNone(get_value(self.up.port, 'ev:p5'))


class ReviewRegressionTest(unittest.TestCase):
    """Cases the review of the shaping code found: a FIN close that the
    kernel turned into a reset (input the client sent after the cut was
    unread), a throttled watch whose OK came after the stream, a truncate
    by share and a corrupt over many big values (bounded memory: their
    bytes must still be exactly right)."""

    RULES = r'''
rules:
  - {name: cut, key: "tf:*", action: truncate, keep: 100000}
  - {name: half, key: "th2:*", action: truncate, keep: 50%}
  - {name: flip, key: "cb:*", action: corrupt, flips: 1}
  - {name: watch-slow, command: watch, action: throttle, rate: 2B/s}
'''

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_rules(cls, cls.RULES)

    def test_fin_stays_fin_with_input_after_the_cut(self):
        put(self.up.port, 'tf:big', value_of(400000, 1))
        want = direct(self.up.port, b"get tf:big\r\n", b"END\r\n")
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(('127.0.0.1', self.mcfault.port))
        try:
            s.sendall(b'get tf:big\r\n')
            time.sleep(0.3)
            s.sendall(b'version\r\n')  # unread by the proxy: it cut
            rep = harness.recv_until(s, None, timeout=10.0)
        finally:
            s.close()
        self.assertEqual(rep.data, want[:100000])
        self.assertTrue(rep.eof and not rep.reset, rep)

    def test_throttled_watch_sends_ok_first(self):
        w = harness.connect(self.mcfault.port)
        try:
            w.sendall(b'watch fetchers\r\n')
            time.sleep(0.2)
            for _ in range(3):
                direct(self.mcfault.port, b'get none\r\n', b'END\r\n')
            rep = harness.recv_until(w, None, timeout=1.0)
        finally:
            w.close()
        self.assertTrue(rep.data.startswith(b'OK\r\n'), rep.data[:80])

    def test_big_multi_get_truncated_by_share_and_corrupted(self):
        v = value_of(300000, 2)
        put(self.up.port, 'th2:v', v)
        put(self.up.port, 'cb:v', v)
        req = b'get ' + b' '.join([b'th2:v'] * 40) + b'\r\n'
        want = direct(self.up.port, req, b"END\r\n", timeout=20.0)
        rep = faultkit.talk(self.mcfault.port, req, None, timeout=20.0)
        # 50% of ~12 MB is more than the 4 MiB a share keeps: those go.
        self.assertEqual(rep.data, want[:min(len(want) // 2, 4 << 20)])
        req = b'get ' + b' '.join([b'cb:v'] * 20) + b'\r\n'
        want = direct(self.up.port, req, b"END\r\n", timeout=20.0)
        got = self.px_all(req)
        self.assertEqual(len(got), len(want))
        self.assertEqual(bit_diff(got, want), 20)  # one bit per value

    def px_all(self, req):
        s = harness.connect(self.mcfault.port)
        try:
            s.sendall(req)
            return harness.recv_until(s, b'END\r\n', timeout=20.0).data
        finally:
            s.close()


class CorruptSeedTest(unittest.TestCase):
    """corrupt draws its bits from the file's seed: the same file and the
    same traffic flip the same bits; another seed flips others."""

    RULES = '''
seed: %d
rules:
  - {name: c, key: "c:*", action: corrupt, flips: 4}
'''

    def run_once(self, up, seed, run):
        """A fresh mcfault with `seed`; the same traffic each run. Returns
        (reply bytes, value stored by the corrupted set)."""
        cfg = faultkit.write_file(self, self.RULES % seed)
        p = harness.Mcfault(up.port, ['-c', cfg])
        self.addCleanup(p.stop)
        p.start()
        val = value_of(200, 60)
        reads = b'get c:r1\r\nmg c:r1 v\r\n'
        req = (reads + b'set c:w%d 0 0 200\r\n' % run + val + b'\r\n' +
               reads + b'mn\r\n')
        # memcached's own reply (the set on another key, to leave c:w* to
        # mcfault).
        want = direct(up.port, reads + b'set c:direct 0 0 200\r\n' + val +
                      b'\r\n' + reads + b'mn\r\n', b'MN\r\n')
        s = harness.connect(p.port)
        self.addCleanup(s.close)
        rep = harness.exchange(s, req, b'MN\r\n', timeout=10)
        s.close()
        self.assertEqual(len(value_spans(want)), 4)
        self.assertEqual(len(want), len(rep.data),
                         'seed %d: %r %r' % (seed, rep, rep.data[-200:]))
        for _, a, b in value_spans(want):
            self.assertEqual(bit_diff(want[a:b], rep.data[a:b]), 4,
                             'seed %d: %r' % (seed, rep))
        stored = get_value(up.port, 'c:w%d' % run)
        self.assertIsNotNone(stored)
        self.assertEqual(bit_diff(val, stored), 4)
        p.stop_and_check()
        return rep.data, stored

    def test_seed_repeats_flips(self):
        up = harness.start_memcached_for_test(self)
        put(up.port, 'c:r1', value_of(300, 61))
        a = self.run_once(up, 123, 1)
        b = self.run_once(up, 123, 2)
        c = self.run_once(up, 124, 3)
        self.assertEqual(a, b, 'seed 123 twice, different flips')
        self.assertNotEqual(a, c, 'seeds 123 and 124 flipped the same bits')
        # Within one run, the values of different replies get different
        # flips (they are drawn, not fixed).
        firsts = [a[0][s:e] for _, s, e in value_spans(a[0])]
        self.assertNotEqual(firsts[0], firsts[2])


# -------------------------------------------------------------- config

def run_mcfault(args, timeout=20):
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
    return subprocess.run([harness.MCFAULT_BIN] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=env)


GOOD_NEW_KEYS = '''seed: 3
rules:
  - {name: d, key: "a:*", action: drop, close: reset}
  - {name: d2, action: drop, close: fin, forward: true}
  - {name: t, command: [get, mg], action: throttle, rate: 10KiB/s}
  - {name: t2, action: throttle, rate: 512B/s, client: 127.0.0.2}
  - {name: s, action: slice, size: 16, interval: 10ms}
  - {name: s2, action: slice, size: 1-16}
  - {name: k, action: truncate, keep: 100, close: reset}
  - {name: k2, action: truncate, keep: 50%}
  - {name: c, action: corrupt, flips: 3, key: "bad:*"}
  - {name: c2, command: [set, ms], action: corrupt, min_size: 512KiB,
     max_size: 1MiB}
  - {name: e, action: evict, connections: 25%}
  - {name: e2, action: evict, connections: 0.25,
     client: [127.0.0.0/8, "::1"]}
  - name: blink
    action: drop
    schedule: {start: 10s, duration: 30s, every: 60s}
  - {name: cd, command: connect, action: drop, close: reset}
  - {name: cw, command: connect, action: delay, delay: 2s,
     schedule: {start: 1s}}
  - {name: ch, command: connect, action: hang, client: "10.0.0.0/8"}
  - {name: ce, command: connect, action: error, connections: 10%}
  - {name: ce2, command: connect, action: error,
     message: "SERVER_ERROR busy"}
'''

# (name, file text, (line, col, regex)) of the first problem.
BAD_NEW_KEYS = [
    ('rate', '''rules:
  - name: t
    action: throttle
    rate: fast
''', (4, 11, r"rate")),
    ('size-reversed', '''rules:
  - name: s
    action: slice
    size: 16-1
''', (4, 11, r"'size'.*reversed")),
    ('forward-on-throttle', '''rules:
  - name: t
    action: throttle
    rate: 1KiB/s
    forward: true
''', (5, 5, r"'forward' does not apply to action throttle")),
    ('keep-on-drop', '''rules:
  - {name: x, action: drop, keep: 10}
''', (2, 29, r"'keep' does not apply to action drop")),
    ('close-bad', '''rules:
  - name: t
    action: truncate
    keep: 10
    close: rst
''', (5, 12, r"'close' must be fin or reset, got 'rst'")),
    ('throttle-needs-rate', '''rules:
  - name: t
    action: throttle
''', (2, 5, r"rule 't': action throttle needs 'rate'")),
]


class NewKeysConfigTest(unittest.TestCase):

    def test_check_config_accepts_every_new_key(self):
        path = faultkit.write_file(self, GOOD_NEW_KEYS)
        p = run_mcfault(['--check-config', path])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r'^%s: ok, 1 proxy, 18 rules\n$'
                         % re.escape(path))
        for m in harness.SANITIZER_MARKERS:
            self.assertNotIn(m, p.stderr)

    def test_check_config_names_file_line_col(self):
        for name, text, (ln, col, rx) in BAD_NEW_KEYS:
            with self.subTest(name):
                path = faultkit.write_file(self, text, name + '.yaml')
                p = run_mcfault(['--check-config', path])
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                first = (p.stderr.splitlines() or [''])[0]
                prefix = '%s:%d:%d: ' % (path, ln, col)
                self.assertTrue(first.startswith(prefix),
                                '%s: want %r..., got %r'
                                % (name, prefix, p.stderr))
                self.assertRegex(first[len(prefix):], rx)
                for m in harness.SANITIZER_MARKERS:
                    self.assertNotIn(m, p.stderr)


if __name__ == '__main__':
    unittest.main()

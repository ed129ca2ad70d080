# Edges of the connection core: backpressure that covers proxy-made
# replies, watermarks that bound memory (not payload bytes), proxy-made
# replies that no fixed buffer may cut short, half-close on raw tunnels, and
# the memory an idle connection costs. Expected bytes come from memcached
# itself over a direct connection (or from a rule's own message); memory is
# VmRSS from /proc/PID/status, measured as growth over a baseline.

import base64
import os
import random
import select
import signal
import socket
import struct
import sys
import time
import unittest

# Runnable by path (python3 -m unittest tests/integration/test_edges.py) as
# well as by discovery.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from harness import HOST  # noqa: E402

MiB = 1024 * 1024
# mcfault's backpressure marks (docs/architecture.md): a side is not read
# while the buffer it feeds holds more than HIGH.
HIGH = 1 * MiB

ERR = b'SERVER_ERROR injected\r\n'


def settled_rss_kb(pid, quiet=0.3, timeout=5.0):
    """VmRSS once it stayed the same for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = harness.rss_kb(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = harness.rss_kb(pid)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def rss_guard(pid, base_kb, limit_mb):
    """A predicate that turns true once pid's RSS grew by more than
    limit_mb: the push loops stop there, so a broken mcfault cannot eat
    the machine (the test fails on the bound anyway)."""
    def over():
        return harness.rss_kb(pid) - base_kb > limit_mb * 1024
    return over


def push(sock, pattern, cap=None, seconds=None, stall=2.0, guard=None,
         piece=None):
    """Writes pattern over and over on a non-blocking socket, never
    reading, until `cap` bytes are written, `seconds` pass, no write is
    possible for `stall` seconds, or guard() is true (checked every 64
    writes). Each send is of at most `piece` bytes (default: the rest of
    the pattern). Returns (bytes written, why it stopped: 'cap', 'time',
    'stalled' or 'guard')."""
    view = memoryview(pattern)
    off = 0
    total = 0
    writes = 0
    why = 'cap'
    deadline = time.monotonic() + seconds if seconds is not None else None
    sock.setblocking(False)
    try:
        while cap is None or total < cap:
            if deadline is not None and time.monotonic() >= deadline:
                why = 'time'
                break
            end = len(pattern) if piece is None else min(len(pattern),
                                                          off + piece)
            try:
                n = sock.send(view[off:end])
            except BlockingIOError:
                _, w, _ = select.select([], [sock], [], stall)
                if not w:
                    why = 'stalled'
                    break
                continue
            total += n
            off = (off + n) % len(pattern)
            writes += 1
            if guard is not None and writes % 64 == 0 and guard():
                why = 'guard'
                break
    finally:
        sock.setblocking(True)
    return total, why


def push_until_ignored(sock, peer_port, pattern, quiet=2.0, cap=None,
                       seconds=None, guard=None, piece=None):
    """push() until the peer (listening on peer_port) reads nothing for
    `quiet` seconds ('stalled'): a blocked send alone could be a busy peer
    that still reads. Also stops at cap, after `seconds` ('time') or on
    guard(), as push() does. Returns (bytes written, why)."""
    total = 0
    deadline = time.monotonic() + seconds if seconds is not None else None
    while True:
        left = None
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return total, 'time'
        cut = total % len(pattern)
        n, why = push(sock, pattern[cut:] + pattern[:cut],
                      cap=None if cap is None else cap - total,
                      seconds=left, stall=0.5, guard=guard, piece=piece)
        total += n
        if why != 'stalled':
            return total, why
        before = total - sum(read_by_peer(sock, peer_port))
        time.sleep(quiet)
        if total - sum(read_by_peer(sock, peer_port)) == before:
            return total, 'stalled'


def complete(pattern, total):
    """The bytes that finish the pattern repetition cut at `total`."""
    cut = total % len(pattern)
    return pattern[cut:] if cut else b''


def read_by_peer(sock, peer_port):
    """How many of the bytes sock wrote its peer (a local process
    listening on peer_port) has read: written minus what still sits
    unacknowledged in sock's send queue and unread in the peer's receive
    queue. Returns (unacked, unread) from /proc/net/tcp."""
    me = sock.getsockname()[1]
    mine = harness.tcp_queues(me, peer_port)
    theirs = harness.tcp_queues(peer_port, me)
    if mine is None or theirs is None:
        raise AssertionError('connection %d <-> %d not in /proc/net/tcp'
                             % (me, peer_port))
    return mine[0], theirs[1]


def fail_all(tc, problems, extra=''):
    if problems:
        tc.fail('\n'.join(['%d problem(s):' % len(problems)]
                          + ['  - ' + p for p in problems])
                + ('\n' + extra if extra else ''))


# --------------------------------------------------------------------------
# A. Proxy-made replies count for backpressure.

A_RULES = '''rules:
  - name: err-x
    command: get
    key: "x*"
    action: error
    message: SERVER_ERROR injected
'''
A_CMD = b'get xk\r\n'
A_PATTERN = A_CMD * 1024            # 8 KiB per write
# What a stuck client may push at most: far past the bound, short of
# harming the machine when mcfault reads without limit.
A_SEND_CAP = 24 * MiB
# mcfault may hold HIGH bytes of replies for a client that reads nothing,
# and HIGH bytes of requests behind them; beyond that, only what the kernel
# holds (replies in flight to the client, measured and converted back to
# the requests they answer) and a few reads' worth of slack.
A_SLACK = 1 * MiB
# RSS: twice the high mark plus generous slack (allocator, ASan).
A_RSS_BOUND_KB = (2 * HIGH + 16 * MiB) // 1024
A_RSS_GUARD_MB = 512


class ProxyRepliesBackpressureTest(unittest.TestCase):

    def test_client_that_never_reads_is_not_read_either(self):
        # A client pipelines commands that a rule answers and never reads:
        # mcfault stops reading it once the replies it holds pass the high
        # mark, its memory stays bounded, other clients go on, and every
        # reply arrives once the client reads.
        mc = harness.start_memcached_for_test(self)
        rules = faultkit.write_file(self, A_RULES)
        p = harness.start_mcfault_for_test(
            self, mc.port, ['-c', rules], env=harness.asan_env_for_memory())
        # The rule answers, and other keys pass.
        pre = faultkit.talk(p.port, A_CMD + b'get other\r\n', b'END\r\n')
        self.assertEqual(pre.data, ERR + b'END\r\n', 'precondition: %r' % pre)
        base = settled_rss_kb(p.pid)

        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((HOST, p.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Push until mcfault reads nothing more.
        total, why = push_until_ignored(
            s, p.port, A_PATTERN, cap=A_SEND_CAP,
            guard=rss_guard(p.pid, base, A_RSS_GUARD_MB))
        time.sleep(0.5)
        grew = harness.rss_kb(p.pid) - base
        unacked, unread = read_by_peer(s, p.port)
        read = total - unacked - unread
        me = s.getsockname()[1]
        replies_in_kernel = (harness.tcp_queues(p.port, me)[0]
                             + harness.tcp_queues(me, p.port)[1])
        bound = (2 * HIGH + replies_in_kernel * len(A_CMD) // len(ERR)
                 + A_SLACK)
        harness.log('stuck client: wrote %d KiB (%s), mcfault read %d KiB '
                    '(unacked %d, unread %d; bound %d KiB, with %d KiB of '
                    'replies in the kernel), RSS grew %d KiB'
                    % (total >> 10, why, read >> 10, unacked >> 10,
                       unread >> 10, bound >> 10, replies_in_kernel >> 10,
                       grew))
        problems = []
        if why != 'stalled' or read > bound:
            problems.append(
                'mcfault kept reading a client that reads none of its '
                'replies: it read %d KiB (bound %d KiB); the client wrote '
                '%d KiB and stopped because: %s'
                % (read >> 10, bound >> 10, total >> 10,
                   {'stalled': 'mcfault stopped reading',
                    'cap': 'it reached its cap',
                    'guard': 'mcfault RSS grew past %d MiB'
                    % A_RSS_GUARD_MB}.get(why, why)))
        if grew > A_RSS_BOUND_KB:
            problems.append('mcfault RSS grew by %d KiB (bound %d KiB)'
                            % (grew, A_RSS_BOUND_KB))

        # Another client is served meanwhile, byte for byte as memcached
        # serves it (sets and gets of its own keys are idempotent).
        rng = random.Random(7)
        other = b''
        for i in range(200):
            v = rng.randbytes(rng.randint(0, 9000))
            other += b'set edge_a%d 0 0 %d\r\n%s\r\nget edge_a%d\r\n' % (
                i, len(v), v, i)
        other += b'mn\r\n'
        o = faultkit.talk(p.port, other, b'MN\r\n', timeout=20)
        want_other = faultkit.direct(mc.port, other, b'MN\r\n', timeout=20)
        if o.data != want_other:
            problems.append('another client was not served like memcached '
                            'serves it: %s (%r)'
                            % (harness.describe_diff(want_other, o.data), o))
        o2 = faultkit.talk(p.port, A_CMD + b'mn\r\n', b'MN\r\n', timeout=20)
        if o2.data != ERR + b'MN\r\n':
            problems.append('another client: get xk answered %r' % o2)

        # The stuck client reads at last: one reply per command, none lost.
        rest = complete(A_CMD, total)
        n = (total + len(rest)) // len(A_CMD)
        want = ERR * n + b'MN\r\n'
        rep = harness.exchange(s, rest + b'mn\r\n', b'MN\r\n', timeout=240,
                               drain=0.3)
        if rep.data != want:
            problems.append(
                'the stuck client sent %d commands and got %d error replies '
                '(%r): %s' % (n, rep.data.count(ERR), rep,
                              harness.describe_diff(want, rep.data, 60)))
        fail_all(self, problems, 'stderr tail:\n' + p.stderr_tail(1500))


# --------------------------------------------------------------------------
# B. Watermarks bound memory, not payload bytes.

B_CMD = b'get k\r\n'                 # 7 bytes, one write each
# The client writes until mcfault stops reading it: first the kernel's
# buffers towards the stopped memcached fill, then mcfault's own up to its
# high mark. B_SECONDS only bounds a run whose mcfault never stops.
B_SECONDS = 30.0
B_RSS_BOUND_KB = 8 * 1024
B_RSS_GUARD_MB = 256


class TinyWritesMemoryTest(unittest.TestCase):

    def test_tiny_writes_to_a_stopped_upstream(self):
        # 7-byte writes towards a stopped memcached: what mcfault holds is
        # bounded in memory, not only in payload bytes; after SIGCONT every
        # reply arrives, as memcached gives them directly.
        mc = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, mc.port,
                                           env=harness.asan_env_for_memory())
        self.assertEqual(faultkit.talk(p.port, B_CMD, b'END\r\n').data,
                         b'END\r\n', 'precondition')
        base = settled_rss_kb(p.pid)
        s = harness.connect(p.port)          # TCP_NODELAY: one segment each
        self.addCleanup(s.close)
        harness.stop_process(mc.pid)
        try:
            total, why = push_until_ignored(
                s, p.port, B_CMD, seconds=B_SECONDS, piece=len(B_CMD),
                guard=rss_guard(p.pid, base, B_RSS_GUARD_MB))
            time.sleep(0.5)
            grew = harness.rss_kb(p.pid) - base
        finally:
            os.kill(mc.pid, signal.SIGCONT)
        harness.log('tiny writes: %d commands in %d-byte writes (%s), RSS '
                    'grew %d KiB' % (total // len(B_CMD), len(B_CMD), why,
                                     grew))
        problems = []
        if grew > B_RSS_BOUND_KB:
            problems.append(
                'mcfault RSS grew by %d KiB (bound %d KiB) for %d KiB of '
                'requests sent in %d-byte writes while memcached was '
                'stopped' % (grew, B_RSS_BOUND_KB, total >> 10, len(B_CMD)))
        rest = complete(B_CMD, total)
        n = (total + len(rest)) // len(B_CMD)
        rep = harness.exchange(s, rest + b'mn\r\n', b'MN\r\n', timeout=120)
        d = harness.connect(mc.port)
        self.addCleanup(d.close)
        stream = B_CMD * n + b'mn\r\n'
        want = harness.exchange(d, stream, b'MN\r\n', timeout=120)
        self.assertEqual(want.data, b'END\r\n' * n + b'MN\r\n',
                         'precondition: memcached directly: %r' % want)
        if rep.data != want.data:
            problems.append(
                '%d commands: %d ENDs through mcfault (%r): %s'
                % (n, rep.data.count(b'END\r\n'), rep,
                   harness.describe_diff(want.data, rep.data, 60)))
        fail_all(self, problems, 'stderr tail:\n' + p.stderr_tail(1500))


# --------------------------------------------------------------------------
# A'. Proxy-made replies waiting behind a slow reply never stop the
# upstream from being read: they can only leave once that reply is in.

class LocalBehindSlowReplyTest(unittest.TestCase):

    def test_local_replies_behind_a_slow_reply(self):
        mc = harness.start_memcached_for_test(self)
        rules = faultkit.write_file(
            self, 'rules:\n  - name: e\n    key: "e*"\n    action: error\n'
            '    message: SERVER_ERROR %s\n' % ('m' * 1000))
        p = harness.start_mcfault_for_test(self, mc.port, ['-c', rules])
        faultkit.put(mc.port, 'x', b'slow')
        n = 3000                       # 3 MiB of proxy-made replies
        err = b'SERVER_ERROR ' + b'm' * 1000 + b'\r\n'
        want = b'VALUE x 0 4\r\nslow\r\nEND\r\n' + err * n
        s = harness.connect(p.port)
        self.addCleanup(s.close)
        harness.stop_process(mc.pid)   # the first reply is late
        try:
            s.sendall(b'get x\r\n' + b'get e1\r\n' * n)
            time.sleep(1.0)
        finally:
            os.kill(mc.pid, signal.SIGCONT)
        rep = harness.recv_until(s, nbytes=len(want), timeout=30)
        harness.assert_same_bytes(self, want, rep.data, 'replies in order',
                                  p.stderr_tail(1500))


# --------------------------------------------------------------------------
# H'. A connect to memcached that nobody answers (an address gone) fails
# in bounded time: the client is closed as if refused, not held.

class ConnectTimeoutTest(unittest.TestCase):

    def test_unanswered_connect_fails_in_time(self):
        # A listener whose accept queue is full drops further SYNs: a
        # connect to it neither succeeds nor fails.
        lst = socket.socket()
        self.addCleanup(lst.close)
        lst.bind((HOST, 0))
        lst.listen(0)
        port = lst.getsockname()[1]
        fillers = []
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            try:
                f.connect((HOST, port))
            except BlockingIOError:
                pass
            fillers.append(f)
            self.addCleanup(f.close)
        time.sleep(0.2)
        p = harness.start_mcfault_for_test(self, port)
        s = harness.connect(p.port)
        self.addCleanup(s.close)
        s.sendall(b'get k\r\n')
        t0 = time.monotonic()
        rep = harness.recv_until(s, timeout=20)
        took = time.monotonic() - t0
        self.assertTrue(rep.eof or rep.reset, rep)
        self.assertEqual(rep.data, b'')
        self.assertLess(took, 15, 'closed when the connect gave up')
        text = faultkit.wait_stderr(p, r'no answer within \d+ ms')
        self.assertRegex(text, r'no answer within \d+ ms')


# --------------------------------------------------------------------------
# C. Proxy-made replies that echo long tokens are never dropped.

C_LONG_MESSAGE = 'SERVER_ERROR ' + 'm' * 3000
C_RULES = '''rules:
  - {name: mg-miss, command: mg, key: "y*", action: miss}
  - {name: ms-err, command: ms, key: "y*", action: error, message: NOT_STORED}
  - {name: md-err, command: md, key: "y*", action: error, message: NOT_FOUND}
  - {name: touch-err, command: touch, key: "y*", action: error,
     message: "%s"}
''' % C_LONG_MESSAGE

O_400 = b'O' + b'a' * 400
O_32 = b'O' + b'b' * 31           # the longest opaque memcached accepts
O_33 = b'O' + b'c' * 32           # one byte too long
KEY_MS = b'y' + b'S' * 249        # the longest legal key
KEY_MG = b'y' + b'G' * 249
KEY_MD = b'y' + b'D' * 249
RAW_B64 = b'y' + bytes(range(1, 186))            # 186 bytes: 248 in base64
KEY_B64 = base64.b64encode(RAW_B64)
AFTER = b'get edge_c_after\r\nmn\r\n'
AFTER_REPLY = b'END\r\nMN\r\n'


class LongEchoTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        rules = faultkit.write_class_file(cls, C_RULES)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.mc.port,
                                                      ['-c', rules])

    def differential(self, req, want_start, setup=b''):
        """req followed by AFTER, directly (after setup, which brings
        memcached to the state the rule pretends) and through mcfault:
        byte-identical."""
        if setup:
            faultkit.direct(self.mc.port, setup + b'mn\r\n', b'MN\r\n')
        d = faultkit.talk(self.mc.port, req + AFTER, b'MN\r\n')
        self.assertTrue(d.data.startswith(want_start) and
                        d.data.endswith(AFTER_REPLY),
                        'precondition: memcached answers %r' % d)
        p = faultkit.talk(self.mcfault.port, req + AFTER, b'MN\r\n')
        harness.assert_same_bytes(
            self, d.data, p.data, '%r... (%d bytes)' % (req[:60], len(req)),
            'mcfault: %r; stderr tail:\n%s'
            % (p, self.mcfault.stderr_tail(800)))

    def test_mg_miss_with_overlong_opaque(self):
        for req in (b'mg yk v ' + O_400 + b'\r\n',
                    b'mg yk k q ' + O_400 + b' v\r\n',
                    b'mg ' + KEY_MG + b' k v ' + O_400 + b'\r\n'):
            with self.subTest(req=req[:40], length=len(req)):
                self.differential(req, b'CLIENT_ERROR ')

    def test_ms_error_with_overlong_opaque(self):
        for req in (b'ms yk 3 ' + O_400 + b'\r\nabc\r\n',
                    b'ms yk 3 k q ' + O_400 + b'\r\nabc\r\n',
                    b'ms yk 2100 T0 ' + O_400 + b'\r\n' + b'z' * 2100
                    + b'\r\n'):
            with self.subTest(req=req[:40], length=len(req)):
                self.differential(req, b'CLIENT_ERROR ')
        self.assertEqual(faultkit.get_value(self.mc.port, b'yk'), None,
                         'the data block of a refused ms was stored')

    def test_md_error_opaque_at_and_over_the_limit(self):
        cases = [(b'md yk ' + O_32 + b'\r\n', b'NF '),
                 (b'md yk q ' + O_32 + b'\r\n', b'NF '),
                 (b'md ' + KEY_MD + b' k ' + O_32 + b'\r\n', b'NF '),
                 (b'md ' + KEY_MD + b' ' + O_32 + b' q k\r\n', b'NF '),
                 (b'md yk ' + O_33 + b'\r\n', b'CLIENT_ERROR '),
                 (b'md yk q ' + O_33 + b'\r\n', b'CLIENT_ERROR ')]
        for req, start in cases:
            with self.subTest(req=req[:40], length=len(req)):
                self.differential(req, start)

    def test_ms_error_echoes_the_longest_key(self):
        # memcached answers NS to an add (ME) of a key that exists; the
        # rule answers NOT_STORED, which a meta command gets as NS.
        store = b'ms %s 1 T0\r\nx\r\n' % KEY_MS
        for req in (b'ms ' + KEY_MS + b' 3 ME k\r\nabc\r\n',
                    b'ms ' + KEY_MS + b' 3 k ME ' + O_32 + b'\r\nabc\r\n',
                    b'ms ' + KEY_MS + b' 3 ' + O_32 + b' k ME q\r\nabc\r\n'):
            with self.subTest(req=req[:40], length=len(req)):
                self.differential(req, b'NS ', setup=store)
        store = b'ms %s 1 b T0\r\nx\r\n' % KEY_B64
        req = b'ms ' + KEY_B64 + b' 3 b k ME ' + O_32 + b'\r\nabc\r\n'
        self.differential(req, b'NS ', setup=store)

    def test_mg_miss_echoes_the_longest_key(self):
        for req in (b'mg ' + KEY_MG + b' k v ' + O_32 + b'\r\n',
                    b'mg ' + KEY_MG + b' ' + O_32 + b' s k f v c\r\n',
                    b'mg ' + KEY_MG + b' k v q ' + O_32 + b'\r\n',
                    b'mg ' + KEY_B64 + b' b k v ' + O_32 + b'\r\n'):
            with self.subTest(req=req[:40], length=len(req)):
                self.differential(req, b'EN ' if b' q' not in req
                                  else AFTER_REPLY[:4])

    def test_long_error_message(self):
        # No memcached reply is this long: the rule's message is the
        # expected text.
        want = C_LONG_MESSAGE.encode() + b'\r\n' + AFTER_REPLY
        rep = faultkit.talk(self.mcfault.port, b'touch yk 0\r\n' + AFTER,
                            b'MN\r\n')
        self.assertEqual(rep.data, want, repr(rep))


# --------------------------------------------------------------------------
# D. Half-close on tunnels and on text.

def bin_pkt(opcode, key=b'', value=b'', extras=b'', opaque=0, cas=0):
    body = extras + key + value
    return struct.pack('>BBHBBHIIQ', 0x80, opcode, len(key), len(extras), 0,
                       0, len(body), opaque, cas) + body


class HalfCloseTest(unittest.TestCase):

    def servers(self):
        """A fresh memcached to talk to directly and a fresh one behind a
        fresh mcfault (fresh ones hand out the same CAS ids)."""
        direct = harness.start_memcached_for_test(self)
        up = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, up.port)
        return direct, p

    def half_close(self, port, data, rng=None, timeout=10):
        s = harness.connect(port)
        self.addCleanup(s.close)
        rep = harness.exchange(s, data, rng=rng, until_eof=True,
                               shut_wr=True, timeout=timeout)
        s.close()
        return rep

    def compare(self, data, what, precondition=None, rng_seed=None):
        direct, p = self.servers()
        rng = (lambda: random.Random(rng_seed)) if rng_seed is not None \
            else (lambda: None)
        d = self.half_close(direct.port, data, rng())
        self.assertTrue(d.eof, 'precondition: memcached closes: %r' % d)
        if precondition is not None:
            precondition(d.data)
        got = self.half_close(p.port, data, rng())
        harness.assert_same_bytes(self, d.data, got.data, what,
                                  'mcfault: %r' % got)
        self.assertTrue(got.eof, '%s: mcfault did not close: %r'
                        % (what, got))

    def test_binary_version_then_half_close(self):
        def pre(data):
            self.assertEqual((len(data), data[:2]), (30, b'\x81\x0b'),
                             'precondition: %r' % data)
        self.compare(b'\x80\x0b' + b'\x00' * 22, 'binary version + FIN',
                     pre)

    def test_binary_pipeline_then_half_close(self):
        reqs = [bin_pkt(0x0a, opaque=0xdeadbeef),                 # noop
                bin_pkt(0x0b, opaque=1),                          # version
                bin_pkt(0x00, key=b'binkey', opaque=2),           # get miss
                bin_pkt(0x01, key=b'binkey', value=b'v\r\nEND\r\n',
                        extras=struct.pack('>II', 7, 0), opaque=3),  # set
                bin_pkt(0x00, key=b'binkey', opaque=4),           # get hit
                bin_pkt(0x0c, key=b'binkey', opaque=5),           # getk
                bin_pkt(0x09, key=b'binkey', opaque=6),           # getq hit
                bin_pkt(0x04, key=b'binkey', opaque=7),           # delete
                bin_pkt(0x0a, opaque=8)]                          # noop

        def pre(data):
            self.assertEqual(data[:2], b'\x81\x0a', 'precondition: %r'
                             % data[:40])
            self.assertEqual(data.count(b'\x81'), 9, 'precondition: %r'
                             % data)
        self.compare(b''.join(reqs), 'binary pipeline + FIN', pre)
        self.compare(b''.join(reqs) * 50, 'binary pipeline x50 + FIN, '
                     'random pieces', rng_seed=4)

    def test_watch_then_half_close(self):
        self.compare(b'watch\r\n', 'watch + FIN',
                     lambda d: self.assertEqual(d, b'OK\r\n'))
        self.compare(b'watch fetchers mutations\r\nget a\r\n',
                     'watch + more + FIN',
                     lambda d: self.assertEqual(d, b'OK\r\n'))
        # The watch accepted first, then the half-close.
        out = {}
        direct, p = self.servers()
        for name, port in (('direct', direct.port), ('mcfault', p.port)):
            s = harness.connect(port)
            self.addCleanup(s.close)
            s.sendall(b'watch\r\n')
            first = harness.recv_until(s, b'OK\r\n', timeout=5)
            s.shutdown(socket.SHUT_WR)
            rest = harness.recv_until(s, None, timeout=5)
            out[name] = (first.data + rest.data, rest.eof or rest.reset)
            s.close()
        self.assertEqual(out['direct'], (b'OK\r\n', True), 'precondition')
        self.assertEqual(out['mcfault'], out['direct'],
                         'watch accepted, then FIN')

    def test_text_pipeline_then_half_close(self):
        # A regression guard: replies owed at the half-close still arrive.
        rng = random.Random(9)
        data = b''
        for i in range(3000):
            v = rng.randbytes(rng.randint(0, 3000))
            data += b'set hc%d 0 0 %d\r\n%s\r\nget hc%d hc%d\r\n' % (
                i % 50, len(v), v, i % 50, (i + 7) % 50)
        data += b'get hc1 hc2 hc3\r\nmg hc4 v k q\r\nmn\r\n'
        self.compare(data, 'text pipeline + FIN',
                     lambda d: self.assertTrue(d.endswith(b'MN\r\n')),
                     rng_seed=2)
        self.compare(b'get a\r\nget b\r\n', 'two gets + FIN',
                     lambda d: self.assertEqual(d, b'END\r\nEND\r\n'))


# --------------------------------------------------------------------------
# Idle connections cost little memory (Release builds only: ASan's
# allocator inflates every allocation).

IDLE_CONNS = 2000
IDLE_WARMUP = 100
IDLE_BYTES_PER_CONN = 2048


def release_binary():
    """The mcfault to measure idle memory with: MCFAULT_BIN_RELEASE, else
    MCFAULT_BIN when it is not an ASan build, else None."""
    b = os.environ.get('MCFAULT_BIN_RELEASE')
    if b:
        if not os.access(b, os.X_OK):
            raise AssertionError('MCFAULT_BIN_RELEASE=%s is not an '
                                 'executable' % b)
        if harness.binary_has_asan(b):
            raise AssertionError('MCFAULT_BIN_RELEASE=%s is an ASan build' % b)
        return b
    if os.access(harness.MCFAULT_BIN, os.X_OK) and \
            not harness.binary_has_asan(harness.MCFAULT_BIN):
        return harness.MCFAULT_BIN
    return None


class IdleMemoryTest(unittest.TestCase):

    def test_idle_connections_cost_little_memory(self):
        binary = release_binary()
        if binary is None:
            msg = ('SKIPPED: idle memory per connection needs a build '
                   'without ASan; MCFAULT_BIN=%s is an ASan build and '
                   'MCFAULT_BIN_RELEASE is not set' % harness.MCFAULT_BIN)
            sys.stderr.write('\n*** %s ***\n' % msg)
            self.skipTest(msg)
        n = IDLE_WARMUP + IDLE_CONNS
        need = 2 * n + 256
        got = harness.raise_nofile(need)
        if got < need:
            self.skipTest('RLIMIT_NOFILE hard limit %d < %d' % (got, need))
        mc = harness.start_memcached_for_test(
            self, extra_args=['-c', str(n + 100)])
        p = harness.start_mcfault_for_test(
            self, mc.port, ['--max-connections', str(n + 100)], binary=binary)
        socks = []

        def cleanup():
            for s in socks:
                s.close()
        self.addCleanup(cleanup)

        def use(i):
            s = harness.connect(p.port)
            socks.append(s)
            k = b'idle%d' % i
            s.sendall(b'set %s 0 0 10\r\n0123456789\r\nget %s\r\n' % (k, k))
            want = b'STORED\r\nVALUE %s 0 10\r\n0123456789\r\nEND\r\n' % k
            rep = harness.recv_until(s, b'END\r\n', timeout=10)
            self.assertEqual(rep.data, want, 'connection %d: %r' % (i, rep))

        for i in range(IDLE_WARMUP):
            use(i)
        base = settled_rss_kb(p.pid)
        for i in range(IDLE_WARMUP, n):
            use(i)
        after = settled_rss_kb(p.pid)
        per = (after - base) * 1024 / IDLE_CONNS
        harness.log('idle: %d connections, RSS %d -> %d KiB, %.0f bytes '
                    'each' % (IDLE_CONNS, base, after, per))
        fds = harness.fd_count(p.pid)
        self.assertGreaterEqual(fds, 2 * n, 'precondition: mcfault holds %d '
                                'fds for %d connections' % (fds, n))
        self.assertLessEqual(
            per, IDLE_BYTES_PER_CONN,
            'mcfault RSS grew by %d KiB for %d idle connections: %.0f bytes '
            'each (bound %d)' % (after - base, IDLE_CONNS, per,
                                 IDLE_BYTES_PER_CONN))


if __name__ == '__main__':
    unittest.main()

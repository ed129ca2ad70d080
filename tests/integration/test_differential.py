# The oracle: one long pipelined request stream, sent in random pieces to a
# fresh memcached directly and to another fresh memcached through mcfault;
# the reply bytes must be identical.

import json
import random
import time
import unittest
import urllib.request

import faultkit
import harness
import mcgen


def locate_unit(outs, offset):
    """Index of the unit whose reply holds byte `offset` of the joined
    replies, and the offset inside it."""
    acc = 0
    for i, o in enumerate(outs):
        if acc + len(o) > offset:
            return i, offset - acc
        acc += len(o)
    return len(outs), offset - acc


def build_stream(seed, nunits, big, ref_port, small=False):
    """Generates nunits units, runs them one by one on the reference
    memcached (learning CAS ids), and returns (units, replies)."""
    gen = mcgen.StreamGen(seed, big=big, small=small)
    ref = mcgen.Reference(ref_port)
    units, outs = [], []
    try:
        for _ in range(nunits):
            u = gen.unit()
            rep = ref.run(u.data)
            gen.observe(u, rep)
            units.append(u.data)
            outs.append(rep)
    finally:
        ref.close()
    return units, outs


class DifferentialTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.upstream_port = harness.free_port()
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.upstream_port)

    def fresh_upstream(self):
        m = harness.Memcached(port=self.upstream_port).start()
        self.addCleanup(m.stop)
        return m

    def run_differential(self, seed, nunits, big=False, max_piece=65536,
                         sleep_prob=0.01, timeout=90.0, small=False):
        t0 = time.monotonic()
        ref = harness.start_memcached_for_test(self)
        direct = harness.start_memcached_for_test(self)
        self.fresh_upstream()
        units, outs = build_stream(seed, nunits, big, ref.port, small)
        stream = b''.join(units) + mcgen.SENTINEL
        ref_reply = b''.join(outs) + mcgen.SENTINEL_REPLY

        s = harness.connect(direct.port)
        self.addCleanup(s.close)
        d = harness.exchange(s, stream, mcgen.SENTINEL_REPLY,
                             rng=random.Random(seed * 7 + 1),
                             max_piece=max_piece, sleep_prob=sleep_prob,
                             timeout=timeout)
        if d.data != ref_reply:
            off = harness.first_diff(ref_reply, d.data)
            i, _ = locate_unit(outs, off)
            self.fail('ORACLE SELF-CHECK FAILED (test bug, not mcfault): '
                      'memcached answered the pipelined stream differently '
                      'from the unit-by-unit run; unit %d %r\n%s'
                      % (i, units[i][:300] if i < len(units) else b'',
                         harness.describe_diff(ref_reply, d.data)))

        s2 = harness.connect(self.mcfault.port)
        self.addCleanup(s2.close)
        p = harness.exchange(s2, stream, mcgen.SENTINEL_REPLY,
                             rng=random.Random(seed * 7 + 2),
                             max_piece=max_piece, sleep_prob=sleep_prob,
                             timeout=timeout)
        if p.data != d.data:
            off = harness.first_diff(d.data, p.data)
            i, inner = locate_unit(outs, off)
            unit = units[i] if i < len(units) else mcgen.SENTINEL
            prev = units[max(0, i - 3):i]
            self.fail(
                'seed %d: mcfault reply differs from memcached (%r)\n%s\n'
                'in the reply to unit %d (byte %d of it); that unit\'s '
                'request (first 400 bytes): %r\npreceding units (first 200 '
                'bytes each): %r\nmcfault alive: %s; stderr tail:\n%s'
                % (seed, p, harness.describe_diff(d.data, p.data), i, inner,
                   unit[:400], [u[:200] for u in prev],
                   self.mcfault.alive(), self.mcfault.stderr_tail(2000)))
        self.assertFalse(p.eof, 'mcfault closed the connection')
        harness.log('seed %d: %d units, %d request bytes, %d reply bytes, '
                    '%.1fs' % (seed, nunits, len(stream), len(p.data),
                               time.monotonic() - t0))

    def test_seed_1(self):
        self.run_differential(1, 1500)

    def test_seed_2(self):
        self.run_differential(2, 1500)

    def test_seed_3(self):
        self.run_differential(3, 1500)

    def test_long_5000_commands(self):
        self.run_differential(5000, 5000)

    def test_many_large_values(self):
        # Values from 100 KB to past the 1 MiB item limit, where memcached
        # answers SERVER_ERROR object too large for cache before the data
        # block arrives and then swallows it.
        self.run_differential(77, 150, big=True, timeout=120.0)

    def test_tiny_pieces(self):
        # Pieces of 1..16 bytes: every parser state gets split.
        self.run_differential(4242, 1000, max_piece=16, sleep_prob=0.002,
                              small=True)

    def test_unpipelined_edge_cases(self):
        """Inputs left out of the pipelined stream because memcached's own
        answer to them depends on timing when pipelined (a get with a key
        over 250 bytes drops every reply still queued on the connection),
        sent one at a time, each followed by mn."""
        k251 = b'B' * 251
        cases = [
            b'get ' + k251 + b'\r\n',
            b'get a ' + k251 + b' b\r\n',
            b'gets ' + k251 + b'\r\n',
            b'gat 0 ' + k251 + b'\r\n',
            b'get ' + b' '.join(b'k%d' % i for i in range(30)) + b' '
            + k251 + b'\r\n',
            b'touch ' + k251 + b' 0\r\n',
            b'me ' + k251 + b'\r\n',
        ]
        direct = harness.start_memcached_for_test(self)
        self.fresh_upstream()
        out = {}
        for name, port in (('direct', direct.port),
                           ('mcfault', self.mcfault.port)):
            s = harness.connect(port)
            self.addCleanup(s.close)
            replies = []
            for c in cases:
                s.sendall(c + b'mn\r\n')
                rep = harness.recv_until(s, b'MN\r\n', timeout=5)
                replies.append(rep.data)
            out[name] = replies
        for c, d, p in zip(cases, out['direct'], out['mcfault']):
            self.assertTrue(d.endswith(b'MN\r\n'), 'direct %r -> %r' % (c, d))
            self.assertEqual(d, p, 'request %r' % c[:300])


# Every newer action and targeting key, in rules that can never fire on the
# oracle's traffic: keys no generated command has, client networks the
# tests never connect from, schedules that start in an hour, connection
# shares combined with one of those. Each command is tried against all of
# them (none matches, so none stops the search).
NEVER_FIRING_RULES = """
seed: 99
rules:
  - {name: nf-drop-reset, key: "never-matches:*", action: drop,
     close: reset}
  - {name: nf-drop-fwd, action: drop, forward: true, close: fin,
     client: 10.255.0.0/16}
  - {name: nf-throttle, key: "never-matches:*", action: throttle,
     rate: 1KiB/s}
  - {name: nf-throttle-sched, action: throttle, rate: 512B/s,
     schedule: {start: 3600s, duration: 10s, every: 7200s}}
  - {name: nf-slice, action: slice, size: 1-4, interval: 5ms,
     client: [10.255.0.0/16, "fd00::/8"]}
  - {name: nf-slice-fixed, key: "never-matches:*", action: slice,
     size: 16}
  - {name: nf-truncate, action: truncate, keep: 50%, close: reset,
     schedule: {start: 3600s}}
  - {name: nf-truncate-bytes, key: "never-matches:*", action: truncate,
     keep: 10}
  - {name: nf-corrupt, action: corrupt, flips: 3, connections: 25%,
     client: 10.255.0.1}
  - {name: nf-corrupt-sized, command: [set, ms], key: "never-matches:*",
     action: corrupt, min_size: 1, max_size: 1MiB}
  - {name: nf-evict, key: ["never-matches:*", "never-matches-either:*"],
     action: evict}
  - {name: nf-evict-conns, action: evict, connections: 0.5,
     schedule: {start: 3600s, duration: 1s}}
  - {name: nf-error, action: error, message: SERVER_ERROR never,
     client: "10.255.0.0/16"}
  - {name: nf-delay, action: delay, delay: 1s, schedule: {start: 3600s}}
  - {name: nf-hang, action: hang, min_size: 1, client: 10.255.0.0/16}
  - {name: nf-miss, command: [get, mg], action: miss,
     schedule: {start: 3600s}}
  - {name: nf-connect-drop, command: connect, action: drop, close: reset,
     client: 10.255.0.0/16}
  - {name: nf-connect-delay, command: connect, action: delay, delay: 2s,
     schedule: {start: 3600s}}
  - {name: nf-connect-hang, command: connect, action: hang,
     client: "fd00::/8"}
  - {name: nf-connect-error, command: connect, action: error,
     connections: 10%, schedule: {start: 3600s}}
"""


class DifferentialNeverFiringRulesTest(unittest.TestCase):
    """The same oracle through an mcfault with NEVER_FIRING_RULES loaded:
    rules that are checked on every command (and connection) but never
    fire change no byte. Afterwards the admin API must show that no rule
    matched or fired."""

    run_differential = DifferentialTest.run_differential
    fresh_upstream = DifferentialTest.fresh_upstream
    test_unpipelined_edge_cases = \
        DifferentialTest.test_unpipelined_edge_cases

    @classmethod
    def setUpClass(cls):
        cls.upstream_port = harness.free_port()
        cls.admin_port = harness.free_port()
        cfg = faultkit.write_class_file(cls, NEVER_FIRING_RULES)
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.upstream_port,
            ['-c', cfg, '--admin', '127.0.0.1:%d' % cls.admin_port])

    def tearDown(self):
        harness.wait_port(self.admin_port, 10, what='the admin API')
        with urllib.request.urlopen('http://127.0.0.1:%d/rules'
                                    % self.admin_port, timeout=10) as r:
            body = json.loads(r.read().decode())
        rules = [rule for p in body['proxies'] for rule in p['rules']]
        self.assertEqual(len(rules), 20, body)
        hit = [(r['name'], r['matched'], r['fired']) for r in rules
               if r['matched'] or r['fired']]
        self.assertEqual(hit, [], 'rules that should never match did')
        self.assertTrue(self.mcfault.alive())

    def test_seed_11(self):
        self.run_differential(11, 1500)

    def test_large_values(self):
        self.run_differential(78, 100, big=True, timeout=120.0)

    def test_tiny_pieces(self):
        self.run_differential(4343, 800, max_piece=16, sleep_prob=0.002,
                              small=True)


if __name__ == '__main__':
    unittest.main()

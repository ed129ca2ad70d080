# The oracle: one long pipelined request stream, sent in random pieces to a
# fresh memcached directly and to another fresh memcached through mcfault;
# the reply bytes must be identical.

import random
import time
import unittest

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


if __name__ == '__main__':
    unittest.main()

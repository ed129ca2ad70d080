# Proxy-made replies (an error rule on keys inj:*, mcgen.INJECT_RULES) must
# land exactly where memcached's reply to the injected command would have
# been. The expected stream comes from a direct memcached run of the same
# pipeline in which each injected command is replaced by a marker get
# (pre-stored __mark_N), whose unique reply is then swapped for SERVER_ERROR
# mcfault injected (or dropped for classic noreply commands, which the
# direct run leaves out).

import base64
import itertools
import os
import random
import re
import signal
import threading
import time
import unittest

import faultkit
import harness
import mcgen
from mcgen import InjUnit, marker_reply, marker_request

INJ = harness.INJECT_REPLY
NMARKS = 3000

# Counters that only the forwarded commands move; both memcacheds must end
# with the same values (the direct one also served the marker gets, which
# only add get hits).
# (Not curr_items, bytes or get_expired: memcached's LRU crawler reclaims
# expired items in the background, on its own schedule.)
SAME_STATS = ('cmd_set', 'cmd_touch', 'delete_hits', 'delete_misses',
              'incr_hits', 'incr_misses', 'decr_hits', 'decr_misses',
              'cas_hits', 'cas_misses', 'cas_badval', 'touch_hits',
              'touch_misses', 'total_items')


def inj(cmd, noreply=False, _n=itertools.count(NMARKS // 2)):
    """An injected command for hand-built pipelines."""
    key = cmd.split(b' ')[1] if b' ' in cmd else b''
    if noreply:
        return InjUnit(cmd, b'', None, key)
    n = next(_n)
    if n >= NMARKS:
        raise RuntimeError('out of marker numbers')
    return InjUnit(cmd, marker_request(n), n, key)


def realize(items, ref):
    """Runs the direct form of each item on the reference memcached.
    Returns (proxy parts, direct parts, direct replies, marker numbers)."""
    proxy, direct, outs, marks = [], [], [], []
    for it in items:
        if isinstance(it, InjUnit):
            proxy.append(it.proxy)
            direct.append(it.direct)
            if it.marker is not None:
                rep = ref.run(it.direct)
                if rep != marker_reply(it.marker):
                    raise AssertionError('marker %d answered %r (test bug)'
                                         % (it.marker, rep))
                marks.append(it.marker)
                outs.append(rep)
            else:
                outs.append(b'')
        else:
            proxy.append(it)
            direct.append(it)
            outs.append(ref.run(it))
    return proxy, direct, outs, marks


def random_items(seed, nunits, ref, inj_prob=0.12, small=False):
    """A random pipeline with injected commands, biased to follow runs of
    quiet commands and to open the pipeline. Runs on ref as it goes (for CAS
    ids) and returns what realize() returns."""
    gen = mcgen.InjectGen(seed, small=small)
    rng = random.Random(seed ^ 0x5eed)
    proxy, direct, outs, marks = [], [], [], []
    mark = 0
    prev_quiet = False
    for i in range(nunits):
        p = inj_prob
        if i == 0:
            p = 0.7
        elif prev_quiet:
            p = 0.6
        if rng.random() < p:
            u = gen.inj_unit(mark)
            if u.marker is not None:
                mark += 1
            r = realize([u], ref)
            prev_quiet = False
        else:
            u = gen.unit()
            r = realize([u.data], ref)
            gen.observe(u, r[2][0])
            prev_quiet = u.kind == 'quiet' or b'noreply' in u.data
        for acc, part in zip((proxy, direct, outs, marks), r):
            acc.extend(part)
    if mark >= NMARKS // 2:
        raise AssertionError('too many markers for NMARKS (test bug)')
    return proxy, direct, outs, marks


def substitute_markers(direct_reply, marks):
    """direct_reply with each marker's reply (in order) replaced by INJ."""
    out = []
    pos = 0
    for m in marks:
        mr = marker_reply(m)
        i = direct_reply.find(mr, pos)
        if i < 0:
            raise AssertionError('marker %d reply missing from the direct '
                                 'run (test bug)' % m)
        out.append(direct_reply[pos:i])
        out.append(INJ)
        pos = i + len(mr)
    out.append(direct_reply[pos:])
    return b''.join(out)


class OrderingTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.upstream_port = harness.free_port()
        rules = faultkit.write_class_file(cls, mcgen.INJECT_RULES)
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.upstream_port, ['-c', rules])

    def servers(self):
        """Fresh reference, direct and upstream memcacheds, markers stored
        in each. Returns (ref, direct, upstream)."""
        ref = harness.start_memcached_for_test(self)
        direct = harness.start_memcached_for_test(self)
        up = harness.start_memcached_for_test(self, port=self.upstream_port)
        setup = mcgen.marker_setup(NMARKS)
        for m in (ref, direct, up):
            harness.request(m.port, setup, b'MN\r\n')
        return ref, direct, up

    def check(self, build, seed, max_piece=65536, what=''):
        """build(ref) -> realize()-style tuple. Runs direct and through
        mcfault and compares."""
        t0 = time.monotonic()
        ref_m, direct_m, up_m = self.servers()
        ref = mcgen.Reference(ref_m.port)
        self.addCleanup(ref.close)
        proxy, direct, outs, marks = build(ref)
        dstream = b''.join(direct) + mcgen.SENTINEL
        pstream = b''.join(proxy) + mcgen.SENTINEL
        ref_reply = b''.join(outs) + mcgen.SENTINEL_REPLY

        s = harness.connect(direct_m.port)
        self.addCleanup(s.close)
        d = harness.exchange(s, dstream, mcgen.SENTINEL_REPLY,
                             rng=random.Random(seed), max_piece=max_piece)
        if d.data != ref_reply:
            self.fail('ORACLE SELF-CHECK FAILED (test bug): %s'
                      % harness.describe_diff(ref_reply, d.data))
        expected = substitute_markers(d.data, marks)

        s2 = harness.connect(self.mcfault.port)
        self.addCleanup(s2.close)
        p = harness.exchange(s2, pstream, mcgen.SENTINEL_REPLY,
                             rng=random.Random(seed + 1), max_piece=max_piece,
                             timeout=60)
        if p.data != expected:
            off = harness.first_diff(expected, p.data)
            # Which item's expected reply holds the offset.
            exp_parts = []
            mi = 0
            for part, o in zip(proxy, outs):
                if mi < len(marks) and o == marker_reply(marks[mi]):
                    exp_parts.append(INJ)
                    mi += 1
                else:
                    exp_parts.append(o)
            acc, idx = 0, len(proxy)
            for i, e in enumerate(exp_parts):
                if acc + len(e) > off:
                    idx = i
                    break
                acc += len(e)
            ctx = [x[:160] for x in proxy[max(0, idx - 4):idx + 1]]
            self.fail('%s seed %d: mcfault reply differs (%r)\n%s\nat item '
                      '%d; that item and the 4 before it (requests, first '
                      '160 bytes each): %r\nstderr tail:\n%s'
                      % (what, seed, p,
                         harness.describe_diff(expected, p.data),
                         idx, ctx, self.mcfault.stderr_tail(1500)))
        self.assertFalse(p.eof, 'mcfault closed the connection')

        # Nothing injected reached memcached.
        ds, us = direct_m.stats(), up_m.stats()
        for name in SAME_STATS:
            self.assertEqual(
                ds[name], us[name],
                'stat %s: direct %s, behind mcfault %s: memcached behind '
                'mcfault saw different commands' % (name, ds[name], us[name]))
        self.assertEqual(int(ds['get_hits']), int(us['get_hits']) + len(marks),
                         'get_hits: direct %s = behind mcfault %s + %d marker '
                         'gets expected' % (ds['get_hits'], us['get_hits'],
                                            len(marks)))
        keys = sorted({b'inj:%d' % i for i in range(31)}
                      | {b'inj:' + b'z' * 246})
        probe = b''.join(b'mg %s v\r\n' % k for k in keys) + \
            b'get victim\r\nmn\r\n'
        got = harness.request(up_m.port, probe, b'MN\r\n')
        self.assertEqual(got, b'EN\r\n' * len(keys) + b'END\r\nMN\r\n',
                         'keys used only by injected commands exist in '
                         'memcached behind mcfault')
        harness.log('%s seed %d: %d items, %d injected with reply, %.1fs'
                    % (what, seed, len(proxy), len(marks),
                       time.monotonic() - t0))

    # ---- random pipelines

    def test_random_pipeline_1(self):
        self.check(lambda ref: random_items(11, 700, ref), 11, what='random')

    def test_random_pipeline_2(self):
        self.check(lambda ref: random_items(12, 700, ref), 12, what='random')

    def test_random_pipeline_dense(self):
        self.check(lambda ref: random_items(13, 500, ref, inj_prob=0.4), 13,
                   what='dense')

    def test_random_pipeline_tiny_pieces(self):
        self.check(lambda ref: random_items(14, 300, ref, small=True), 14,
                   max_piece=7,
                   what='tiny pieces')

    # ---- hand-built pipelines

    def test_after_runs_of_quiet_commands(self):
        items = []
        # A long run of noreply sets, then an injected get.
        items += [b'set q%d 0 0 3 noreply\r\nabc\r\n' % i for i in range(60)]
        items.append(inj(b'get inj:1\r\n'))
        # Quiet mg misses, then an injected quiet mg.
        items += [b'mg miss%d q v\r\n' % i for i in range(60)]
        items.append(inj(b'mg inj:2 q v\r\n'))
        # Quiet commands that do answer: hits, md misses, errors.
        items += [b'mg q%d q v k\r\n' % i for i in range(5)]
        items += [b'md nothere q\r\n', b'ms q1 S3 q\r\nabc\r\n',
                  b'incr q1 1 noreply\r\n',
                  b'set q2 0 0 2 noreply\r\nabc\r\n',
                  b'ms q3 2 q\r\nabc\r\n', b'mg q4 q\r\n']
        items.append(inj(b'set inj:3 0 0 3 noreply\r\nabc\r\n', True))
        items.append(inj(b'md inj:4 q\r\n'))
        items.append(b'mn\r\n')
        # Alternation and back-to-back injections.
        for i in range(30):
            items.append(b'ms q%d 1 q\r\nx\r\n' % i)
            items.append(inj(b'ms inj:5 1 q\r\ny\r\n'))
            items.append(b'mg miss%d q\r\n' % i)
            items.append(inj(b'delete inj:6 noreply\r\n', True))
            items.append(b'delete q%d noreply\r\n' % i)
        items += [inj(b'incr inj:7 1\r\n'), inj(b'touch inj:8 0 noreply\r\n',
                                                True),
                  inj(b'gets inj:9 q1 q2\r\n'), inj(b'me inj:10\r\n'),
                  inj(b'ma inj:11 q v\r\n'),
                  inj(b'prepend inj:12 0 0 1 noreply\r\nz\r\n', True),
                  inj(b'mg inj:13 v k O123 q\r\n')]
        items += [b'get q%d\r\n' % i for i in range(40)]
        self.check(lambda ref: realize(items, ref), 3, what='quiet runs')

    def test_any_key_decides(self):
        # A rule fires when any key of the command matches its glob; keys
        # that only look like inj:* do not.
        items = [b'set foo 0 0 3\r\nbar\r\n',
                 inj(b'get foo inj:a\r\n'),     # a later key: injected
                 inj(b'gets foo inj:a\r\n'),
                 inj(b'gat 0 foo inj:a\r\n'),
                 b'get xinj:a\r\n', b'get inj\r\n', b'get INJ:a\r\n',
                 b'get foo xinj:a INJ:a inj foo\r\n',   # forwarded
                 b'mg foo v\r\n',
                 inj(b'get inj:a foo\r\n'),     # the first key: injected
                 inj(b'gat 0 inj:a foo\r\n'),
                 inj(b'gats 3600 inj:a\r\n'),
                 inj(b'get inj:\r\n'),
                 inj(b'get  inj:b  foo\r\n'),
                 inj(b'   get inj:lead\r\n'),
                 inj(b'get inj:bare\n'),
                 inj(b'get inj:long ' + b' '.join(b'k%d' % i
                                                 for i in range(600))
                     + b'\r\n'),
                 inj(b'get foo ' + b' '.join(b'inj:%d' % i
                                             for i in range(600)) + b'\r\n'),
                 b'get foo ' + b' '.join(b'k%d' % i for i in range(600))
                 + b'\r\n',
                 inj(b'set inj:t 0 0 1 noreply \r\nx\r\n', True),
                 inj(b'delete inj:t 0 noreply\r\n', True),
                 inj(b'delete inj:t 0\r\n'),
                 inj(b'ms inj:t 1 T0 q\nx\r\n'),
                 b'get foo\r\n']
        self.check(lambda ref: realize(items, ref), 5, what='any key')

    def test_reply_line_holding_a_bare_newline(self):
        # memcached 1.6.18 answers a vivifying mg with b and k flags with the
        # decoded binary key, so its reply line can hold bytes like \n; the
        # line still ends only at \r\n.
        items = []
        for raw in (b'ab\ncd', b'ab\rcd', b'\n', b'x\x00y', b'\nEND\n'):
            k = base64.b64encode(raw)
            items += [b'mg %s b k v N3600\r\n' % k,
                      inj(b'get inj:nl\r\n'),
                      b'mg %s b k v\r\n' % k,
                      inj(b'mg inj:nl q\r\n'),
                      b'md %s b q\r\n' % k,
                      b'mg %s b k s N0 q\r\n' % k,
                      inj(b'set inj:nl 0 0 1\r\nx\r\n')]
        self.check(lambda ref: realize(items, ref), 9, what='bare newline')

    def test_injected_after_multi_line_replies(self):
        # Replies whose length mcfault cannot know in advance (STAT/ITEM/
        # PREFIX lists ending in END), each followed by an injected command.
        up = harness.start_memcached_for_test(self, port=self.upstream_port)
        harness.request(up.port, b'set a 0 0 1\r\n1\r\n', b'STORED\r\n')
        stat_list = rb'(?:STAT [^\r\n]*\r\n)*END\r\n'
        cmds = [
            (b'stats', stat_list), (b'stats settings', stat_list),
            (b'stats items', stat_list), (b'stats slabs', stat_list),
            (b'stats conns', stat_list), (b'stats sizes', stat_list),
            (b'stats detail on', rb'OK\r\n'),
            (b'stats detail dump', rb'(?:PREFIX [^\r\n]*\r\n)*END\r\n'),
            (b'stats cachedump 1 10', rb'(?:ITEM [^\r\n]*\r\n)*END\r\n'),
            (b'stats reset', rb'RESET\r\n'),
            (b'version', rb'VERSION [0-9.]+\r\n'),
            (b'verbosity 1', rb'OK\r\n'), (b'verbosity 0', rb'OK\r\n'),
            (b'slabs automove 0', rb'OK\r\n'),
            (b'stats nonsense', rb'ERROR\r\n'),
        ]
        data, pattern = [], []
        for i, (c, rx) in enumerate(cmds):
            data.append(c + b'\r\n')
            pattern.append(rx)
            data.append(b'mg nokey%d q v\r\n' % i if i % 2 else b'')
            data.append(b'get inj:list%d\r\n' % i)
            pattern.append(re.escape(INJ))
        data.append(b'mn\r\n')
        pattern.append(rb'MN\r\n')
        s, rep = self.talk(b''.join(data), b'MN\r\n', max_piece=64)
        self.assertTrue(re.fullmatch(b''.join(pattern), rep.data, re.S),
                        'replies out of shape: %r' % rep.data[-3000:])
        self.assertEqual(rep.data.count(INJ), len(cmds))

    def test_concurrent_connections(self):
        """Eight clients pipelining at once, each on its own keys, each with
        injected commands: every client gets exactly its own replies."""
        nthreads, nops = 8, 400
        letters = b'abcdefghijklmnopqrstuvwxyz'

        def items_for(t):
            rng = random.Random(1000 + t)
            mark = t * 150
            p = b't%d_' % t
            items = []
            for _ in range(nops):
                k = p + b'k%d' % rng.randint(0, 9)
                r = rng.random()
                if r < 0.2:
                    v = bytes(rng.choice(letters)
                              for _ in range(rng.randint(0, 3000)))
                    items.append(b'set %s 0 0 %d\r\n%s\r\n' % (k, len(v), v))
                elif r < 0.35:
                    items.append(b'get %s %sk%d\r\n'
                                 % (k, p, rng.randint(0, 9)))
                elif r < 0.45:
                    items.append(b'mg %s v k q\r\n' % k)
                elif r < 0.5:
                    items.append(b'ms %s 2 q\r\nab\r\n' % k)
                elif r < 0.55:
                    items.append(b'append %s 0 0 1 noreply\r\nz\r\n' % k)
                elif r < 0.6:
                    items.append(b'delete %s noreply\r\n' % k)
                elif r < 0.65:
                    items.append(b'incr %s 1\r\n' % k)
                elif r < 0.7:
                    items.append(b'mn\r\n')
                else:
                    ik = b'inj:%d' % rng.randint(0, 30)
                    c = rng.choice([b'get %s %s\r\n' % (ik, k),
                                    b'mg %s v q\r\n' % ik,
                                    b'ms %s 3 q\r\nabc\r\n' % ik,
                                    b'delete %s\r\n' % ik])
                    if rng.random() < 0.3:
                        items.append(InjUnit(b'set %s 0 0 2 noreply\r\nzz'
                                             b'\r\n' % ik, b'', None, ik))
                    else:
                        items.append(InjUnit(c, marker_request(mark), mark,
                                             ik))
                        mark += 1
            return items

        ref_m, direct_m, up_m = self.servers()
        ref = mcgen.Reference(ref_m.port)
        self.addCleanup(ref.close)
        plans = []
        for t in range(nthreads):
            proxy, direct, outs, marks = realize(items_for(t), ref)
            s = harness.connect(direct_m.port)
            self.addCleanup(s.close)
            d = harness.exchange(s, b''.join(direct) + mcgen.SENTINEL,
                                 mcgen.SENTINEL_REPLY,
                                 rng=random.Random(t))
            self.assertEqual(d.data, b''.join(outs) + mcgen.SENTINEL_REPLY,
                             'ORACLE SELF-CHECK FAILED (test bug)')
            # Every thread ends with the same sentinel key; only its reply
            # matters here.
            plans.append((b''.join(proxy) + mcgen.SENTINEL,
                          substitute_markers(d.data, marks)))
        results = [None] * nthreads

        def client(t):
            s = harness.connect(self.mcfault.port)
            try:
                results[t] = harness.exchange(
                    s, plans[t][0], mcgen.SENTINEL_REPLY,
                    rng=random.Random(50 + t), timeout=60)
            finally:
                s.close()

        threads = [threading.Thread(target=client, args=(t,))
                   for t in range(nthreads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(90)
        for t in range(nthreads):
            self.assertIsNotNone(results[t], 'client %d did not finish' % t)
            harness.assert_same_bytes(self, plans[t][1], results[t].data,
                                      'client %d of %d' % (t, nthreads))

    # ---- exact protocol text

    def talk(self, data, tail, rng_seed=1, max_piece=65536, timeout=15):
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        return s, harness.exchange(s, data, tail,
                                   rng=random.Random(rng_seed),
                                   max_piece=max_piece, timeout=timeout,
                                   drain=0.05)

    def test_injected_first_and_last_command(self):
        up = harness.start_memcached_for_test(self, port=self.upstream_port)
        cases = [
            (b'get inj:a\r\n', INJ),
            (b'get inj:a\r\nmn\r\n', INJ + b'MN\r\n'),
            (b'mg inj:a q v\r\nmn\r\n', INJ + b'MN\r\n'),
            (b'set inj:a 0 0 5 noreply\r\nhello\r\nmn\r\n', b'MN\r\n'),
            (b'set a 0 0 1\r\n1\r\nmg nokey q v\r\nget inj:z\r\n',
             b'STORED\r\n' + INJ),
            (b'set b 0 0 1 noreply\r\n1\r\nmd nokey q\r\nms inj:z 1 q\r\n'
             b'1\r\n', b'NF\r\n' + INJ),
        ]
        for data, want in cases:
            s, rep = self.talk(data, want)
            self.assertEqual(rep.data, want, 'request %r' % data)
            s.close()
        # An injected noreply command last: nothing comes back, and the
        # connection still works.
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(b'set b 0 0 1 noreply\r\n2\r\nset inj:z 0 0 1 noreply\r\n'
                  b'x\r\n')
        rep = harness.recv_for(s, 0.5)
        self.assertEqual(rep.data, b'', 'noreply commands got a reply')
        self.assertFalse(rep.eof)
        s.sendall(b'get b\r\n')
        rep = harness.recv_until(s, b'END\r\n', timeout=5)
        self.assertEqual(rep.data, b'VALUE b 0 1\r\n2\r\nEND\r\n')
        got = harness.request(up.port, b'mg inj:a v\r\nmg inj:z v\r\n'
                              b'mn\r\n', b'MN\r\n')
        self.assertEqual(got, b'EN\r\nEN\r\nMN\r\n')

    def test_injected_reply_waits_for_a_stopped_upstream(self):
        # With memcached stopped nothing may come back: the injected reply
        # is owed after replies memcached has not sent yet, including those
        # to quiet commands that do answer (a quiet mg hit).
        up = harness.start_memcached_for_test(self, port=self.upstream_port)
        harness.request(up.port, b'set hit 0 0 3\r\nabc\r\n', b'STORED\r\n')
        cases = [
            (b'get a\r\nget inj:x\r\n', b'END\r\n' + INJ),
            (b'mg hit q v\r\nget inj:x\r\n', b'VA 3\r\nabc\r\n' + INJ),
            (b'mg miss q v\r\nset z 0 0 1 noreply\r\n1\r\nmd miss q\r\n'
             b'mg inj:x q\r\n', b'NF\r\n' + INJ),
            (b'set z 0 0 1 noreply\r\n12\r\nset inj:x 0 0 1 noreply\r\n'
             b'x\r\nget inj:y\r\nincr z 1\r\n', b'ERROR\r\n' + INJ +
             b'2\r\n'),
        ]
        for data, want in cases:
            s = harness.connect(self.mcfault.port)
            self.addCleanup(s.close)
            harness.request(s.getsockname() and self.mcfault.port,
                            b'version\r\n', b'\r\n')
            harness.stop_process(up.pid)
            try:
                s.sendall(data)
                early = harness.recv_for(s, 0.5)
            finally:
                os.kill(up.pid, signal.SIGCONT)
            self.assertEqual(early.data, b'',
                             '%r: replied before memcached could have '
                             'answered' % data)
            rep = harness.recv_until(s, want, timeout=5)
            extra = harness.recv_for(s, 0.1)
            self.assertEqual(rep.data + extra.data, want, repr(data))
            s.close()

    def test_half_close_after_injected_commands(self):
        harness.start_memcached_for_test(self, port=self.upstream_port)
        cases = [(b'get a\r\nget inj:x\r\n', b'END\r\n' + INJ),
                 (b'get inj:x\r\n', INJ),
                 (b'set inj:x 0 0 1 noreply\r\nx\r\n', b''),
                 (b'mg nokey q\r\nms inj:x 2 q\r\nxy\r\n', INJ),
                 (b'get inj:x\r\nquit\r\nget inj:y\r\nget a\r\n', INJ),
                 (b'get inj:x\r\n' * 5000, INJ * 5000)]
        for data, want in cases:
            s = harness.connect(self.mcfault.port)
            self.addCleanup(s.close)
            rep = harness.exchange(s, data, rng=random.Random(3),
                                   until_eof=True, shut_wr=True, timeout=10)
            self.assertEqual(rep.data, want, '%r...' % data[:60])
            self.assertTrue(rep.eof, '%r...: no EOF: %r' % (data[:60], rep))
            s.close()

    def test_injected_data_block_is_swallowed(self):
        up = harness.start_memcached_for_test(self, port=self.upstream_port)
        big = mcgen.EVIL * (400 * 1024 // len(mcgen.EVIL))
        huge = (mcgen.EVIL * (2 * 1024 * 1024 // len(mcgen.EVIL) + 1))
        blocks = [big, huge, b'', b'\r\n', b'END\r\n', mcgen.EVIL,
                  b'x' * 2100 + b'\r\n' + b'get victim\r\n']
        for i, block in enumerate(blocks):
            for fmt, want in (
                    (b'set inj:big 0 0 %d\r\n', INJ),
                    (b'set inj:big 0 0 %d noreply\r\n', b''),
                    (b'append inj:big 0 0 %d\r\n', INJ),
                    (b'cas inj:big 0 0 %d 77 noreply\r\n', b''),
                    (b'ms inj:big %d q T0\r\n', INJ),
                    (b'ms inj:big %d\r\n', INJ)):
                data = (fmt % len(block)) + block + b'\r\nget victim\r\n' \
                    b'mg victim v\r\nmn\r\n'
                expect = want + b'END\r\nEN\r\nMN\r\n'
                for max_piece in (65536, 5):
                    if max_piece == 5 and len(block) > 100000:
                        continue
                    s, rep = self.talk(data, expect, rng_seed=i,
                                       max_piece=max_piece)
                    self.assertEqual(
                        rep.data, expect,
                        'request %r ... (%d bytes, pieces <= %d): %r'
                        % (data[:80], len(data), max_piece, rep))
                    s.close()
        got = harness.request(up.port, b'get victim inj:big\r\nmn\r\n',
                              b'MN\r\n')
        self.assertEqual(got, b'END\r\nMN\r\n',
                         'injected data block reached memcached')


if __name__ == '__main__':
    unittest.main()

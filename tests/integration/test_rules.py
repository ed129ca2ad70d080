# Fault rules (-c FILE) on the wire: every action (error, miss, drop, hang,
# delay, and forward: true) on classic and meta commands, single and
# multi-key, with and without noreply / q, in the middle of pipelines; the
# gates (after, limit, probability with seed); command globs, base64 keys,
# keyless commands; the event log and -v lines.
#
# Where memcached defines the answer, the expected bytes come from a real
# memcached: the same request bytes are sent to a reference memcached whose
# state makes the failure real (the key exists for an add, the CAS is stale,
# the key is absent for a delete...), and mcfault, in front of a memcached
# where the command would have succeeded, must reply byte for byte the same.
# Then the upstream memcached is read directly to check what really ran.

import base64
import os
import random
import re
import sys
import time
import unittest

# Runnable as a path (python3 -m unittest tests/integration/test_rules.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness
from faultkit import direct, get_value, put, talk

OOM = b'SERVER_ERROR out of memory storing object'
DELAY = 0.3  # seconds; the rules below use 300ms

RULES = r'''
# Rules of RulesTest: each key prefix selects one fault.
seed: 1
rules:
  - name: err-oom
    command: [set, add, ms, get, gets, mg]
    key: "e:oom:*"
    action: error
    message: SERVER_ERROR out of memory storing object
  - name: err-ns
    command: [add, ms]
    key: "e:ns:*"
    action: error
    message: NOT_STORED
  - name: err-ex
    command: [cas, ms]
    key: "e:ex:*"
    action: error
    message: EXISTS
  - name: err-nf
    command: [delete, incr, cas, md, ma, touch]
    key: "e:nf:*"
    action: error
    message: NOT_FOUND
  - name: err-hd
    command: [ms, md]
    key: "e:hd:*"
    action: error
    message: STORED
  - name: err-end
    command: mg
    key: "e:end:*"
    action: error
    message: END
  - name: err-fwd
    command: [set, ms, add, incr]
    key: "ef:*"
    action: error
    message: SERVER_ERROR lost
    forward: true
  - name: err-fwd-get
    command: [get, mg, gat]
    key: "efg:*"
    action: error
    message: SERVER_ERROR fwdget
    forward: true
  - name: err-fwd-ns
    command: ms
    key: "efn:*"
    action: error
    message: NOT_STORED
    forward: true
  - name: miss
    key: "m:*"
    action: miss
  - name: after-miss
    command: [delete, set]
    key: "m:err:*"
    action: error
    message: SERVER_ERROR after miss
  - name: drop
    key: "d:*"
    action: drop
  - name: drop-fwd
    key: "df:*"
    action: drop
    forward: true
  - name: hang
    key: "h:*"
    action: hang
  - name: hang-fwd
    key: "hf:*"
    action: hang
    forward: true
  - name: delay
    key: "w:*"
    action: delay
    delay: 300ms
  - name: delay-fwd
    key: "wf:*"
    action: delay
    delay: 300ms
    forward: true
  - name: upper
    command: GET
    key: "up:*"
    action: error
    message: SERVER_ERROR upper
  - name: cmd-class
    command: "M[GS]"
    key: "gc:*"
    action: error
    message: SERVER_ERROR cmd class
  - name: b64-encoded
    command: mg
    key: "Ym*"
    action: error
    message: SERVER_ERROR encoded form matched
  - name: version
    command: version
    action: error
    message: SERVER_ERROR no version
  - name: mn-needs-key
    command: [mn, stats, verbosity]
    key: "?*"
    action: error
    message: SERVER_ERROR mn matched a key
  - name: quit-rule
    command: quit
    action: error
    message: SERVER_ERROR quit faulted
  - name: ev
    command: get
    key: "ev:*"
    action: error
    message: SERVER_ERROR ev
'''


def b64(s):
    return base64.b64encode(s)


class RulesTest(unittest.TestCase):
    """One mcfault with the rules above, in front of `up`; `ref` is a second
    memcached that serves as the oracle."""

    @classmethod
    def setUpClass(cls):
        cls.up = harness.start_memcached_for_class(cls)
        cls.ref = harness.start_memcached_for_class(cls)
        cls.cfg = faultkit.write_class_file(cls, RULES)
        cls.evlog = faultkit.write_class_file(cls, '', 'events.jsonl')
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.up.port, ['-c', cls.cfg, '-v', '--event-log', cls.evlog])

    def px(self, data, tail=b'MN\r\n', timeout=5.0):
        """The whole reply through mcfault (asserts it ended with tail and
        the connection stayed open)."""
        rep = talk(self.mcfault.port, data, tail, timeout)
        self.assertTrue(rep.data.endswith(tail),
                        'reply through mcfault did not end with %r: %r (%r)'
                        '\nstderr tail:\n%s' % (tail, rep.data[-500:], rep,
                                                self.mcfault.stderr_tail()))
        self.assertFalse(rep.eof, 'mcfault closed the connection: %r'
                         % rep.data[-300:])
        return rep.data

    def px_eof(self, data, timeout=5.0):
        """Sends data and reads until EOF; returns the Reply."""
        s = harness.connect(self.mcfault.port, timeout)
        try:
            return harness.exchange(s, data, None, timeout=timeout,
                                    until_eof=True)
        finally:
            s.close()

    # ------------------------------------------------------------ error

    def test_error_set_data_block_swallowed_not_stored(self):
        # The errored set's data looks like a command: were it forwarded,
        # memcached would run it and delete ok:t1:a.
        put(self.up.port, 'ok:t1:a', 'alive')
        req = (b'set ok:t1:b 0 0 2\r\nbb\r\n'
               b'set e:oom:t1 0 0 14\r\ndelete ok:t1:a\r\n'
               b'get ok:t1:a ok:t1:b\r\n'
               b'mn\r\n')
        got = self.px(req)
        want_get = direct(self.up.port, b'get ok:t1:a ok:t1:b\r\n', b'END\r\n')
        harness.assert_same_bytes(
            self, b'STORED\r\n' + OOM + b'\r\n' + want_get + b'MN\r\n', got,
            'errored set in a pipeline')
        self.assertIn(b'VALUE ok:t1:a 0 5\r\nalive\r\n', want_get,
                      'the errored set\'s data block ran as a command')
        self.assertIsNone(get_value(self.up.port, 'e:oom:t1'),
                          'the errored set was stored')

    def test_error_classic_codes_equal_memcached(self):
        # On ref each failure is real; behind mcfault each command would
        # have succeeded.
        req = (b'get ok:c0\r\n'
               b'add e:ns:c1 0 0 1\r\nx\r\n'
               b'cas e:ex:c2 0 0 1 99999999\r\nx\r\n'
               b'cas e:nf:c3 0 0 1 1\r\nx\r\n'
               b'delete e:nf:c4\r\n'
               b'incr e:nf:c5 5\r\n'
               b'touch e:nf:c6 0\r\n'
               b'add e:ns:c7 0 0 1 noreply\r\nx\r\n'
               b'delete e:nf:c8 noreply\r\n'
               b'get ok:c0\r\n'
               b'mn\r\n')
        for port in (self.ref.port, self.up.port):
            put(port, 'ok:c0', 'zero')
        put(self.ref.port, 'e:ns:c1', 'old')
        put(self.ref.port, 'e:ex:c2', 'old')
        put(self.ref.port, 'e:ns:c7', 'old')
        for k in ('e:nf:c3', 'e:nf:c4', 'e:nf:c6', 'e:nf:c8'):
            put(self.up.port, k, 'there')
        put(self.up.port, 'e:nf:c5', '10')
        want = direct(self.ref.port, req, b'MN\r\n')
        self.assertEqual(
            want, b'VALUE ok:c0 0 4\r\nzero\r\nEND\r\nNOT_STORED\r\n'
            b'EXISTS\r\nNOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r\nNOT_FOUND\r\n'
            b'VALUE ok:c0 0 4\r\nzero\r\nEND\r\nMN\r\n',
            'oracle self-check (test bug)')
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'classic error codes')
        # Nothing of it reached memcached.
        self.assertIsNone(get_value(self.up.port, 'e:ns:c1'))
        self.assertIsNone(get_value(self.up.port, 'e:ex:c2'))
        self.assertIsNone(get_value(self.up.port, 'e:ns:c7'))
        self.assertEqual(get_value(self.up.port, 'e:nf:c3'), b'there')
        self.assertEqual(get_value(self.up.port, 'e:nf:c4'), b'there')
        self.assertEqual(get_value(self.up.port, 'e:nf:c5'), b'10')
        self.assertEqual(get_value(self.up.port, 'e:nf:c8'), b'there')

    def test_error_not_stored_on_add_equals_direct_add_on_existing_key(self):
        put(self.up.port, 'ok:t3:exists', 'v')
        want = direct(self.up.port, b'add ok:t3:exists 0 0 1\r\nx\r\n',
                      b'\r\n')
        got = self.px(b'add e:ns:t3 0 0 1\r\nx\r\n', b'\r\n')
        harness.assert_same_bytes(self, want, got, 'add NOT_STORED')
        self.assertEqual(got, b'NOT_STORED\r\n')
        self.assertIsNone(get_value(self.up.port, 'e:ns:t3'))

    def test_error_meta_codes_with_flags_equal_memcached(self):
        kb = b64(b'e:ns:m9')
        req = (b'ms e:ns:m1 1 ME O1 k\r\ny\r\n'
               b'ms e:ns:m1 1 k ME O11 q\r\ny\r\n'
               b'ms e:ex:m2 1 C99999999 O2 k\r\ny\r\n'
               b'ms e:ex:m2 1 k q C99999999 O22\r\ny\r\n'
               b'md e:nf:m3 O3 k q\r\n'
               b'md e:nf:m3 k O33\r\n'
               b'ma e:nf:m4 O4 k\r\n'
               b'ms e:hd:m5 1 q O5 k\r\nz\r\n'
               b'md e:hd:m6 q O6\r\n'
               b'ms e:hd:m7 1 T0 O7 k\r\nz\r\n'
               b'mg e:end:m8 v k O8 t\r\n'
               b'mg e:end:m8 v q k O88\r\n'
               b'ms ' + kb + b' 1 b ME O9 k\r\ny\r\n'
               b'ms e:oom:m10 1 O10 k q\r\nz\r\n'
               b'mn\r\n')
        # ref: the failures are real.
        put(self.ref.port, 'e:ns:m1', 'o')
        put(self.ref.port, 'e:ex:m2', 'o')
        put(self.ref.port, 'e:ns:m9', 'o')
        put(self.ref.port, 'e:hd:m6', 'o')
        # up: every command would succeed.
        for k in ('e:nf:m3', 'e:end:m8', 'e:hd:m6'):
            put(self.up.port, k, 'u')
        put(self.up.port, 'e:nf:m4', '7')
        want = direct(self.ref.port, req, b'MN\r\n')
        # ms e:oom:m10 succeeds on ref (q hides HD); mcfault answers the
        # SERVER_ERROR line as written, as memcached does for a failed ms.
        self.assertEqual(
            want,
            b'NS O1 ke:ns:m1\r\nNS ke:ns:m1 O11\r\n'
            b'EX O2 ke:ex:m2\r\nEX ke:ex:m2 O22\r\n'
            b'NF O3 ke:nf:m3\r\nNF ke:nf:m3 O33\r\nNF O4 ke:nf:m4\r\n'
            b'HD O7 ke:hd:m7\r\nEN ke:end:m8 O8\r\n'
            b'NS O9 k' + kb + b' b\r\nMN\r\n',
            'oracle self-check (test bug)')
        want = want.replace(b'\r\nMN\r\n', b'\r\n' + OOM + b'\r\nMN\r\n')
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'meta error codes')
        self.assertIsNone(get_value(self.up.port, 'e:ns:m1'))
        self.assertIsNone(get_value(self.up.port, 'e:ex:m2'))
        self.assertEqual(get_value(self.up.port, 'e:nf:m3'), b'u')
        self.assertEqual(get_value(self.up.port, 'e:nf:m4'), b'7')
        self.assertIsNone(get_value(self.up.port, 'e:hd:m5'))
        self.assertEqual(get_value(self.up.port, 'e:hd:m6'), b'u')
        self.assertIsNone(get_value(self.up.port, 'e:hd:m7'))
        self.assertIsNone(get_value(self.up.port, 'e:ns:m9'))
        self.assertIsNone(get_value(self.up.port, 'e:oom:m10'))

    def test_error_multi_key_get_any_key_matches(self):
        put(self.up.port, 'ok:mk1', 'a')
        got = self.px(b'get ok:mk1 e:oom:mk2 ok:mk3\r\n'
                      b'gets e:oom:mk2\r\nget ok:mk1\r\nmn\r\n')
        self.assertEqual(got, OOM + b'\r\n' + OOM + b'\r\n'
                         b'VALUE ok:mk1 0 1\r\na\r\nEND\r\nMN\r\n')

    def test_error_noreply_in_pipeline_equals_memcached(self):
        # Classic noreply hides errors: same bytes as memcached failing a
        # noreply add for real.
        req = (b'set ok:nr1 0 0 1 noreply\r\n1\r\n'
               b'add e:ns:nr2 0 0 1 noreply\r\n2\r\n'
               b'set e:oom:nr3 0 0 1 noreply\r\n3\r\n'
               b'get ok:nr1\r\n'
               b'mn\r\n')
        put(self.ref.port, 'e:ns:nr2', '2')
        put(self.ref.port, 'e:oom:nr3', 'x')
        want = direct(self.ref.port, req, b'MN\r\n')
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'noreply errors')
        self.assertIsNone(get_value(self.up.port, 'e:ns:nr2'))
        self.assertIsNone(get_value(self.up.port, 'e:oom:nr3'))
        self.assertEqual(get_value(self.up.port, 'ok:nr1'), b'1')

    def test_error_forward_true_write_lands(self):
        put(self.up.port, 'ok:f0', 'zero')
        put(self.up.port, 'ef:5', '10')
        got = self.px(b'set ef:1 0 0 3\r\nabc\r\n'
                      b'get ok:f0\r\n'
                      b'set ef:2 0 0 1 noreply\r\nz\r\n'
                      b'ms ef:3 1 q O1 k\r\nq\r\n'
                      b'ms efn:4 1 O2 k\r\nw\r\n'
                      b'incr ef:5 1\r\n'
                      b'get ok:f0\r\n'
                      b'mn\r\n')
        g = b'VALUE ok:f0 0 4\r\nzero\r\nEND\r\n'
        harness.assert_same_bytes(
            self,
            b'SERVER_ERROR lost\r\n' + g + b'SERVER_ERROR lost\r\n'
            b'NS O2 kefn:4\r\nSERVER_ERROR lost\r\n' + g + b'MN\r\n', got,
            'forward: true errors')
        self.assertEqual(get_value(self.up.port, 'ef:1'), b'abc')
        self.assertEqual(get_value(self.up.port, 'ef:2'), b'z')
        self.assertEqual(get_value(self.up.port, 'ef:3'), b'q')
        self.assertEqual(get_value(self.up.port, 'efn:4'), b'w')
        self.assertEqual(get_value(self.up.port, 'ef:5'), b'11')

    def test_error_forward_true_on_retrievals(self):
        # memcached's VALUE replies (multi-line) are swallowed whole.
        put(self.up.port, 'efg:1', 'secret')
        put(self.up.port, 'ok:fg', 'plain')
        got = self.px(b'get efg:1 ok:fg\r\n'
                      b'mg efg:1 v q\r\n'
                      b'mg efg:nothere v q\r\n'
                      b'gat 0 ok:fg efg:1\r\n'
                      b'get ok:fg\r\n'
                      b'mn\r\n')
        self.assertEqual(got, b'SERVER_ERROR fwdget\r\n' * 4 +
                         b'VALUE ok:fg 0 5\r\nplain\r\nEND\r\nMN\r\n')

    def test_pipeline_in_tiny_pieces_same_bytes(self):
        # Every rule-hit path with data blocks and rewritten lines, sent
        # whole and then in 1-3 byte pieces: the same bytes come back.
        # (No delayed command right behind an errored one: see
        # test_delay_after_errored_set_forwards_data_block.)
        put(self.up.port, 'ok:pc1', 'one')
        put(self.up.port, 'm:pc2', 'two')
        put(self.up.port, 'ok:pc3', 'three')
        req = (b'set e:oom:pc 0 0 10\r\nget ok:pc1\r\n'
               b'get ok:pc1 m:pc2 ok:pc3\r\n'
               b'ms e:ns:pc 5 ME O1 k\r\nhello\r\n'
               b'set ef:pc 0 0 5\r\nworld\r\n'
               b'mg m:pc2 v k O3\r\n'
               b'set ok:pc4 0 0 3 noreply\r\nabc\r\n'
               b'set wf:pc 0 0 3\r\nxyz\r\n'
               b'set w:pc 0 0 4\r\nwxyz\r\n'
               b'add e:ns:pc 0 0 2 noreply\r\nzz\r\n'
               b'get ok:pc4 m:pc2\r\n'
               b'mn\r\n')
        whole = self.px(req)
        for seed in (1, 2):
            s = harness.connect(self.mcfault.port)
            self.addCleanup(s.close)
            rep = harness.exchange(s, req, b'MN\r\n', timeout=10,
                                   rng=random.Random(seed), max_piece=3)
            harness.assert_same_bytes(self, whole, rep.data,
                                      'pieces, seed %d' % seed)
        self.assertTrue(whole.startswith(
            OOM + b'\r\n' + direct(self.up.port, b'get ok:pc1 ok:pc3\r\n',
                                    b'END\r\n')), whole)
        self.assertIn(b'NS O1 ke:ns:pc\r\nSERVER_ERROR lost\r\n'
                      b'EN km:pc2 O3\r\nSTORED\r\nSTORED\r\n', whole)
        self.assertEqual(get_value(self.up.port, 'w:pc'), b'wxyz')
        self.assertEqual(get_value(self.up.port, 'wf:pc'), b'xyz')
        self.assertEqual(get_value(self.up.port, 'ef:pc'), b'world')
        self.assertIsNone(get_value(self.up.port, 'e:oom:pc'))
        self.assertIsNone(get_value(self.up.port, 'e:ns:pc'))

    # ------------------------------------------------------------ miss

    def test_miss_multi_key_equals_direct_without_the_key(self):
        for k, v in (('ok:ma1', 'one'), ('m:ma2', 'two'), ('ok:ma3', 'three')):
            put(self.up.port, k, v)
        cases = [
            (b'get ok:ma1 m:ma2 ok:ma3\r\n', b'get ok:ma1 ok:ma3\r\n'),
            (b'gets ok:ma1 m:ma2 ok:ma3\r\n', b'gets ok:ma1 ok:ma3\r\n'),
            (b'gat 0 m:ma2 ok:ma1 m:ma2 ok:ma3\r\n',
             b'gat 0 ok:ma1 ok:ma3\r\n'),
            (b'gats 0 ok:ma1 ok:ma3 m:ma2\r\n', b'gats 0 ok:ma1 ok:ma3\r\n'),
            (b'get m:ma2 m:nothere\r\n', b'get nothere:1 nothere:2\r\n'),
            (b'gets m:ma2\r\n', b'gets nothere:1\r\n'),
        ]
        req = b''.join(c[0] for c in cases) + b'mn\r\n'
        got = self.px(req)
        want = b''.join(direct(self.up.port, c[1], b'END\r\n')
                        for c in cases) + b'MN\r\n'
        self.assertIn(b'VALUE ok:ma3 0 5 ', want)
        harness.assert_same_bytes(self, want, got, 'multi-key miss')
        self.assertEqual(get_value(self.up.port, 'm:ma2'), b'two',
                         'a miss deleted the key')

    def test_miss_meta_equals_memcached_miss(self):
        kb = b64(b'm:mb1')
        req = (b'set ok:mm0 0 0 1\r\nx\r\n'
               b'mg m:mm1 v k O5 t f\r\n'
               b'mg m:mm1 v q k O6\r\n'
               b'get ok:mm0\r\n'
               b'mg m:mm1 k v O7\r\n'
               b'mg ' + kb + b' b v k O9\r\n'
               b'mg ' + kb + b' b v q\r\n'
               b'get m:mm1\r\n'
               b'mn\r\n')
        put(self.up.port, 'm:mm1', 'hidden')
        put(self.up.port, 'm:mb1', 'hidden')
        want = direct(self.ref.port, req, b'MN\r\n')
        self.assertEqual(
            want, b'STORED\r\nEN km:mm1 O5\r\nVALUE ok:mm0 0 1\r\nx\r\nEND\r\n'
            b'EN km:mm1 O7\r\nEN k' + kb + b' b O9\r\nEND\r\nMN\r\n',
            'oracle self-check (test bug)')
        got = self.px(req)
        harness.assert_same_bytes(self, want, got, 'meta miss')
        self.assertEqual(get_value(self.up.port, 'm:mm1'), b'hidden')

    def test_miss_on_retrieval_without_key_is_left_to_memcached(self):
        # A miss makes keys miss; `get` / `mg` / `gat` without any key are
        # malformed, and memcached answers ERROR. (The miss rule here has
        # the default key "*", which matches the empty key of a keyless
        # command.) Doubtful rather than clearly wrong: see the report.
        req = b'get\r\nmg\r\ngat\r\nmn\r\n'
        cfg = faultkit.write_file(self, 'rules:\n  - {name: all-miss, '
                                  'command: [get, mg, gat], action: miss}\n')
        p = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        want = direct(self.up.port, req, b'MN\r\n')
        self.assertEqual(want, b'ERROR\r\nERROR\r\nERROR\r\nMN\r\n')
        got = talk(p.port, req, b'MN\r\n').data
        harness.assert_same_bytes(self, want, got, 'keyless retrievals')

    def test_miss_not_considered_for_other_commands(self):
        # set/delete/touch on m:* are no retrievals: the miss rule is not
        # tried, the next matching rule (or none) decides.
        got = self.px(b'set m:plain 0 0 1\r\np\r\n'
                      b'touch m:plain 0\r\n'
                      b'set m:err:1 0 0 1\r\ne\r\n'
                      b'delete m:err:2\r\n'
                      b'mg m:plain v\r\n'
                      b'delete m:plain\r\n'
                      b'mn\r\n')
        self.assertEqual(got, b'STORED\r\nTOUCHED\r\n'
                         b'SERVER_ERROR after miss\r\n'
                         b'SERVER_ERROR after miss\r\nEN\r\nDELETED\r\nMN\r\n')
        self.assertIsNone(get_value(self.up.port, 'm:plain'))
        self.assertIsNone(get_value(self.up.port, 'm:err:1'))

    # ------------------------------------------------ globs, keys, keyless

    def test_command_glob_is_case_insensitive(self):
        put(self.up.port, 'up:1', 'u')
        got = self.px(b'get up:1\r\ngets up:1\r\nget up:1 ok:none\r\n'
                      b'mn\r\n')
        want_gets = direct(self.up.port, b'gets up:1\r\n', b'END\r\n')
        self.assertEqual(got, b'SERVER_ERROR upper\r\n' + want_gets +
                         b'SERVER_ERROR upper\r\nMN\r\n')

    def test_command_glob_class(self):
        put(self.up.port, 'gc:1', 'g')
        got = self.px(b'mg gc:1 v\r\nms gc:1 1\r\nn\r\nma gc:1\r\n'
                      b'md gc:1\r\nmg gc:1 v\r\nmn\r\n')
        self.assertEqual(got, b'SERVER_ERROR cmd class\r\n'
                         b'SERVER_ERROR cmd class\r\n'
                         b'CLIENT_ERROR cannot increment or decrement '
                         b'non-numeric value\r\nHD\r\n'
                         b'SERVER_ERROR cmd class\r\nMN\r\n')
        self.assertIsNone(get_value(self.up.port, 'gc:1'))

    def test_base64_key_matched_decoded(self):
        # "YmFy" is base64 for "bar": the rule on "Ym*" must not see the
        # encoded form; a plain key starting with Ym does match it.
        put(self.up.port, 'bar', 'BAR')
        req = b'mg YmFy b v\r\nmg Ymxx v\r\nmn\r\n'
        got = self.px(req)
        self.assertEqual(got, b'VA 3\r\nBAR\r\n'
                         b'SERVER_ERROR encoded form matched\r\nMN\r\n')
        # and b64(m:*) is matched by the miss rule (see the meta miss test)

    def test_keyless_commands(self):
        got = self.px(b'version\r\nmn\r\nversion\r\nmn\r\n')
        self.assertEqual(got, b'SERVER_ERROR no version\r\nMN\r\n'
                         b'SERVER_ERROR no version\r\nMN\r\n')
        # A rule whose key glob needs a key ("?*") does not match keyless
        # commands, whatever their arguments.
        got = self.px(b'verbosity 1\r\nmn\r\n')
        self.assertEqual(got, b'OK\r\nMN\r\n')
        got = self.px(b'stats slabs\r\n', b'END\r\n')
        self.assertTrue(got.startswith(b'STAT ') or got == b'END\r\n', got)

    def test_quit_is_never_faulted(self):
        rep = self.px_eof(b'get ok:none\r\nquit\r\nget ok:none\r\n')
        self.assertTrue(rep.eof, rep)
        self.assertEqual(rep.data, b'END\r\n')

    # ------------------------------------------------------------ drop

    def test_drop_delivers_earlier_replies_then_eof(self):
        put(self.up.port, 'ok:d1', 'v1')
        put(self.up.port, 'd:keep', 'kept')
        other = harness.connect(self.mcfault.port)
        self.addCleanup(other.close)
        other.sendall(b'get ok:d1\r\n')
        self.assertEqual(harness.recv_until(other, b'END\r\n').data,
                         b'VALUE ok:d1 0 2\r\nv1\r\nEND\r\n')
        rep = self.px_eof(b'get ok:d1\r\n'
                          b'set ok:d2 0 0 1\r\nx\r\n'
                          b'set ok:d3 0 0 1 noreply\r\ny\r\n'
                          b'mg ok:d1 v q k\r\n'
                          b'delete d:keep\r\n'
                          b'get ok:d1\r\n'
                          b'set ok:d4 0 0 1\r\nz\r\n')
        self.assertTrue(rep.eof, 'no EOF after a drop: %r' % rep)
        harness.assert_same_bytes(
            self, b'VALUE ok:d1 0 2\r\nv1\r\nEND\r\nSTORED\r\n'
            b'VA 2 kok:d1\r\nv1\r\n', rep.data, 'replies before the drop')
        self.assertEqual(get_value(self.up.port, 'ok:d3'), b'y')
        self.assertEqual(get_value(self.up.port, 'd:keep'), b'kept',
                         'the dropped delete reached memcached')
        self.assertIsNone(get_value(self.up.port, 'ok:d4'),
                          'a command after the drop reached memcached')
        # The other connection is unaffected.
        other.sendall(b'get ok:d2\r\n')
        self.assertEqual(harness.recv_until(other, b'END\r\n').data,
                         b'VALUE ok:d2 0 1\r\nx\r\nEND\r\n')

    def test_drop_after_big_replies_delivers_them_all(self):
        # 3 x 900 KB of replies (past mcfault's buffer marks) before the
        # drop: every byte arrives, then EOF.
        val = bytes(random.Random(5).getrandbits(8) for _ in range(64)) * \
            (900 * 16)
        val = val.replace(b'\r', b'r').replace(b'\n', b'n')
        for i in range(3):
            harness.request(self.up.port, b'set ok:big%d 0 0 %d\r\n%s\r\n'
                            % (i, len(val), val), b'STORED\r\n')
        want = b''.join(b'VALUE ok:big%d 0 %d\r\n%s\r\nEND\r\n'
                        % (i, len(val), val) for i in range(3))
        for tail in (b'get d:big\r\n', b'get h:big\r\n'):
            s = harness.connect(self.mcfault.port)
            self.addCleanup(s.close)
            s.sendall(b'get ok:big0\r\nget ok:big1\r\nget ok:big2\r\n' +
                      tail)
            time.sleep(0.3)  # let mcfault's buffers fill up
            r = harness.recv_until(s, want, timeout=10)
            harness.assert_same_bytes(self, want, r.data, tail.decode())
            r = harness.recv_for(s, 0.3)
            self.assertEqual(r.data, b'')
            self.assertEqual(r.eof, tail.startswith(b'get d:'), r)

    def test_drop_behind_a_delay(self):
        t0 = time.monotonic()
        rep = self.px_eof(b'get w:dd\r\nget d:dd\r\nget ok:x\r\n')
        self.assertTrue(rep.eof)
        self.assertEqual(rep.data, b'END\r\n')
        self.assertGreaterEqual(time.monotonic() - t0, 0.8 * DELAY)

    def test_drop_variants_close_without_bytes(self):
        for req in (b'set d:2 0 0 1\r\nx\r\n',
                    b'get ok:x d:3 ok:y\r\n',
                    b'mg d:5 v q\r\nmn\r\n',
                    b'set d:6 0 0 1 noreply\r\nx\r\nmn\r\n',
                    b'md d:7 q\r\nmn\r\n'):
            rep = self.px_eof(req)
            self.assertTrue(rep.eof, '%r: %r' % (req, rep))
            self.assertEqual(rep.data, b'', req)
        self.assertIsNone(get_value(self.up.port, 'd:2'))
        self.assertIsNone(get_value(self.up.port, 'd:6'))

    def test_drop_forward_write_lands_then_eof(self):
        put(self.up.port, 'ok:df0', 'zz')
        put(self.up.port, 'df:del', 'x')
        rep = self.px_eof(b'get ok:df0\r\nset df:1 0 0 2\r\nhi\r\n'
                          b'get ok:df0\r\n')
        self.assertTrue(rep.eof, rep)
        self.assertEqual(rep.data, b'VALUE ok:df0 0 2\r\nzz\r\nEND\r\n')
        self.assertEqual(get_value(self.up.port, 'df:1'), b'hi')
        rep = self.px_eof(b'set df:2 0 0 2 noreply\r\nho\r\nmn\r\n')
        self.assertTrue(rep.eof, rep)
        self.assertEqual(rep.data, b'')
        self.assertEqual(get_value(self.up.port, 'df:2'), b'ho')
        rep = self.px_eof(b'md df:del q\r\nmn\r\n')
        self.assertTrue(rep.eof, rep)
        self.assertEqual(rep.data, b'')
        self.assertIsNone(get_value(self.up.port, 'df:del'))

    # ------------------------------------------------------------ hang

    def test_hang_answers_earlier_then_nothing(self):
        put(self.up.port, 'ok:h1', 'hh')
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        # A noreply command first: the group it opens is fenced before the
        # hang, and the fence's MN must not leak.
        s.sendall(b'set ok:h0 0 0 1 noreply\r\n0\r\n'
                  b'get ok:h1\r\nset ok:h2 0 0 1\r\nx\r\n'
                  b'set h:1 0 0 1\r\ny\r\nget ok:h1\r\nset ok:h3 0 0 1\r\n'
                  b'z\r\n')
        first = b'VALUE ok:h1 0 2\r\nhh\r\nEND\r\nSTORED\r\n'
        rep = harness.recv_until(s, first, timeout=5)
        self.assertEqual(rep.data, first)
        more = harness.recv_for(s, 0.6)
        self.assertTrue(more.timed_out and not more.eof,
                        'hang: connection closed or answered: %r %r'
                        % (more, more.data))
        self.assertEqual(more.data, b'')
        # Later commands get no answer either.
        s.sendall(b'get ok:h1\r\nmn\r\n')
        more = harness.recv_for(s, 0.3)
        self.assertEqual(more.data, b'')
        self.assertFalse(more.eof)
        self.assertEqual(get_value(self.up.port, 'ok:h0'), b'0')
        self.assertEqual(get_value(self.up.port, 'ok:h2'), b'x')
        self.assertIsNone(get_value(self.up.port, 'h:1'))
        self.assertIsNone(get_value(self.up.port, 'ok:h3'))

    def test_hang_forward_write_lands_no_reply(self):
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(b'mn\r\nset hf:1 0 0 2\r\nhi\r\nmn\r\n')
        self.assertEqual(harness.recv_until(s, b'MN\r\n').data, b'MN\r\n')
        v = harness.wait_for(lambda: get_value(self.up.port, 'hf:1'), 3)
        self.assertEqual(v, b'hi')
        more = harness.recv_for(s, 0.4)
        self.assertEqual(more.data, b'')
        self.assertFalse(more.eof)

    # ------------------------------------------------------------ delay

    def test_delay_holds_pipeline_not_other_connections(self):
        put(self.up.port, 'ok:w0', 'w0')
        a = faultkit.Timed(self.mcfault.port)
        self.addCleanup(a.close)
        b = harness.connect(self.mcfault.port)
        self.addCleanup(b.close)
        want_a = b'END\r\nVALUE ok:w0 0 2\r\nw0\r\nEND\r\nMN\r\n'
        a.send(b'get w:1\r\nget ok:w0\r\nmn\r\n')
        t0 = a.sent_at
        b.sendall(b'get ok:w0\r\n')
        rb = harness.recv_until(b, b'END\r\n', timeout=5)
        tb = time.monotonic()
        self.assertEqual(rb.data, b'VALUE ok:w0 0 2\r\nw0\r\nEND\r\n')
        a.read_until(b'MN\r\n')
        self.assertEqual(a.data, want_a)
        ta = a.time_of(1)
        self.assertGreaterEqual(ta - t0, 0.8 * DELAY,
                                'delayed reply came after %.3fs' % (ta - t0))
        self.assertLess(tb, ta, 'the other connection waited for the delay')
        # The command behind the delayed one waited too (it came in the same
        # or a later read than the delayed reply, never before).
        self.assertGreaterEqual(a.time_of(len(want_a)) - t0, 0.8 * DELAY)

    def test_delay_command_not_executed_before_delay(self):
        a = faultkit.Timed(self.mcfault.port)
        self.addCleanup(a.close)
        a.send(b'set w:2 0 0 1\r\nx\r\nmn\r\n')
        during = get_value(self.up.port, 'w:2')
        probe_done = time.monotonic()
        a.read_until(b'MN\r\n')
        self.assertEqual(a.data, b'STORED\r\nMN\r\n')
        self.assertLess(probe_done, a.time_of(1),
                        'test machine too slow: the probe ended after the '
                        'delayed reply')
        self.assertIsNone(during, 'the delayed set ran before its delay')
        self.assertEqual(get_value(self.up.port, 'w:2'), b'x')

    def test_delay_forward_write_lands_reply_late(self):
        put(self.up.port, 'ok:wf0', 'q')
        a = faultkit.Timed(self.mcfault.port)
        self.addCleanup(a.close)
        a.send(b'set wf:1 0 0 1\r\nx\r\nget ok:wf0\r\nmn\r\n')
        t0 = a.sent_at
        v = harness.wait_for(lambda: get_value(self.up.port, 'wf:1'),
                             DELAY / 2, interval=0.01)
        seen = time.monotonic()
        a.read_until(b'MN\r\n')
        self.assertEqual(a.data, b'STORED\r\nVALUE ok:wf0 0 1\r\nq\r\nEND\r\n'
                         b'MN\r\n')
        self.assertEqual(v, b'x', 'the value was not stored during the delay')
        self.assertLess(seen, a.time_of(1))
        self.assertGreaterEqual(a.time_of(1) - t0, 0.8 * DELAY)

    def test_delay_noreply_and_meta_quiet(self):
        a = faultkit.Timed(self.mcfault.port)
        self.addCleanup(a.close)
        a.send(b'set w:3 0 0 1 noreply\r\nx\r\nms w:4 1 q\r\ny\r\n'
               b'mg w:3 v q\r\nmn\r\n')
        t0 = a.sent_at
        a.read_until(b'MN\r\n', timeout=5)
        # Three delayed commands one after another.
        self.assertEqual(a.data, b'VA 1\r\nx\r\nMN\r\n')
        self.assertGreaterEqual(a.time_of(1) - t0, 3 * 0.8 * DELAY)
        self.assertEqual(get_value(self.up.port, 'w:4'), b'y')

    def test_delay_big_data_block(self):
        val = b'v' * 300000
        a = faultkit.Timed(self.mcfault.port)
        self.addCleanup(a.close)
        a.send(b'set w:big 0 0 %d\r\n%s\r\nget ok:none\r\nmn\r\n'
               % (len(val), val))
        t0 = a.sent_at
        a.read_until(b'MN\r\n')
        self.assertEqual(a.data, b'STORED\r\nEND\r\nMN\r\n')
        self.assertGreaterEqual(a.time_of(1) - t0, 0.8 * DELAY)
        self.assertEqual(get_value(self.up.port, 'w:big'), val)

    def test_delay_client_half_close_replies_still_arrive(self):
        # A client that sends its pipeline and shuts its write side gets
        # every reply (memcached answers what it read before the EOF), also
        # when the replies are held by a delay.
        put(self.up.port, 'ok:hc', 'v')
        want = b'END\r\nVALUE ok:hc 0 1\r\nv\r\nEND\r\n'
        for key in (b'w:hc', b'wf:hc'):
            with self.subTest('half-close', key=key):
                s = harness.connect(self.mcfault.port)
                self.addCleanup(s.close)
                t0 = time.monotonic()
                rep = harness.exchange(s, b'get %s\r\nget ok:hc\r\n' % key,
                                       None, timeout=5, until_eof=True,
                                       shut_wr=True)
                took = time.monotonic() - t0
                self.assertEqual(rep.data, want, '%r' % rep)
                self.assertTrue(rep.eof)
                self.assertGreaterEqual(took, 0.8 * DELAY)
        # The same when memcached closes first: quit behind a held reply.
        for key in (b'w:hq', b'wf:hq'):
            with self.subTest('quit', key=key):
                rep = self.px_eof(b'get %s\r\nget ok:hc\r\nquit\r\n'
                                  % key)
                self.assertEqual(rep.data, want, '%r' % rep)
                self.assertTrue(rep.eof)

    def test_delay_after_errored_set_forwards_data_block(self):
        # An errored set's data block is swallowed; the data block of the
        # delayed set right behind it must still reach memcached.
        put(self.up.port, 'ok:wd', 'k')
        got = self.px(b'set e:oom:wd1 0 0 1\r\nx\r\n'
                      b'set w:wd2 0 0 2\r\nhi\r\n'
                      b'get ok:wd\r\nmn\r\n')
        self.assertEqual(got, OOM + b'\r\nSTORED\r\n'
                         b'VALUE ok:wd 0 1\r\nk\r\nEND\r\nMN\r\n')
        self.assertEqual(get_value(self.up.port, 'w:wd2'), b'hi')

    def test_delay_forward_after_errored_set_forwards_data_block(self):
        put(self.up.port, 'ok:wd', 'k')
        got = self.px(b'add e:ns:wd3 0 0 1\r\nx\r\n'
                      b'set wf:wd4 0 0 2\r\nho\r\n'
                      b'get ok:wd\r\nmn\r\n')
        self.assertEqual(got, b'NOT_STORED\r\nSTORED\r\n'
                         b'VALUE ok:wd 0 1\r\nk\r\nEND\r\nMN\r\n')
        self.assertEqual(get_value(self.up.port, 'wf:wd4'), b'ho')

    # ---------------------------------------------------- logs and events

    def test_event_log_and_verbose_lines(self):
        put(self.up.port, 'm:ev', 'x')
        got = self.px(b'get ok:ev ev:1 ev:2\r\nmg m:ev v k\r\nversion\r\n'
                      b'mn\r\n')
        self.assertEqual(got, b'SERVER_ERROR ev\r\nEN km:ev\r\n'
                         b'SERVER_ERROR no version\r\nMN\r\n')
        rep = self.px_eof(b'set df:ev 0 0 1\r\nx\r\n')
        self.assertTrue(rep.eof)
        t_end = time.time()
        want = [('ev', 'error', False, 'get', 'ev:1', 3),
                ('miss', 'miss', False, 'mg', 'm:ev', 1),
                ('version', 'error', False, 'version', '', 0),
                ('drop-fwd', 'drop', True, 'set', 'df:ev', 1)]

        def mine(evs):
            return [e for e in evs
                    if e.get('key') in ('ev:1', 'm:ev', 'df:ev')
                    or e.get('command') == 'version']
        evs = faultkit.wait_events(
            self.evlog, lambda e: len(mine(e)) >= len(want))
        got_ev = mine(evs)
        # test_keyless_commands also faults version: take the last ones.
        got_ev = [e for e in got_ev if e['command'] != 'version'] + \
            [e for e in got_ev if e['command'] == 'version'][-1:]
        got_ev.sort(key=lambda e: e['time'])
        self.assertEqual(
            [(e['rule'], e['action'], e['forward'], e['command'], e['key'],
              e['keys']) for e in got_ev], want, got_ev)
        for e in got_ev:
            self.assertEqual(set(e), {'time', 'proxy', 'conn', 'rule',
                                      'action', 'forward', 'command', 'key',
                                      'keys'})
            self.assertEqual(e['proxy'], 'default')
            self.assertIsInstance(e['conn'], int)
            self.assertTrue(t_end - 60 < e['time'] <= t_end + 1, e)
        text = faultkit.wait_stderr(
            self.mcfault, r"fault default rule 'drop-fwd' drop \(forward\): "
            r"set df:ev$")
        for rx in (r"^mcfault: conn \d+: fault default rule 'ev' error: "
                   r"get ev:1$",
                   r"^mcfault: conn \d+: fault default rule 'miss' miss: "
                   r"mg m:ev$",
                   r"^mcfault: conn \d+: fault default rule 'version' error: "
                   r"version ?$",
                   r"^mcfault: conn \d+: fault default rule 'drop-fwd' drop "
                   r"\(forward\): set df:ev$"):
            self.assertTrue(re.search(rx, text, re.M),
                            'no -v line %r in:\n%s' % (rx, text[-3000:]))


class ResourcesTest(unittest.TestCase):
    """Descriptors: hung and dropped connections are cleaned up."""

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        cfg = faultkit.write_file(self, '''
rules:
  - {name: hang, key: "h:*", action: hang}
  - {name: hangf, key: "hf:*", action: hang, forward: true}
  - {name: drop, key: "d:*", action: drop}
''')
        self.mcfault = harness.start_mcfault_for_test(self, self.up.port,
                                                      ['-c', cfg])
        self.base = faultkit.settled_fd_count(self.mcfault.pid)

    def test_hang_then_close_returns_to_baseline(self):
        socks = []
        for i, req in enumerate((b'get h:1\r\n', b'get ok h:2\r\n',
                                 b'set hf:3 0 0 1\r\nx\r\n',
                                 b'set ok:4 0 0 1 noreply\r\nx\r\nget h:4\r\n',
                                 b'mg h:5 v q\r\nmn\r\n',
                                 b'ms hf:6 1 q\r\nx\r\nmn\r\n')):
            s = harness.connect(self.mcfault.port)
            s.sendall(req)
            socks.append(s)
        n = faultkit.wait_fds(self.mcfault.pid, self.base + 2 * len(socks))
        self.assertEqual(n, self.base + 2 * len(socks),
                         'each hung connection holds a client and an '
                         'upstream fd')
        for s in socks:
            r = harness.recv_for(s, 0.2)
            self.assertEqual(r.data, b'')
            self.assertFalse(r.eof)
        for s in socks:
            s.close()
        n = faultkit.wait_fds(self.mcfault.pid, self.base)
        self.assertEqual(n, self.base, 'fds after closing hung clients: %r'
                         % harness.fd_targets(self.mcfault.pid))

    def test_drop_returns_to_baseline(self):
        for _ in range(20):
            s = harness.connect(self.mcfault.port)
            s.sendall(b'get a\r\nget d:x\r\n')
            r = harness.recv_until(s, None, timeout=5)
            self.assertTrue(r.eof)
            self.assertEqual(r.data, b'END\r\n')
            s.close()
        n = faultkit.wait_fds(self.mcfault.pid, self.base)
        self.assertEqual(n, self.base)


class GatesTest(unittest.TestCase):
    """after, limit, probability (seeded): one mcfault per run, fresh
    counters."""

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)

    def run_gets(self, rules, n, key=b'g:1', conns=1):
        """Starts mcfault with rules, sends n `get key` (spread over conns
        connections, in order) and returns the list of replies."""
        cfg = faultkit.write_file(self, rules)
        p = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        out = []
        per = (n + conns - 1) // conns
        for c in range(conns):
            cnt = min(per, n - c * per)
            got = talk(p.port, (b'get ' + key + b'\r\n') * cnt + b'mn\r\n',
                       b'MN\r\n', timeout=10).data
            self.assertTrue(got.endswith(b'MN\r\n'), got[-200:])
            out += re.findall(rb'(END|SERVER_ERROR [a-z]+)\r\n', got)
        self.assertEqual(len(out), n)
        return out

    def test_after_and_limit(self):
        rules = '''
rules:
  - {name: g, command: get, key: "g:*", action: error,
     message: SERVER_ERROR gated, after: 2, limit: 3}
'''
        E, G = b'END', b'SERVER_ERROR gated'
        want = [E, E, G, G, G, E, E, E]
        self.assertEqual(self.run_gets(rules, 8), want)
        # Counters are per rule, not per connection.
        self.assertEqual(self.run_gets(rules, 8, conns=4), want)

    def test_matching_but_not_firing_lets_next_rule_try(self):
        rules = '''
rules:
  - {name: one, key: "g:*", action: error, message: SERVER_ERROR one,
     after: 1, limit: 2}
  - {name: other, key: "x:*", action: error, message: SERVER_ERROR x}
  - {name: two, key: "g:*", action: error, message: SERVER_ERROR two,
     probability: 0}
  - {name: three, key: "g:*", action: error, message: SERVER_ERROR three}
'''
        self.assertEqual(self.run_gets(rules, 5),
                         [b'SERVER_ERROR three', b'SERVER_ERROR one',
                          b'SERVER_ERROR one', b'SERVER_ERROR three',
                          b'SERVER_ERROR three'])

    def test_miss_rule_not_counted_on_non_retrievals(self):
        # A miss rule is not considered for set/delete: they do not count
        # towards its `after`.
        cfg = faultkit.write_file(self, '''
rules:
  - {name: m, key: "g:*", action: miss, after: 1}
''')
        p = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        got = talk(p.port, b'set g:1 0 0 1\r\nx\r\n' * 3 +
                   b'touch g:1 0\r\nget g:1\r\nget g:1\r\nmn\r\n',
                   b'MN\r\n').data
        self.assertEqual(got, b'STORED\r\n' * 3 + b'TOUCHED\r\n'
                         b'VALUE g:1 0 1\r\nx\r\nEND\r\nEND\r\nMN\r\n')

    def test_disabled_rule_and_key_glob_lists(self):
        rules = '''
rules:
  - {name: off, key: "g:*", action: error, message: SERVER_ERROR off,
     enabled: false}
  - {name: list, key: ["x:*", "g:[0-9]", 'g:\\*'], action: error,
     message: SERVER_ERROR list}
'''
        cfg = faultkit.write_file(self, rules)
        p = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        got = talk(p.port, b'get g:1\r\nget g:a\r\nget g:*\r\n'
                   b'get g:12\r\nget x:\r\nmn\r\n', b'MN\r\n').data
        L = b'SERVER_ERROR list\r\n'
        self.assertEqual(got, L + b'END\r\n' + L + b'END\r\n' + L +
                         b'MN\r\n')

    def test_probability_seeded_repeatable(self):
        rules = '''
seed: %d
rules:
  - {name: p, key: "g:*", action: error, message: SERVER_ERROR p,
     probability: %s}
'''
        n = 300
        a = self.run_gets(rules % (42, '0.5'), n)
        b = self.run_gets(rules % (42, '50%'), n, conns=3)
        c = self.run_gets(rules % (43, '0.5'), n)
        fires = sum(1 for x in a if x != b'END')
        self.assertTrue(0.3 * n <= fires <= 0.7 * n,
                        'probability 0.5 fired %d of %d' % (fires, n))
        self.assertEqual(a, b, 'same seed, different fire pattern')
        self.assertNotEqual(a, c, 'seeds 42 and 43 gave the same pattern')
        low = self.run_gets(rules % (7, '10%'), n)
        fires = sum(1 for x in low if x != b'END')
        self.assertTrue(5 <= fires <= 0.25 * n,
                        'probability 10%% fired %d of %d' % (fires, n))

    def test_probability_with_after_and_limit(self):
        rules = '''
seed: 5
rules:
  - {name: p, key: "g:*", action: error, message: SERVER_ERROR p,
     probability: 0.5, after: 20, limit: 10}
'''
        out = self.run_gets(rules, 200)
        self.assertEqual(out[:20], [b'END'] * 20)
        self.assertEqual(sum(1 for x in out if x != b'END'), 10)

    def test_jitter_bounds(self):
        cfg = faultkit.write_file(self, '''
seed: 3
rules:
  - {name: j, key: "j:*", action: delay, delay: 200ms, jitter: 100ms}
''')
        p = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        s = harness.connect(p.port)
        self.addCleanup(s.close)
        took = []
        for i in range(8):
            t0 = time.monotonic()
            s.sendall(b'get j:%d\r\n' % i)
            r = harness.recv_until(s, b'END\r\n', timeout=5)
            took.append(time.monotonic() - t0)
            self.assertEqual(r.data, b'END\r\n')
        self.assertGreaterEqual(min(took), 0.08, took)
        self.assertLess(max(took), 2.0, took)
        self.assertGreater(max(took) - min(took), 0.02,
                           'jitter 100ms but all delays alike: %r' % took)


if __name__ == '__main__':
    unittest.main()

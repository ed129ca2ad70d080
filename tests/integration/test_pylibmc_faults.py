# pylibmc (Debian's python3-pylibmc, on libmemcached) as the application
# behind mcfault: what it raises or returns for each fault of issue 9 (drop
# with close: reset, throttle, slice, truncate, corrupt, evict, min_size,
# client: targeting, command: connect rules), and what the memcached
# behind mcfault holds afterwards (read directly). docs/faults.md quotes
# these outcomes.
#
# libmemcached cannot choose its source address, so client: rules are
# checked from pylibmc's own 127.0.0.1 (a rule for 127.0.0.1 hits it, one
# for 127.0.0.2 does not), and connect rules, which then hit every
# connection from 127.0.0.1 including the harness's own probes, run on an
# mcfault per test that is stopped without the probe.

import os
import re
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put  # noqa: E402

try:
    import pylibmc
except ImportError:
    # CMake may pick a Python (e.g. one from pyenv) without Debian's
    # dist-packages on its path; the extension is built for Python 3.11.
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        import pylibmc
    except ImportError:
        pylibmc = None

# libmemcached's own words, in the exception text.
EOF_TEXT = '::rec() returned zero, server has disconnected'
RESET_TEXT = 'Connection reset by peer'
# A connect rule's reset can meet libmemcached still inside connect(): then
# it says CONNECTION FAILURE instead (seen in CI).
CONNECT_RESET_RE = 'Connection reset by peer|CONNECTION FAILURE'
TIMEOUT_TEXT = 'A TIMEOUT OCCURRED'

BEHAVIORS = {'connect_timeout': 3000, '_poll_timeout': 3000}

RULES = r'''
seed: 17
rules:
  - {name: drop, key: "pl:fin:*", action: drop}
''' + faultkit.newer_action_rules('pl') + r'''
  - {name: me, client: 127.0.0.1, key: "pl:me:*", action: drop}
  - {name: not-me, client: [127.0.0.2, "::1"], key: "pl:other:*",
     action: drop}
'''


def bit_diff(a, b):
    assert len(a) == len(b), (len(a), len(b))
    return sum(bin(x ^ y).count('1') for x, y in zip(a, b))


def start_unprobed(tc, up_port, args):
    """An mcfault for one test, stopped at cleanup with SIGTERM and
    checked for exit status 0 and sanitizer reports, but without the
    harness's accept probe (a connect rule would answer it)."""
    m = harness.Mcfault(up_port, args)

    def stop():
        rc = m.stop(signal.SIGTERM)
        text = m.stderr_text()
        problems = []
        if rc != 0:
            problems.append('exit status %r' % (rc,))
        problems += ['stderr contains %r' % k
                     for k in harness.SANITIZER_MARKERS if k in text]
        if problems:
            raise AssertionError('mcfault: %s\n%s'
                                 % ('; '.join(problems), text[-4000:]))
    tc.addCleanup(stop)
    m.start()
    return m


@unittest.skipIf(pylibmc is None, 'pylibmc is not installed')
class PylibmcFaultsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_rules(cls, RULES)

    def client(self, port=None, **beh):
        b = dict(BEHAVIORS)
        b.update(beh)
        c = pylibmc.Client(['%s:%d' % (harness.HOST,
                                       port or self.mcfault.port)],
                           behaviors=b)
        self.addCleanup(c.disconnect_all)
        return c

    def assert_works(self, c, key='pl:ok:check'):
        val = ('fine-%s' % key).encode()
        self.assertTrue(c.set(key, val))
        self.assertEqual(c.get(key), val)
        self.assertEqual(c.get_multi([key, 'pl:ok:absent']), {key: val})

    def assert_conn_error(self, text, fn, *args):
        with self.assertRaises(pylibmc.ConnectionError) as cm:
            fn(*args)
        self.assertIn(text, str(cm.exception))
        return cm.exception

    def test_drop_fin_and_reset_are_told_apart(self):
        c = self.client()
        put(self.up.port, 'pl:fin:1', 'x')
        put(self.up.port, 'pl:rst:1', 'x')
        self.assert_works(c)
        self.assert_conn_error(EOF_TEXT, c.get, 'pl:fin:1')
        self.assert_works(c, 'pl:ok:after-fin')
        e = self.assert_conn_error(RESET_TEXT, c.get, 'pl:rst:1')
        self.assertNotIn(EOF_TEXT, str(e))
        self.assert_works(c, 'pl:ok:after-reset')
        self.assert_conn_error(RESET_TEXT, c.set, 'pl:rst:2', b'y')
        self.assertIsNone(get_value(self.up.port, 'pl:rst:2'))
        # forward: true: stored, then reset.
        self.assert_conn_error(RESET_TEXT, c.set, 'pl:rstf:1', b'landed')
        self.assertEqual(get_value(self.up.port, 'pl:rstf:1'), b'landed')
        self.assertEqual(c.get('pl:rstf:1'), b'landed')

    def test_throttle_is_slow_and_correct(self):
        c = self.client()
        value = os.urandom(100000)
        put(self.up.port, 'pl:thr:1', value)
        t0 = time.monotonic()
        self.assertEqual(c.get('pl:thr:1'), value)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)
        self.assertTrue(c.set('pl:ok:thr', b'beside'))
        self.assertEqual(c.get_multi(['pl:ok:thr', 'pl:thr:1']),
                         {'pl:ok:thr': b'beside', 'pl:thr:1': value})
        # The poll timeout is per wait, not per reply: bytes keep coming,
        # so a 250 ms poll timeout does not fire on a 0.5 s reply.
        c2 = self.client(_poll_timeout=250)
        self.assertEqual(c2.get('pl:thr:1'), value)

    def test_slice_is_correct(self):
        c = self.client(cas=True)
        value = os.urandom(1000)
        self.assertTrue(c.set('pl:sl:1', value))
        self.assertEqual(c.get('pl:sl:1'), value)
        v, cas = c.gets('pl:sl:1')
        self.assertEqual(v, value)
        self.assertTrue(c.cas('pl:sl:1', b'new', cas))
        self.assertEqual(get_value(self.up.port, 'pl:sl:1'), b'new')
        self.assertTrue(c.set('pl:sl:n', 41))
        self.assertEqual(c.incr('pl:sl:n'), 42)
        self.assertEqual(c.get_multi(['pl:sl:1', 'pl:sl:n', 'pl:ok:none']),
                         {'pl:sl:1': b'new', 'pl:sl:n': 42})

    def test_truncate(self):
        c = self.client()
        put(self.up.port, 'pl:cut:1', 'v' * 100)
        self.assert_conn_error(EOF_TEXT, c.get, 'pl:cut:1')
        self.assert_works(c, 'pl:ok:after-cut')
        # get_multi: no exception; the values that arrived whole come
        # back, the cut one is missing as if it were a miss. (50% of this
        # reply ends inside pl:cut:1's value.)
        self.assertTrue(c.set('pl:ok:cut', b'beside'))
        self.assertEqual(c.get_multi(['pl:ok:cut', 'pl:cut:1']),
                         {'pl:ok:cut': b'beside'})
        self.assert_works(c, 'pl:ok:after-cut1')
        # Cut inside the first value: an empty dict.
        put(self.up.port, 'pl:cut:2', 'w' * 200)
        self.assertEqual(c.get_multi(['pl:cut:2', 'pl:ok:cut']), {})
        self.assert_works(c, 'pl:ok:after-cut2')
        # A write whose STORED is cut: raises, but landed.
        self.assert_conn_error(EOF_TEXT, c.set, 'pl:cutw:1', b'landed')
        self.assertEqual(get_value(self.up.port, 'pl:cutw:1'), b'landed')
        put(self.up.port, 'pl:cutr:1', 'r' * 100)
        self.assert_conn_error(RESET_TEXT, c.get, 'pl:cutr:1')
        self.assert_works(c, 'pl:ok:after-cutr')

    def test_corrupt_read_returns_wrong_bytes_silently(self):
        c = self.client()
        good = os.urandom(100)
        put(self.up.port, 'pl:rot:1', good)
        put(self.up.port, 'pl:ok:rot', good)
        bad = c.get('pl:rot:1')
        self.assertIsInstance(bad, bytes)
        self.assertEqual(bit_diff(good, bad), 3)
        got = c.get_multi(['pl:ok:rot', 'pl:rot:1'])
        self.assertEqual(got['pl:ok:rot'], good)
        self.assertEqual(bit_diff(good, got['pl:rot:1']), 3)
        self.assertEqual(get_value(self.up.port, 'pl:rot:1'), good)
        self.assert_works(c, 'pl:ok:after-rot')

    def test_corrupt_write_stores_wrong_bytes(self):
        c = self.client()
        good = os.urandom(200)
        self.assertTrue(c.set('pl:rotw:1', good))
        stored = get_value(self.up.port, 'pl:rotw:1')
        self.assertEqual(bit_diff(good, stored), 2)
        self.assertEqual(c.get('pl:rotw:1'), stored)
        # pylibmc's own serialization (flags say str, int, pickle): the
        # value comes back different, or decoding raises.
        for key, val in (('pl:rotw:s', 'hello world'),
                         ('pl:rotw:i', 123456789),
                         ('pl:rotw:p', {'a': 1, 'b': [1, 2, 3]})):
            self.assertTrue(c.set(key, val))
            try:
                back = c.get(key)
            except Exception as e:  # noqa: B902 (UnpicklingError & co.)
                back = e
                self.assertNotIsInstance(e, pylibmc.Error,
                                         'a decoding error, not a '
                                         'libmemcached one: %r' % e)
            harness.log('pylibmc %s: %r -> %r' % (key, val, back))
            self.assertNotEqual(back, val, key)

    def test_evict_makes_real_misses(self):
        c = self.client()
        put(self.up.port, 'pl:ev:1', 'here')
        put(self.up.port, 'pl:ok:ev', 'beside')
        self.assertIsNone(c.get('pl:ev:1'))
        self.assertIsNone(get_value(self.up.port, 'pl:ev:1'))
        put(self.up.port, 'pl:ev:2', 'here')
        self.assertEqual(c.get_multi(['pl:ok:ev', 'pl:ev:2']),
                         {'pl:ok:ev': b'beside'})
        self.assertTrue(c.set('pl:ev:3', b'new'))
        self.assertEqual(get_value(self.up.port, 'pl:ev:3'), b'new')
        self.assertTrue(c.add('pl:ev:3', b'added'))
        self.assertEqual(get_value(self.up.port, 'pl:ev:3'), b'added')
        self.assertFalse(c.delete('pl:ev:3'))
        put(self.up.port, 'pl:ev:n', '5')
        with self.assertRaises(pylibmc.NotFound):
            c.incr('pl:ev:n')
        self.assertIsNone(get_value(self.up.port, 'pl:ev:n'))

    def test_big_write_refused(self):
        c = self.client()
        with self.assertRaises(pylibmc.TooBig):
            c.set('pl:big:1', b'x' * (600 * 1024))
        self.assertIsNone(get_value(self.up.port, 'pl:big:1'))
        self.assertTrue(c.set('pl:big:2', b'x' * 1024))
        self.assertEqual(c.get('pl:big:2'), b'x' * 1024)

    def test_client_targeting(self):
        c = self.client()
        put(self.up.port, 'pl:me:1', 'v')
        put(self.up.port, 'pl:other:1', 'v')
        self.assert_conn_error(EOF_TEXT, c.get, 'pl:me:1')
        # A rule for other addresses leaves this client alone.
        self.assertEqual(c.get('pl:other:1'), b'v')
        self.assertEqual(c.get_multi(['pl:other:1']), {'pl:other:1': b'v'})


@unittest.skipIf(pylibmc is None, 'pylibmc is not installed')
class PylibmcConnectFaultsTest(unittest.TestCase):
    """command: connect rules; every connection from 127.0.0.1 gets them."""

    @classmethod
    def setUpClass(cls):
        cls.up = harness.start_memcached_for_class(cls)
        put(cls.up.port, 'k', 'val')

    def mcfault(self, rule):
        cfg = faultkit.write_file(
            self, 'rules:\n  - {name: c, command: connect, %s}\n' % rule)
        return start_unprobed(self, self.up.port, ['-c', cfg])

    def client(self, m, **beh):
        b = dict(BEHAVIORS)
        b.update(beh)
        c = pylibmc.Client(['%s:%d' % (harness.HOST, m.port)], behaviors=b)
        self.addCleanup(c.disconnect_all)
        return c

    def test_drop_fin(self):
        c = self.client(self.mcfault('action: drop'))
        for _ in range(2):
            # EOF, or a reset when the request reached the closed socket
            # before libmemcached read.
            with self.assertRaises(pylibmc.ConnectionError) as cm:
                c.get('k')
            self.assertRegex(str(cm.exception), '%s|%s' % (
                re.escape(EOF_TEXT), CONNECT_RESET_RE))
        with self.assertRaises(pylibmc.ConnectionError):
            c.set('k2', b'v')
        self.assertIsNone(get_value(self.up.port, 'k2'))

    def test_drop_reset(self):
        c = self.client(self.mcfault('action: drop, close: reset'))
        with self.assertRaises(pylibmc.ConnectionError) as cm:
            c.get('k')
        self.assertRegex(str(cm.exception), CONNECT_RESET_RE)
        # When the reset already hit connect(), libmemcached marks the
        # server dead until retry_timeout (2 s): ServerDown, error 47.
        with self.assertRaises((pylibmc.ConnectionError,
                                pylibmc.ServerDown)):
            c.get('k')

    def test_error_too_many_connections(self):
        c = self.client(self.mcfault('action: error'))
        # libmemcached reads the ERROR line as the reply: get() returns
        # None, like a miss (or, when the request met the closed socket
        # first, a ConnectionError: a reset).
        try:
            got = c.get('k')
        except pylibmc.ConnectionError as e:
            self.assertRegex(str(e), CONNECT_RESET_RE)
        else:
            self.assertIsNone(got)
        # Writes raise "error 11" (libmemcached: ERROR was returned by
        # server), which pylibmc names SocketCreateError.
        with self.assertRaises((pylibmc.SocketCreateError,
                                pylibmc.ConnectionError)):
            c.set('k2', b'v')
        self.assertIsNone(get_value(self.up.port, 'k2'))

    def test_error_custom_message(self):
        c = self.client(self.mcfault(
            'action: error, message: SERVER_ERROR go away'))
        # Mostly a reset (libmemcached writes its request after mcfault
        # closed), now and then the line read as the reply: get() returns
        # None, set() raises pylibmc.ServerError('... SERVER ERROR, go
        # away ...').
        try:
            got = c.get('k')
        except pylibmc.ConnectionError as e:
            self.assertRegex(str(e), CONNECT_RESET_RE)
        else:
            self.assertIsNone(got)
        with self.assertRaises((pylibmc.ServerError,
                                pylibmc.ConnectionError)):
            c.set('k2', b'v')
        self.assertIsNone(get_value(self.up.port, 'k2'))

    def test_hang_times_out(self):
        c = self.client(self.mcfault('action: hang'), _poll_timeout=500)
        t0 = time.monotonic()
        with self.assertRaises(pylibmc.Error) as cm:
            c.get('k')
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        self.assertIn(TIMEOUT_TEXT, str(cm.exception))

    def test_delay_answers_late(self):
        c = self.client(self.mcfault('action: delay, delay: 600ms'))
        t0 = time.monotonic()
        self.assertEqual(c.get('k'), b'val')
        self.assertGreaterEqual(time.monotonic() - t0, 0.55)
        t0 = time.monotonic()
        self.assertEqual(c.get('k'), b'val')
        self.assertTrue(c.set('k3', b'v'))

    def test_targeting_spares_other_clients(self):
        # A connect rule for 127.0.0.2 only: pylibmc (from 127.0.0.1) is
        # served, the harness probe too.
        cfg = faultkit.write_file(
            self, 'rules:\n  - {command: connect, client: 127.0.0.2, '
            'action: drop, close: reset}\n')
        m = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        c = self.client(m)
        self.assertEqual(c.get('k'), b'val')


if __name__ == '__main__':
    unittest.main()

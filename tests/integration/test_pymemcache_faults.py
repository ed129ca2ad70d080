# pymemcache as the application behind mcfault with fault rules: what a
# real client library makes of each injected fault (exceptions, return
# values, reconnects), and that the memcached behind mcfault holds what the
# fault says it should (read directly, not through mcfault).
# PymemcacheFaultsTest: error, delay, drop, miss, hang, forward: true.
# PymemcacheNewFaultsTest: drop with close: reset, throttle, slice,
# truncate, corrupt, evict, min_size, client: targeting and command:
# connect rules (the client's source address picked through pymemcache's
# socket_module argument). docs/faults.md quotes these outcomes.

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put  # noqa: E402

try:
    from pymemcache.client.base import Client
    from pymemcache import exceptions as pmexc
    from pymemcache import serde as pmserde
except ImportError:
    # CMake may pick a Python without Debian's python3-pymemcache; the
    # package is pure Python, so use it from there.
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        from pymemcache.client.base import Client
        from pymemcache import exceptions as pmexc
        from pymemcache import serde as pmserde
    except ImportError:
        Client = None

SLOW = 0.6  # the delay of the slow/late rules

RULES = r'''
rules:
  - {name: oom, command: [set, add, replace, cas], key: "pm:oom:*",
     action: error, message: SERVER_ERROR out of memory storing object}
  - {name: slow, key: "pm:slow:*", action: delay, delay: 600ms}
  - {name: drop, key: "pm:drop:*", action: drop}
  - {name: miss, key: "pm:miss:*", action: miss}
  - {name: stale, command: cas, key: "pm:cas:*", action: error,
     message: EXISTS}
  - {name: gone, command: cas, key: "pm:gone:*", action: error,
     message: NOT_FOUND}
  - {name: lock, command: add, key: "pm:lock:*", action: error,
     message: NOT_STORED}
  - {name: nf, command: [incr, decr, delete, touch], key: "pm:nf:*",
     action: error, message: NOT_FOUND}
  - {name: hang, key: "pm:hang:*", action: hang}
  - {name: lost, command: set, key: "pm:lost:*", action: error,
     message: SERVER_ERROR lost, forward: true}
  - {name: lostack, command: set, key: "pm:lostack:*", action: drop,
     forward: true}
  - {name: late, command: set, key: "pm:late:*", action: delay, delay: 600ms,
     forward: true}
'''

TIMEOUT_ERRORS = (socket.timeout, TimeoutError)


@unittest.skipIf(Client is None, 'pymemcache is not installed')
class PymemcacheFaultsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_rules(cls, RULES)

    def client(self, timeout=3.0):
        c = Client((harness.HOST, self.mcfault.port), connect_timeout=3.0,
                   timeout=timeout, default_noreply=False)
        self.addCleanup(c.close)
        return c

    def assert_works(self, c, key='pm:ok:check'):
        """The client (possibly reconnecting) still gets right answers."""
        val = ('fine-%s' % key).encode()
        self.assertTrue(c.set(key, val))
        self.assertEqual(c.get(key), val)
        self.assertEqual(c.get_many([key, 'pm:ok:absent']), {key: val})

    def test_oom_on_set_raises_server_error(self):
        c = self.client()
        with self.assertRaises(pmexc.MemcacheServerError) as cm:
            c.set('pm:oom:1', b'value')
        self.assertIn(b'out of memory storing object', cm.exception.args[0])
        self.assertIsNone(get_value(self.up.port, 'pm:oom:1'))
        self.assert_works(c)
        # noreply: memcached sends nothing on failure either; the next call
        # on the same connection must not read a stray error line.
        self.assertTrue(c.set('pm:oom:2', b'v', noreply=True))
        self.assertEqual(c.get('pm:ok:check'), b'fine-pm:ok:check')
        self.assertIsNone(get_value(self.up.port, 'pm:oom:2'))
        with self.assertRaises(pmexc.MemcacheServerError):
            c.add('pm:oom:3', b'v')

    def test_delay_past_timeout_raises_timeout_then_recovers(self):
        c = self.client(timeout=0.25)
        put(self.up.port, 'pm:slow:1', 'slowval')
        t0 = time.monotonic()
        with self.assertRaises(TIMEOUT_ERRORS):
            c.get('pm:slow:1')
        self.assertLess(time.monotonic() - t0, SLOW,
                        'the client timeout did not fire before the delay')
        # pymemcache closed the socket: the late reply cannot be read as
        # the answer to the next command.
        self.assert_works(c)
        # With a timeout longer than the delay the value comes, late.
        c2 = self.client(timeout=3.0)
        t0 = time.monotonic()
        self.assertEqual(c2.get('pm:slow:1'), b'slowval')
        self.assertGreaterEqual(time.monotonic() - t0, 0.8 * SLOW)

    def test_drop_raises_then_next_call_reconnects(self):
        c = self.client()
        put(self.up.port, 'pm:drop:1', 'x')
        self.assert_works(c)
        with self.assertRaises((pmexc.MemcacheUnexpectedCloseError,
                                ConnectionError)):
            c.get('pm:drop:1')
        self.assert_works(c, 'pm:ok:after-drop')
        with self.assertRaises((pmexc.MemcacheUnexpectedCloseError,
                                ConnectionError)):
            c.set('pm:drop:2', b'y')
        self.assertIsNone(get_value(self.up.port, 'pm:drop:2'))
        self.assert_works(c, 'pm:ok:after-drop2')

    def test_miss_returns_none(self):
        c = self.client()
        self.assertTrue(c.set('pm:miss:1', b'stored'))  # set: no retrieval
        self.assertEqual(get_value(self.up.port, 'pm:miss:1'), b'stored')
        self.assertIsNone(c.get('pm:miss:1'))
        self.assertEqual(c.get('pm:miss:1', default=b'dflt'), b'dflt')
        self.assertTrue(c.set('pm:ok:m', b'here'))
        self.assertEqual(c.get_many(['pm:ok:m', 'pm:miss:1']),
                         {'pm:ok:m': b'here'})
        self.assertEqual(c.gets('pm:miss:1'), (None, None))
        v, cas = c.gets_many(['pm:miss:1', 'pm:ok:m'])['pm:ok:m']
        self.assertEqual(v, b'here')
        self.assertEqual(get_value(self.up.port, 'pm:miss:1'), b'stored')

    def test_cas_exists_returns_false(self):
        c = self.client()
        self.assertTrue(c.set('pm:cas:1', b'orig'))
        v, cas = c.gets('pm:cas:1')
        self.assertEqual(v, b'orig')
        self.assertIs(c.cas('pm:cas:1', b'new', cas), False)
        self.assertEqual(get_value(self.up.port, 'pm:cas:1'), b'orig')
        # NOT_FOUND: cas returns None.
        self.assertTrue(c.set('pm:gone:1', b'orig'))
        v, cas = c.gets('pm:gone:1')
        self.assertIsNone(c.cas('pm:gone:1', b'new', cas))
        self.assertEqual(get_value(self.up.port, 'pm:gone:1'), b'orig')
        # Without a rule the same sequence succeeds.
        self.assertTrue(c.set('pm:ok:cas', b'orig'))
        v, cas = c.gets('pm:ok:cas')
        self.assertIs(c.cas('pm:ok:cas', b'new', cas), True)
        self.assertEqual(get_value(self.up.port, 'pm:ok:cas'), b'new')

    def test_not_stored_and_not_found(self):
        c = self.client()
        self.assertIs(c.add('pm:lock:1', b'me'), False)
        self.assertIsNone(get_value(self.up.port, 'pm:lock:1'))
        self.assertTrue(c.set('pm:nf:1', b'5'))
        self.assertIsNone(c.incr('pm:nf:1', 1))
        self.assertIsNone(c.decr('pm:nf:1', 1))
        self.assertIs(c.delete('pm:nf:1'), False)
        self.assertIs(c.touch('pm:nf:1', 100), False)
        self.assertEqual(get_value(self.up.port, 'pm:nf:1'), b'5')
        self.assertEqual(c.get('pm:nf:1'), b'5')

    def test_hang_times_out_then_recovers(self):
        c = self.client(timeout=0.3)
        with self.assertRaises(TIMEOUT_ERRORS):
            c.get('pm:hang:1')
        self.assert_works(c, 'pm:ok:after-hang')

    def test_forward_error_raises_but_write_landed(self):
        c = self.client()
        with self.assertRaises(pmexc.MemcacheServerError) as cm:
            c.set('pm:lost:1', b'landed')
        self.assertEqual(cm.exception.args[0], b'lost')
        self.assertEqual(get_value(self.up.port, 'pm:lost:1'), b'landed')
        self.assertEqual(c.get('pm:lost:1'), b'landed')

    def test_forward_drop_raises_but_write_landed(self):
        c = self.client()
        with self.assertRaises((pmexc.MemcacheUnexpectedCloseError,
                                ConnectionError)):
            c.set('pm:lostack:1', b'landed')
        self.assertEqual(get_value(self.up.port, 'pm:lostack:1'), b'landed')
        self.assertEqual(c.get('pm:lostack:1'), b'landed')

    def test_forward_delay_past_timeout_write_landed(self):
        c = self.client(timeout=0.25)
        with self.assertRaises(TIMEOUT_ERRORS):
            c.set('pm:late:1', b'landed')
        # Stored at once, although the reply is held.
        self.assertEqual(get_value(self.up.port, 'pm:late:1'), b'landed')
        self.assert_works(c, 'pm:ok:after-late')



# --------------------------------------------------------------------------
# The actions and targeting keys of issue 9.

NEW_RULES = r"""
seed: 11
rules:
""" + faultkit.newer_action_rules('pn') + r"""
  - {name: partition, client: 127.0.0.2, key: "pn:part:*", action: drop}
  - {name: c-drop, command: connect, client: 127.0.0.3, action: drop}
  - {name: c-reset, command: connect, client: 127.0.0.4, action: drop,
     close: reset}
  - {name: c-error, command: connect, client: 127.0.0.5, action: error}
  - {name: c-hang, command: connect, client: 127.0.0.6, action: hang}
  - {name: c-delay, command: connect, client: 127.0.0.7, action: delay,
     delay: 600ms}
  - {name: c-error-msg, command: connect, client: 127.0.0.9, action: error,
     message: SERVER_ERROR go away}
"""

CLOSED = (pmexc.MemcacheUnexpectedCloseError,) if Client is not None else ()


class SourceBound:
    """A socket module for pymemcache's socket_module argument whose
    sockets connect from a chosen source address."""

    def __init__(self, src):
        self.src = src

    def __getattr__(self, name):
        return getattr(socket, name)

    def socket(self, *args, **kw):
        s = socket.socket(*args, **kw)
        s.bind((self.src, 0))
        return s


def bit_diff(a, b):
    """Number of differing bits between two equally long byte strings."""
    assert len(a) == len(b), (len(a), len(b))
    return sum(bin(x ^ y).count('1') for x, y in zip(a, b))


@unittest.skipIf(Client is None, 'pymemcache is not installed')
class PymemcacheNewFaultsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_rules(cls, NEW_RULES)

    def client(self, timeout=3.0, src=None, **kw):
        if src is not None:
            kw['socket_module'] = SourceBound(src)
        c = Client((harness.HOST, self.mcfault.port), connect_timeout=3.0,
                   timeout=timeout, default_noreply=False, **kw)
        self.addCleanup(c.close)
        return c

    assert_works = PymemcacheFaultsTest.assert_works

    def test_drop_reset_raises_connection_reset_error(self):
        c = self.client()
        put(self.up.port, 'pn:rst:1', 'x')
        self.assert_works(c)
        with self.assertRaises(ConnectionResetError):
            c.get('pn:rst:1')
        self.assert_works(c, 'pn:ok:after-reset')
        with self.assertRaises(ConnectionResetError):
            c.set('pn:rst:2', b'y')
        self.assertIsNone(get_value(self.up.port, 'pn:rst:2'))
        # forward: true: the write lands, then the reset.
        with self.assertRaises(ConnectionResetError):
            c.set('pn:rstf:1', b'landed')
        self.assertEqual(get_value(self.up.port, 'pn:rstf:1'), b'landed')
        self.assertEqual(c.get('pn:rstf:1'), b'landed')

    def test_throttle_is_slow_and_correct(self):
        c = self.client(timeout=10)
        value = os.urandom(100000)
        put(self.up.port, 'pn:thr:1', value)
        t0 = time.monotonic()
        self.assertEqual(c.get('pn:thr:1'), value)
        took = time.monotonic() - t0
        # 100000 bytes at 200 KiB/s: 0.49 s (lower bound only).
        self.assertGreaterEqual(took, 0.35)
        self.assertTrue(c.set('pn:ok:thr', b'beside'))
        self.assertEqual(c.get_many(['pn:ok:thr', 'pn:thr:1']),
                         {'pn:ok:thr': b'beside', 'pn:thr:1': value})
        # A timeout below the whole reply's time: pymemcache reads in
        # pieces and each recv gets bytes in time, so it still succeeds.
        c2 = self.client(timeout=0.25)
        self.assertEqual(c2.get('pn:thr:1'), value)

    def test_slice_is_correct(self):
        c = self.client()
        value = os.urandom(1000)
        self.assertTrue(c.set('pn:sl:1', value))
        self.assertEqual(c.get('pn:sl:1'), value)
        v, cas = c.gets('pn:sl:1')
        self.assertEqual(v, value)
        self.assertIs(c.cas('pn:sl:1', b'new', cas), True)
        self.assertEqual(get_value(self.up.port, 'pn:sl:1'), b'new')
        self.assertTrue(c.set('pn:sl:n', b'41'))
        self.assertEqual(c.incr('pn:sl:n', 1), 42)
        self.assertEqual(c.get_many(['pn:sl:1', 'pn:sl:n', 'pn:ok:none']),
                         {'pn:sl:1': b'new', 'pn:sl:n': b'42'})

    def test_truncate_raises_unexpected_close(self):
        c = self.client()
        put(self.up.port, 'pn:cut:1', 'v' * 100)
        with self.assertRaises(pmexc.MemcacheUnexpectedCloseError):
            c.get('pn:cut:1')
        self.assert_works(c, 'pn:ok:after-cut')
        with self.assertRaises(pmexc.MemcacheUnexpectedCloseError):
            c.gets('pn:cut:1')
        with self.assertRaises(pmexc.MemcacheUnexpectedCloseError):
            c.get_many(['pn:ok:after-cut', 'pn:cut:1'])
        self.assert_works(c, 'pn:ok:after-cut2')
        # Truncating a write's reply: STORED is cut, the write landed.
        with self.assertRaises(pmexc.MemcacheUnexpectedCloseError):
            c.set('pn:cutw:1', b'landed')
        self.assertEqual(get_value(self.up.port, 'pn:cutw:1'), b'landed')
        # close: reset.
        put(self.up.port, 'pn:cutr:1', 'r' * 100)
        with self.assertRaises(ConnectionResetError):
            c.get('pn:cutr:1')
        self.assert_works(c, 'pn:ok:after-cutr')

    def test_corrupt_read_returns_wrong_bytes_silently(self):
        c = self.client()
        good = os.urandom(100)
        put(self.up.port, 'pn:rot:1', good)
        put(self.up.port, 'pn:ok:rot', good)
        bad = c.get('pn:rot:1')
        self.assertIsInstance(bad, bytes)
        self.assertEqual(bit_diff(good, bad), 3,
                         'corrupt flips: 3 on get: %r vs %r' % (good, bad))
        # gets: the value is bad, the cas token good.
        bad2, cas = c.gets('pn:rot:1')
        self.assertEqual(bit_diff(good, bad2), 3)
        self.assertIs(c.cas('pn:rot:1', b'replaced', cas), True)
        self.assertEqual(get_value(self.up.port, 'pn:rot:1'), b'replaced')
        put(self.up.port, 'pn:rot:1', good)
        # Multi-key: only the matching key's value.
        got = c.get_many(['pn:ok:rot', 'pn:rot:1'])
        self.assertEqual(got['pn:ok:rot'], good)
        self.assertEqual(bit_diff(good, got['pn:rot:1']), 3)
        # memcached still holds the good value.
        self.assertEqual(get_value(self.up.port, 'pn:rot:1'), good)
        self.assert_works(c, 'pn:ok:after-rot')

    def test_corrupt_write_stores_wrong_bytes(self):
        c = self.client()
        good = os.urandom(200)
        self.assertIs(c.set('pn:rotw:1', good), True)
        stored = get_value(self.up.port, 'pn:rotw:1')
        self.assertEqual(bit_diff(good, stored), 2)
        self.assertEqual(c.get('pn:rotw:1'), stored)
        # With pymemcache's pickle serde: text and integers come back
        # wrong or do not decode; a pickle that does not load comes back
        # as None (the serde logs and swallows the error).
        p = self.client(serde=pmserde.pickle_serde)
        for key, val in (('pn:rotw:s', 'hello world'),
                         ('pn:rotw:i', 123456789),
                         ('pn:rotw:p', {'a': 1, 'b': [1, 2, 3]})):
            self.assertIs(p.set(key, val), True)
            try:
                back = p.get(key)
            except (ValueError, UnicodeDecodeError) as e:
                back = e
            harness.log('pickle serde %s: %r -> %r' % (key, val, back))
            self.assertNotEqual(back, val, key)

    def test_evict_makes_real_misses(self):
        c = self.client()
        put(self.up.port, 'pn:ev:1', 'here')
        put(self.up.port, 'pn:ok:ev', 'beside')
        self.assertIsNone(c.get('pn:ev:1'))
        self.assertIsNone(get_value(self.up.port, 'pn:ev:1'))
        put(self.up.port, 'pn:ev:2', 'here')
        self.assertEqual(c.get_many(['pn:ok:ev', 'pn:ev:2']),
                         {'pn:ok:ev': b'beside'})
        self.assertIsNone(get_value(self.up.port, 'pn:ev:2'))
        # Writes still store (the key is evicted first).
        self.assertIs(c.set('pn:ev:3', b'new'), True)
        self.assertEqual(get_value(self.up.port, 'pn:ev:3'), b'new')
        # add succeeds on a key that existed; delete and incr find none.
        self.assertIs(c.add('pn:ev:3', b'added'), True)
        self.assertEqual(get_value(self.up.port, 'pn:ev:3'), b'added')
        self.assertIs(c.delete('pn:ev:3'), False)
        put(self.up.port, 'pn:ev:n', '5')
        self.assertIsNone(c.incr('pn:ev:n', 1))
        self.assertIsNone(get_value(self.up.port, 'pn:ev:n'))

    def test_big_write_refused(self):
        c = self.client(timeout=10)
        with self.assertRaises(pmexc.MemcacheServerError) as cm:
            c.set('pn:big:1', b'x' * (600 * 1024))
        self.assertEqual(cm.exception.args[0], b'object too large for cache')
        self.assertIsNone(get_value(self.up.port, 'pn:big:1'))
        self.assertIs(c.set('pn:big:2', b'x' * 1024), True)
        self.assertEqual(c.get('pn:big:2'), b'x' * 1024)
        # With noreply (pymemcache's default) the refusal is silent.
        self.assertIs(c.set('pn:big:3', b'x' * (600 * 1024), noreply=True),
                      True)
        self.assertEqual(c.get('pn:big:2'), b'x' * 1024)
        self.assertIsNone(get_value(self.up.port, 'pn:big:3'))

    def test_partitioned_client(self):
        put(self.up.port, 'pn:part:1', 'v')
        far = self.client(src='127.0.0.2')
        near = self.client()
        for _ in range(2):
            with self.assertRaises(pmexc.MemcacheUnexpectedCloseError):
                far.get('pn:part:1')
            self.assertEqual(near.get('pn:part:1'), b'v')
        # Other keys work for the partitioned client.
        self.assert_works(far, 'pn:ok:far')

    def test_connect_drop(self):
        put(self.up.port, 'pn:k', 'v')
        c = self.client(src='127.0.0.3')
        for _ in range(2):
            # Usually EOF; when the request reached the closed socket
            # first, the kernel answers it with a reset.
            with self.assertRaises(CLOSED + (ConnectionResetError,)):
                c.get('pn:k')
        c = self.client(src='127.0.0.4')
        for _ in range(2):
            with self.assertRaises(ConnectionResetError):
                c.get('pn:k')
        self.assertEqual(self.client(src='127.0.0.8').get('pn:k'), b'v')

    def test_connect_error(self):
        c = self.client(src='127.0.0.5')
        with self.assertRaises(pmexc.MemcacheUnknownCommandError) as cm:
            c.get('pn:k')
        self.assertEqual(cm.exception.args[0], b'get')
        with self.assertRaises(pmexc.MemcacheUnknownCommandError) as cm:
            c.set('pn:k2', b'v')
        self.assertEqual(cm.exception.args[0], b'set')
        self.assertIsNone(get_value(self.up.port, 'pn:k2'))
        c = self.client(src='127.0.0.9')
        with self.assertRaises(pmexc.MemcacheServerError) as cm:
            c.get('pn:k')
        self.assertEqual(cm.exception.args[0], b'go away')

    def test_connect_hang_times_out(self):
        c = self.client(timeout=0.5, src='127.0.0.6')
        t0 = time.monotonic()
        with self.assertRaises(TIMEOUT_ERRORS):
            c.get('pn:k')
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)

    def test_connect_delay_answers_late(self):
        put(self.up.port, 'pn:k', 'v')
        c = self.client(src='127.0.0.7')
        t0 = time.monotonic()
        self.assertEqual(c.get('pn:k'), b'v')
        self.assertGreaterEqual(time.monotonic() - t0, 0.55)
        # Only the connection waits; its later commands do not.
        self.assertEqual(c.get('pn:k'), b'v')
        # Past the client's timeout: a timeout, then the same again.
        c2 = self.client(timeout=0.3, src='127.0.0.7')
        with self.assertRaises(TIMEOUT_ERRORS):
            c2.get('pn:k')


if __name__ == '__main__':
    unittest.main()

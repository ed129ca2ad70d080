# pymemcache as the application behind mcfault with fault rules: what a
# real client library makes of each injected fault (exceptions, return
# values, reconnects), and that the memcached behind mcfault holds what the
# fault says it should (read directly, not through mcfault).

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
except ImportError:
    # CMake may pick a Python without Debian's python3-pymemcache; the
    # package is pure Python, so use it from there.
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        from pymemcache.client.base import Client
        from pymemcache import exceptions as pmexc
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
        cls.up = harness.start_memcached_for_class(cls)
        cls.cfg = faultkit.write_class_file(cls, RULES)
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.up.port, ['-c', cls.cfg])

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


if __name__ == '__main__':
    unittest.main()

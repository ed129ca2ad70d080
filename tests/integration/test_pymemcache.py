# A real client library (pymemcache) through mcfault: every call must give
# the same result as against memcached directly (both fresh, so CAS ids
# match).

import hashlib
import sys
import unittest

import harness

try:
    from pymemcache.client.base import Client
except ImportError:
    # CMake may pick a Python (pyenv) without Debian's python3-pymemcache;
    # the package is pure Python, so use it from there.
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        from pymemcache.client.base import Client
    except ImportError:
        Client = None


def scenario(port):
    """Runs a fixed sequence of pymemcache calls; returns [(step, result)]
    where result is the return value or the exception's type and text."""
    c = Client((harness.HOST, port), connect_timeout=5, timeout=15)
    cu = Client((harness.HOST, port), connect_timeout=5, timeout=15,
                allow_unicode_keys=True)
    out = []
    state = {}

    def rec(step, f):
        try:
            v = f()
        except Exception as e:  # the exception is the result
            v = ('raised', type(e).__name__, str(e))
        out.append((step, v))
        return v

    big = bytes(range(256)) * 2000                     # 500 KB

    def digest(v):
        return None if v is None else (len(v), hashlib.sha1(v).hexdigest())

    rec('set default noreply', lambda: c.set('a', b'1'))
    rec('get', lambda: c.get('a'))
    rec('get missing', lambda: c.get('missing'))
    rec('noreply sets', lambda: [c.set('n%d' % i, b'v%d' % i)
                                 for i in range(300)])
    rec('get_many', lambda: c.get_many(['n%d' % i for i in range(0, 320, 3)]))
    rec('set_many', lambda: c.set_many({'m%d' % i: b'x' * i
                                        for i in range(50)}, noreply=False))
    rec('gets_many', lambda: c.gets_many(['m1', 'm2', 'nope', 'm49']))
    rec('set reply', lambda: c.set('b', b'x', noreply=False))
    rec('add existing', lambda: c.add('b', b'y', noreply=False))
    rec('add new', lambda: c.add('c', b'y', noreply=False))
    rec('replace', lambda: c.replace('b', b'r', noreply=False))
    rec('replace missing', lambda: c.replace('zz', b'r', noreply=False))
    rec('append', lambda: c.append('b', b'>>', noreply=False))
    rec('prepend', lambda: c.prepend('b', b'<<', noreply=False))
    rec('get b', lambda: c.get('b'))
    g = rec('gets', lambda: c.gets('b'))
    state['cas'] = g[1] if isinstance(g, tuple) and len(g) == 2 else 0
    rec('cas ok', lambda: c.cas('b', b'z', state['cas'], noreply=False))
    rec('cas stale', lambda: c.cas('b', b'w', state['cas'], noreply=False))
    rec('cas missing', lambda: c.cas('nokey', b'w', 1, noreply=False))
    rec('incr missing', lambda: c.incr('cnt', 5))
    rec('set cnt', lambda: c.set('cnt', b'10', noreply=False))
    rec('incr', lambda: c.incr('cnt', 5))
    rec('decr below 0', lambda: c.decr('cnt', 20))
    # (Stored numbers are only read back when no decrement shortened them:
    # memcached pads in place or makes a new item depending on who else
    # holds a reference to the item at that moment.)
    rec('set cnt again', lambda: c.set('cnt', b'100', noreply=False))
    rec('incr wraps', lambda: c.incr('cnt', 2 ** 64 - 1))
    rec('incr non-numeric', lambda: c.incr('b', 1))
    rec('incr noreply', lambda: c.incr('cnt', 1, noreply=True))
    rec('get cnt', lambda: c.get('cnt'))
    rec('delete', lambda: c.delete('a', noreply=False))
    rec('delete again', lambda: c.delete('a', noreply=False))
    rec('delete_many', lambda: c.delete_many(['n1', 'n2', 'nope'],
                                             noreply=False))
    rec('touch', lambda: c.touch('b', 3600, noreply=False))
    rec('touch missing', lambda: c.touch('nope', 3600, noreply=False))
    rec('flags', lambda: (c.set('f', b'v', noreply=False), c.get('f')))
    rec('large set', lambda: c.set('big', big, noreply=False))
    rec('large get', lambda: digest(c.get('big')))
    rec('large noreply then get', lambda: (c.set('big2', big[::-1]),
                                           digest(c.get('big2'))))
    rec('too large', lambda: c.set('huge', b'h' * 2000000, noreply=False))
    rec('too large noreply', lambda: c.set('huge', b'h' * 2000000))
    rec('after too large', lambda: c.get_many(['b', 'huge', 'cnt']))
    rec('binary key', lambda: c.set(b'bin\x00key', b'v', noreply=False))
    rec('space key', lambda: c.get('has space'))
    rec('newline key', lambda: c.get('new\nline'))
    rec('long key', lambda: c.get('k' * 251))
    rec('max key', lambda: (c.set('k' * 250, b'ok', noreply=False),
                            c.get('k' * 250)))
    rec('unicode key refused', lambda: c.get('ключ'))
    rec('unicode key allowed', lambda: (cu.set('ключ', b'u',
                                               noreply=False),
                                        cu.get('ключ')))
    rec('value with protocol text', lambda: (
        c.set('p', b'VALUE x 0 5\r\nEND\r\n', noreply=False), c.get('p')))
    rec('empty value', lambda: (c.set('e', b'', noreply=False), c.get('e')))
    rec('version', lambda: c.version())
    rec('stats keys', lambda: sorted(c.stats().keys()))
    rec('quit', lambda: c.quit())
    rec('get after quit', lambda: c.get('b'))
    rec('flush_all', lambda: c.flush_all(noreply=False))
    rec('get after flush', lambda: c.get_many(['b', 'cnt', 'big']))
    c.close()
    cu.close()
    return out


class PymemcacheTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if Client is None:
            raise RuntimeError('pymemcache is not importable (install '
                               'python3-pymemcache)')
        cls.upstream = harness.start_memcached_for_class(cls)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.upstream.port)

    def test_same_results_as_memcached(self):
        direct = harness.start_memcached_for_test(self)
        want = scenario(direct.port)
        got = scenario(self.mcfault.port)
        self.assertEqual(len(want), len(got))
        # Sanity: the scenario exercises what it says.
        d = dict(want)
        self.assertEqual(d['get'], b'1')
        self.assertEqual(d['cas ok'], True)
        self.assertEqual(d['incr'], 15)
        self.assertEqual(d['get cnt'], b'100')
        self.assertEqual(d['too large'][:2], ('raised', 'MemcacheServerError'))
        self.assertEqual(d['binary key'][:2],
                         ('raised', 'MemcacheIllegalInputError'))
        for (step, w), (step2, g) in zip(want, got):
            self.assertEqual(step, step2)
            self.assertEqual(g, w, 'step %r: direct %r, through mcfault %r'
                             % (step, w, g))


if __name__ == '__main__':
    unittest.main()

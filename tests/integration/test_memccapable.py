# memccapable (libmemcached-tools) protocol conformance run, against
# memcached directly for reference and through mcfault.

import re
import subprocess
import unittest

import harness

MEMCCAPABLE = harness.which('memccapable')


class MemccapableTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if MEMCCAPABLE is None:
            raise RuntimeError('memccapable not found (libmemcached-tools)')
        cls.mc = harness.start_memcached_for_class(cls)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.mc.port)

    def run_capable(self, port, mode):
        try:
            r = subprocess.run([MEMCCAPABLE, '-h', harness.HOST, '-p',
                                str(port), '-t', '5', mode],
                               capture_output=True, timeout=120)
        except subprocess.TimeoutExpired as e:
            self.fail('memccapable %s on port %d hung; output so far: %r'
                      % (mode, port, e.stdout))
        return r.returncode, r.stdout.decode('utf-8', 'replace') + \
            r.stderr.decode('utf-8', 'replace')

    def check(self, mode):
        rc, out = self.run_capable(self.mc.port, mode)
        self.assertEqual(rc, 0, 'precondition: memccapable %s against '
                         'memcached itself fails:\n%s' % (mode, out))
        ref_tests = re.findall(r'^(\S+ .*?)\s+\[pass\]', out, re.M)
        self.assertGreater(len(ref_tests), 10, out)

        rc, out = self.run_capable(self.mcfault.port, mode)
        failed = [l for l in out.splitlines()
                  if '[pass]' not in l and l.strip()
                  and l.strip() != 'All tests passed']
        self.assertEqual(rc, 0, 'memccapable %s through mcfault: exit %d\n%s'
                         % (mode, rc, out))
        self.assertIn('All tests passed', out)
        self.assertEqual(failed, [], out)
        self.assertNotRegex(out, r'(?i)\[fail\]')
        got_tests = re.findall(r'^(\S+ .*?)\s+\[pass\]', out, re.M)
        self.assertEqual(got_tests, ref_tests,
                         'not the same tests passed as against memcached')

    def test_ascii(self):
        self.check('-a')

    def test_binary_through_tunnel(self):
        # First byte 0x80 turns a connection into a raw tunnel.
        self.check('-b')


if __name__ == '__main__':
    unittest.main()

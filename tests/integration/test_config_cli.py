# The rule file on the command line: --check-config (exit 0 / 1, every
# problem as FILE:LINE:COL: message), refusing to start with a bad -c file,
# several proxies from one file (one listener each, rules only where they
# are written), and -l/-u overriding a single proxy's addresses.

import glob
import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put, talk  # noqa: E402

CONF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        '..', '..', 'conf')


def run_mcfault(args, timeout=20):
    env = dict(os.environ)
    env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
    return subprocess.run([harness.MCFAULT_BIN] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=env)


def assert_clean(tc, proc):
    for m in harness.SANITIZER_MARKERS:
        tc.assertNotIn(m, proc.stderr, proc.stderr[-3000:])


# (name, file text, [(line, col, regex of the message)]): each file has
# exactly these problems, in this order.
BAD_FILES = [
    ('unknown-key', '''rules:
  - name: r1
    command: get
    kye: "x*"
    action: drop
''', [(4, 5, r"unknown key 'kye' in rule \(known: .*\bkey\b.*\)")]),
    ('unknown-top-key', '''rule:
  - {action: drop}
''', [(1, 1, r"unknown key 'rule' at top level")]),
    ('bad-glob', '''rules:
  - name: r1
    key: "user:[abc"
    action: drop
  - name: r2
    key: "[z-a]"
    action: drop
  - name: r3
    command: "get\\\\"
    action: drop
''', [(3, 10, r"bad glob in 'key'"), (6, 10, r"bad glob in 'key'"),
      (9, 14, r"bad glob in 'command'")]),
    ('bad-duration', '''rules:
  - name: r1
    action: delay
    delay: 500
  - name: r2
    action: delay
    delay: -1s
  - name: r3
    action: delay
    delay: 1.5us
  - name: r4
    action: delay
    delay: 1s
    jitter: 2s
  - name: r5
    action: delay
    delay: 3601s
''', [(4, 12, r"bad duration '500'"), (7, 12, r"bad duration '-1s'"),
      (10, 12, r"bad duration '1\.5us'"),
      (14, 13, r"'jitter' \(2s\) must not exceed 'delay' \(1s\)"),
      (17, 12, r"'delay'.*3600s")]),
    ('probability', '''rules:
  - name: r1
    action: drop
    probability: 1.5
  - name: r2
    action: drop
    probability: 101%
  - name: r3
    action: drop
    probability: -0.1
''', [(4, 18, r"'probability' must be between 0 and 1 or a percentage, "
              r"got '1\.5'"),
      (7, 18, r"'probability' .*got '101%'"),
      (10, 18, r"'probability' .*got '-0\.1'")]),
    ('duplicate-name', '''rules:
  - name: same
    action: drop
  - name: other
    action: hang
  - name: same
    action: hang
''', [(6, 11, r"duplicate rule name 'same' \(first at line 2\)")]),
    ('missing-message', '''rules:
  - name: r1
    key: "a*"
    action: error
  - name: r2
    action: delay
''', [(2, 5, r"rule 'r1': action error needs 'message'"),
      (5, 5, r"rule 'r2': action delay needs 'delay'")]),
    ('misc', '''rules:
  - name: r1
    command: sett
    action: error
    message: SERVER_ERROR x
  - name: r2
    action: explode
  - name: r3
    action: miss
    forward: true
  - name: r4
    action: drop
    message: SERVER_ERROR y
  - name: r5
    action: drop
    forward: yes
  - name: r6
    command: set
    action: miss
  - name: r7
    action: error
    message: "two\\nlines"
  - name: r8
    action: drop
    after: -1
  - {action: drop, limit: 0x10}
''', [(3, 14, r"unknown command 'sett' in 'command'"),
      (7, 13, r"'action' must be one of error, delay, drop, hang, miss, "
              r"throttle, slice, truncate, corrupt, evict, got 'explode'"),
      (10, 5, r"'forward' cannot be used with action miss"),
      (13, 5, r"'message' does not apply to action drop \(only to error\)"),
      (16, 14, r"'forward' must be true or false, got 'yes'"),
      (18, 14, r"action miss only applies to retrievals"),
      (22, 14, r"'message' must be a single line"),
      (25, 12, r"'after' must be a non-negative integer, got '-1'"),
      (26, 27, r"'limit'")]),
    ('proxies', '''listen: 127.0.0.1:1
proxies:
  - {name: a, listen: "127.0.0.1:7", upstream: "127.0.0.1:8"}
  - {name: a, listen: "127.0.0.1:7"}
''', [(1, 1, r"'listen' and 'proxies' cannot be combined"),
      (4, 5, r"proxy 'a': missing 'upstream'"),
      (4, 12, r"duplicate proxy name 'a' \(first at line 3\)"),
      (4, 23, r"duplicate listen address '127\.0\.0\.1:7' "
              r"\(first at line 3\)")]),
    ('alias', '''rules:
  - &r {action: drop}
  - *r
''', [(3, 5, r"aliases are not supported")]),
]


class CheckConfigTest(unittest.TestCase):

    def test_good_files(self):
        cases = [
            ('', 'ok, 1 proxy, 0 rules'),
            ('# only a comment\n', 'ok, 1 proxy, 0 rules'),
            ('rules:\n', 'ok, 1 proxy, 0 rules'),
            ('''listen: 127.0.0.1:22122
upstream: 127.0.0.1:11211
seed: 18446744073709551615
admin: 127.0.0.1:22199
rules:
  - name: oom
    command: [set, "add", GET, "m?", "*"]
    key: ["session:*", "[a-z]\\\\*", "[!0-9]x"]
    action: error
    message: "SERVER_ERROR out of memory storing object"
    probability: 25%
    after: 10
    limit: 3
    forward: True
    enabled: FALSE
  - {name: slow, command: mg, action: delay, delay: 1.5s, jitter: 0.5ms,
     probability: .5}
  - {action: drop, key: "*:x"}
  - {action: hang, forward: false}
  - {action: miss, command: [get, gets, gat, gats, mg]}
''', 'ok, 1 proxy, 5 rules'),
            ('''seed: 7
proxies:
  - name: sessions
    listen: 127.0.0.1:22122
    upstream: 127.0.0.1:11211
    rules:
      - {action: delay, delay: 2s, key: "session:*"}
  - listen: 127.0.0.1:22123
    upstream: 127.0.0.1:11212
    rules:
      - {action: miss, command: [get, gets, mg], probability: 10%}
      - {action: drop}
''', 'ok, 2 proxies, 3 rules'),
        ]
        for text, want in cases:
            path = faultkit.write_file(self, text)
            p = run_mcfault(['--check-config', path])
            self.assertEqual((p.returncode, p.stdout.strip()),
                             (0, '%s: %s' % (path, want)),
                             'file:\n%s\nstderr: %s' % (text, p.stderr))
            assert_clean(self, p)

    def test_shipped_example_files_are_valid(self):
        files = sorted(glob.glob(os.path.join(CONF_DIR, '*.yaml')))
        if not files:
            self.skipTest('no conf/*.yaml')
        for f in files:
            p = run_mcfault(['--check-config', f])
            self.assertEqual(p.returncode, 0, '%s: %s' % (f, p.stderr))
            self.assertRegex(p.stdout, r'^%s: ok, 1 proxy, \d+ rules?\n$'
                             % re.escape(f))

    def test_bad_files_name_every_problem(self):
        for name, text, want in BAD_FILES:
            with self.subTest(name):
                path = faultkit.write_file(self, text, name + '.yaml')
                p = run_mcfault(['--check-config', path])
                assert_clean(self, p)
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertEqual(p.stdout, '')
                lines = p.stderr.splitlines()
                self.assertEqual(
                    len(lines), len(want),
                    '%s: want %d problems, got:\n%s'
                    % (name, len(want), p.stderr))
                for line, (ln, col, rx) in zip(lines, want):
                    prefix = '%s:%d:%d: ' % (path, ln, col)
                    self.assertTrue(line.startswith(prefix),
                                    '%s: want %r..., got %r'
                                    % (name, prefix, line))
                    self.assertRegex(line[len(prefix):], rx, name)

    def test_all_problems_of_one_file_reported(self):
        # The problems of several files above in one file: all reported,
        # in file order (the line numbers grow).
        text = '''rules:
  - name: a
    kye: x
    action: drop
  - name: b
    key: "[abc"
    action: drop
  - name: c
    action: delay
    delay: 500
  - name: d
    action: drop
    probability: 1.5
  - name: a
    action: drop
  - name: f
    action: error
'''
        path = faultkit.write_file(self, text)
        p = run_mcfault(['--check-config', path])
        self.assertEqual(p.returncode, 1)
        got = [tuple(int(x) for x in m) for m in
               re.findall(r'^%s:(\d+):(\d+): ' % re.escape(path), p.stderr,
                          re.M)]
        self.assertEqual(got, [(3, 5), (6, 10), (10, 12), (13, 18), (14, 11),
                               (16, 5)], p.stderr)

    def test_missing_file(self):
        path = os.path.join(os.path.dirname(faultkit.write_file(self, '')),
                            'nothere.yaml')
        p = run_mcfault(['--check-config', path])
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stderr.strip(),
                         '%s: No such file or directory' % path)


class StartTest(unittest.TestCase):

    def test_bad_config_refuses_to_start(self):
        path = faultkit.write_file(self, BAD_FILES[-3][1])  # 'misc'
        port = harness.free_port()
        p = run_mcfault(['-c', path, '-l', '%s:%d' % (harness.HOST, port),
                         '-u', '%s:%d' % (harness.HOST, harness.free_port())])
        self.assertEqual(p.returncode, 1, p.stderr)
        assert_clean(self, p)
        n = len(BAD_FILES[-3][2])
        self.assertEqual(
            len(re.findall(r'^%s:\d+:\d+: ' % re.escape(path), p.stderr,
                           re.M)), n, p.stderr)
        self.assertIn('%s: %d problems, not starting' % (path, n), p.stderr)
        self.assertFalse(harness.port_accepts(port))

    def test_missing_config_refuses_to_start(self):
        path = '/nonexistent/mcfault-rules.yaml'
        p = run_mcfault(['-c', path, '-l', '%s:%d' % (harness.HOST,
                                                      harness.free_port())])
        self.assertEqual(p.returncode, 1)
        self.assertIn('%s: No such file or directory' % path, p.stderr)

    def test_several_proxies_with_l_refused(self):
        path = faultkit.write_file(self, '''proxies:
  - {listen: "127.0.0.1:%d", upstream: "127.0.0.1:1"}
  - {listen: "127.0.0.1:%d", upstream: "127.0.0.1:1"}
''' % (harness.free_port(), harness.free_port()))
        p = run_mcfault(['-c', path, '-l', '127.0.0.1:%d'
                         % harness.free_port()])
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn('-l/-u apply to a single proxy', p.stderr)


class FileAddresses(harness.Mcfault):
    """mcfault started with only the given arguments: the addresses come
    from the rule file (or from args)."""

    def __init__(self, port, args):
        super().__init__(0, args, port=port)

    def command(self):
        return [harness.MCFAULT_BIN] + self.args


class MultiProxyTest(unittest.TestCase):

    def test_two_listeners_rules_only_on_one(self):
        up = harness.start_memcached_for_test(self)
        pa, pb = harness.free_port(), harness.free_port()
        cfg = faultkit.write_file(self, '''seed: 3
proxies:
  - name: faulty
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
    rules:
      - {name: boom, key: "x:*", action: error, message: SERVER_ERROR boom}
      - {name: gone, key: "m:*", action: miss}
  - name: clean
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
''' % (pa, up.port, pb, up.port))
        ev = os.path.join(os.path.dirname(cfg), 'events.jsonl')
        p = FileAddresses(pa, ['-c', cfg, '-v', '--event-log', ev])
        self.addCleanup(p.stop_and_check)
        p.start()
        harness.wait_port(pb, 10, p.proc, 'mcfault (second listener)')
        put(up.port, 'm:1', 'mval')
        req = b'set x:1 0 0 1\r\nv\r\nget m:1\r\nget x:1\r\nmn\r\n'
        got_a = talk(pa, req, b'MN\r\n').data
        self.assertEqual(got_a, b'SERVER_ERROR boom\r\nEND\r\n'
                         b'SERVER_ERROR boom\r\nMN\r\n')
        self.assertIsNone(get_value(up.port, 'x:1'))
        got_b = talk(pb, req, b'MN\r\n').data
        self.assertEqual(got_b, b'STORED\r\nVALUE m:1 0 4\r\nmval\r\nEND\r\n'
                         b'VALUE x:1 0 1\r\nv\r\nEND\r\nMN\r\n')
        # Same memcached behind both: what clean stored, faulty reads.
        self.assertEqual(talk(pa, b'get y\r\nset y:1 0 0 1\r\nz\r\n',
                              b'STORED\r\n').data, b'END\r\nSTORED\r\n')
        self.assertEqual(talk(pb, b'get y:1\r\n', b'END\r\n').data,
                         b'VALUE y:1 0 1\r\nz\r\nEND\r\n')
        evs = faultkit.wait_events(ev, lambda e: len(e) >= 3)
        self.assertEqual([(e['proxy'], e['rule'], e['command'], e['key'])
                          for e in evs],
                         [('faulty', 'boom', 'set', 'x:1'),
                          ('faulty', 'gone', 'get', 'm:1'),
                          ('faulty', 'boom', 'get', 'x:1')])
        text = p.stderr_text()
        self.assertRegex(text, r"conn \d+: fault faulty rule 'boom' error: "
                         r"set x:1")
        self.assertNotRegex(text, r'fault clean ')
        self.assertRegex(text, r'faulty: listening on 127\.0\.0\.1:%d' % pa)
        self.assertRegex(text, r'clean: listening on 127\.0\.0\.1:%d' % pb)


class EventLogEscapingTest(unittest.TestCase):

    def test_names_and_keys_are_json_escaped(self):
        # Every event line must be valid JSON carrying the names and key as
        # they are: a proxy name and a (128-byte, the maximum) rule name
        # with quotes and backslashes, a key with quotes, a backslash, a
        # byte that is no UTF-8 (documented as \\u00HH) and a UTF-8 one
        # (kept as it is).
        up = harness.start_memcached_for_test(self)
        port = harness.free_port()
        proxy = 'px "quoted" \\ name'
        rule = '"' * 100 + '\\' * 28
        cfg = faultkit.write_file(self, '''proxies:
  - name: '%s'
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
    rules:
      - {name: '%s', key: "q*", action: error, message: SERVER_ERROR q}
''' % (proxy, port, up.port, rule))
        ev = os.path.join(os.path.dirname(cfg), 'events.jsonl')
        p = FileAddresses(port, ['-c', cfg, '--event-log', ev])
        self.addCleanup(p.stop_and_check)
        p.start()
        self.assertEqual(talk(port, b'get q"\\\xff\xc3\xa9\r\n',
                              b'\r\n').data, b'SERVER_ERROR q\r\n')
        harness.wait_for(lambda: os.path.exists(ev) and
                         os.path.getsize(ev) > 0, 5)
        with open(ev, 'rb') as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1, lines)
        try:
            e = json.loads(lines[0].decode('utf-8'))
        except ValueError as err:
            self.fail('event line is not JSON (%s): %r' % (err, lines[0]))
        self.assertEqual(e['proxy'], proxy)
        self.assertEqual(e['rule'], rule)
        self.assertEqual(e['key'], 'q"\\\u00ff\u00e9')


class AddressOverrideTest(unittest.TestCase):

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        put(self.up.port, 'k:1', 'one')

    def test_l_and_u_override_the_file(self):
        file_listen, nobody = harness.free_port(), harness.free_port()
        cfg = faultkit.write_file(self, '''listen: 127.0.0.1:%d
upstream: 127.0.0.1:%d
rules:
  - {name: m, key: "k:*", action: miss}
''' % (file_listen, nobody))
        p = harness.start_mcfault_for_test(self, self.up.port, ['-c', cfg])
        self.assertFalse(harness.port_accepts(file_listen),
                         'mcfault listens on the file\'s address despite -l')
        got = talk(p.port, b'get k:1 k2\r\nget k2\r\nmn\r\n', b'MN\r\n').data
        self.assertEqual(got, b'END\r\nEND\r\nMN\r\n')
        put(self.up.port, 'k2', 'two')
        got = talk(p.port, b'get k:1 k2\r\nmn\r\n', b'MN\r\n').data
        self.assertEqual(got, b'VALUE k2 0 3\r\ntwo\r\nEND\r\nMN\r\n')

    def test_file_addresses_without_override(self):
        port = harness.free_port()
        cfg = faultkit.write_file(self, '''listen: 127.0.0.1:%d
upstream: 127.0.0.1:%d
rules:
  - {name: m, key: "k:*", action: miss}
''' % (port, self.up.port))
        p = FileAddresses(port, ['-c', cfg])
        self.addCleanup(p.stop_and_check)
        p.start()
        got = talk(port, b'get k:1\r\nversion\r\n', b'\r\n').data
        self.assertTrue(got.startswith(b'END\r\nVERSION '), got)

    def test_only_u_overrides_upstream(self):
        port = harness.free_port()
        cfg = faultkit.write_file(self, '''listen: 127.0.0.1:%d
upstream: 127.0.0.1:%d
''' % (port, harness.free_port()))
        p = FileAddresses(port, ['-c', cfg, '-u', '127.0.0.1:%d'
                                 % self.up.port])
        self.addCleanup(p.stop_and_check)
        p.start()
        got = talk(port, b'get k:1\r\n', b'END\r\n').data
        self.assertEqual(got, b'VALUE k:1 0 3\r\none\r\nEND\r\n')


if __name__ == '__main__':
    unittest.main()

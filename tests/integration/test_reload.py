# SIGHUP reloads the rule file: under continuous pipelined load no request
# is lost and no connection dropped; the new rules are in force on the next
# command once "reload: ok" is logged; a bad file keeps the old rules and
# names each problem as FILE:LINE:COL; rule counters (after, limit) carry
# over for unchanged names.

import os
import re
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put  # noqa: E402

OK_RX = r'^mcfault: reload: ok, \d+ rules?$'
FAILED_RX = r'^mcfault: reload: failed'

RULES_A = '''
# rule set A
rules:
  - {name: miss-a, key: "ra:*", action: miss}
  - {name: err-a, command: set, key: "ea:*", action: error,
     message: SERVER_ERROR rules A}
'''

RULES_B = '''
# rule set B
rules:
  - {name: miss-b, key: "rb:*", action: miss}
  - {name: err-b, command: set, key: "eb:*", action: error,
     message: SERVER_ERROR rules B}
  - {name: slow-b, command: mg, key: "wb:*", action: delay, delay: 10ms,
     jitter: 5ms}
'''

# Line 5: an unknown key; line 9: a bad duration.
RULES_BAD = '''rules:
  - name: miss-c
    key: "ra:*"
    action: miss
    probabilty: 0.5
  - name: slow-c
    key: "rb:*"
    action: delay
    delay: 10
'''


def sighup_and_wait(tc, mcfault, pattern=OK_RX):
    """Sends SIGHUP and waits for one more line matching pattern."""
    before = faultkit.count_lines(mcfault, pattern)
    mcfault.proc.send_signal(signal.SIGHUP)
    text = faultkit.wait_stderr(mcfault, pattern, timeout=5,
                                count=before + 1)
    tc.assertEqual(len(re.findall(pattern, text, re.M)), before + 1,
                   'no new %r line after SIGHUP:\n%s'
                   % (pattern, text[-3000:]))
    return text


class Matcher:
    """Consumes a reply stream command by command; each command has a list
    of acceptable replies (distinct from their first bytes on)."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, alternatives):
        for i, alt in enumerate(alternatives):
            if self.data.startswith(alt, self.pos):
                self.pos += len(alt)
                return i
        raise AssertionError('at offset %d: none of %r matches %r'
                             % (self.pos, alternatives,
                                self.data[self.pos:self.pos + 200]))


class ReloadUnderLoadTest(unittest.TestCase):

    NTHREADS = 4

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        self.cfg = faultkit.write_file(self, RULES_A)
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['-c', self.cfg])
        for t in list(range(self.NTHREADS)) + ['probe']:
            put(self.up.port, 'ra:%s' % t, 'RA-%s' % t)
            put(self.up.port, 'rb:%s' % t, 'RB-%s' % t)

    def load(self, t, stop, result):
        """One connection, pipelines until stop is set. result gets the
        counts of what was seen, or the exception."""
        seen = {'ra_miss': 0, 'ra_hit': 0, 'rb_miss': 0, 'rb_hit': 0,
                'ea_err': 0, 'eb_err': 0, 'pipelines': 0}
        try:
            s = harness.connect(self.mcfault.port)
            try:
                i = 0
                while not stop.is_set():
                    i += 1
                    self.one_pipeline(s, t, i, seen)
                    seen['pipelines'] += 1
            finally:
                s.close()
        except BaseException as e:  # reported by the main thread
            result['error'] = e
        result['seen'] = seen

    def one_pipeline(self, s, t, i, seen):
        val = b'val-%d-%d-' % (t, i) + b'x' * (i % 50)
        n = b'n:%d:%d' % (t, i)
        ra, rb = b'ra:%d' % t, b'rb:%d' % t
        req = (b'set %s 0 0 %d\r\n%s\r\n' % (n, len(val), val) +
               b'get %s %s %s\r\n' % (ra, n, rb) +
               b'set ea:%d:%d 0 0 1\r\nx\r\n' % (t, i) +
               b'set eb:%d:%d 0 0 1\r\nx\r\n' % (t, i) +
               b'mg %s v k O%d\r\n' % (n, i) +
               b'mg wb:%d v\r\n' % t +
               b'mg %s v q k\r\n' % ra +
               b'delete %s noreply\r\n' % n +
               b'mn\r\n')
        rep = harness.exchange(s, req, b'MN\r\n', timeout=10, drain=0)
        if rep.eof or rep.reset or rep.timed_out:
            raise AssertionError('thread %d pipeline %d: %r, got %r'
                                 % (t, i, rep, rep.data[-300:]))
        vra = b'VALUE %s 0 4\r\nRA-%d\r\n' % (ra, t)
        vrb = b'VALUE %s 0 4\r\nRB-%d\r\n' % (rb, t)
        vn = b'VALUE %s 0 %d\r\n%s\r\n' % (n, len(val), val)
        m = Matcher(rep.data)
        m.take([b'STORED\r\n'])
        hit = m.take([vra + vn, vn]) == 0
        seen['ra_hit' if hit else 'ra_miss'] += 1
        hit = m.take([vrb + b'END\r\n', b'END\r\n']) == 0
        seen['rb_hit' if hit else 'rb_miss'] += 1
        seen['ea_err'] += m.take([b'STORED\r\n', b'SERVER_ERROR rules A\r\n'])
        seen['eb_err'] += m.take([b'STORED\r\n', b'SERVER_ERROR rules B\r\n'])
        m.take([b'VA %d k%s O%d\r\n%s\r\n' % (len(val), n, i, val)])
        m.take([b'EN\r\n'])
        m.take([b'VA 4 k%s\r\nRA-%d\r\n' % (ra, t), b''])
        m.take([b'MN\r\n'])
        if m.pos != len(rep.data):
            raise AssertionError('extra bytes after MN: %r'
                                 % rep.data[m.pos:])

    def probe(self, s):
        """Which rule set is in force, seen on one open connection."""
        s.sendall(b'get ra:probe rb:probe\r\nset ea:probe 0 0 1\r\nx\r\n'
                  b'set eb:probe 0 0 1\r\nx\r\nmn\r\n')
        r = harness.recv_until(s, b'MN\r\n', timeout=5)
        a = (b'VALUE rb:probe 0 8\r\nRB-probe\r\nEND\r\n'
             b'SERVER_ERROR rules A\r\nSTORED\r\nMN\r\n')
        b = (b'VALUE ra:probe 0 8\r\nRA-probe\r\nEND\r\n'
             b'STORED\r\nSERVER_ERROR rules B\r\nMN\r\n')
        if r.data == a:
            return 'A'
        if r.data == b:
            return 'B'
        raise AssertionError('probe reply fits neither rule set: %r (%r)'
                             % (r.data, r))

    def test_reloads_under_load(self):
        probe = harness.connect(self.mcfault.port)
        self.addCleanup(probe.close)
        self.assertEqual(self.probe(probe), 'A')
        stop = threading.Event()
        results = [dict() for _ in range(self.NTHREADS)]
        threads = [threading.Thread(target=self.load,
                                    args=(t, stop, results[t]), daemon=True)
                   for t in range(self.NTHREADS)]
        for th in threads:
            th.start()
        try:
            time.sleep(0.3)
            order = ['B', 'A', 'B', 'A', 'B', 'A', 'B']
            for want in order:
                faultkit.replace_file(self.cfg,
                                      RULES_A if want == 'A' else RULES_B)
                sighup_and_wait(self, self.mcfault)
                # In force for the very next command.
                self.assertEqual(self.probe(probe), want)
                time.sleep(0.35)
                self.assertEqual(self.probe(probe), want)
            # A bad file: every problem named, old rules (B) kept.
            faultkit.replace_file(self.cfg, RULES_BAD)
            text = sighup_and_wait(self, self.mcfault, FAILED_RX)
            self.assertEqual(self.probe(probe), 'B')
            time.sleep(0.3)
        finally:
            stop.set()
            for th in threads:
                th.join(15)
        path = re.escape(self.cfg)
        for rx in (r'reload: %s:5:5: unknown key .probabilty.' % path,
                   r'reload: %s:9:12: bad duration .10.' % path,
                   r'reload: failed, 2 problems; kept the [0-9]+ old rules'):
            self.assertTrue(re.search(rx, text, re.M),
                            'no line %r in stderr:\n%s' % (rx, text[-3000:]))
        self.assertEqual(faultkit.count_lines(self.mcfault, OK_RX), 7)
        total = 0
        for t, r in enumerate(results):
            self.assertNotIn('error', r, 'load thread %d: %r'
                             % (t, r.get('error')))
            seen = r['seen']
            total += seen['pipelines']
            self.assertGreater(seen['pipelines'], 20, seen)
            # Both rule sets were in force while this thread ran.
            self.assertGreater(seen['ra_miss'], 0, seen)
            self.assertGreater(seen['ra_hit'], 0, seen)
            self.assertGreater(seen['rb_miss'], 0, seen)
            self.assertGreater(seen['rb_hit'], 0, seen)
        harness.log('%d pipelines under 7 reloads' % total)
        # The probe connection and the load connections were never closed
        # (the threads would have failed); the upstream saw every set.
        self.assertEqual(get_value(self.up.port, 'ea:probe'), b'x')


class ReloadCountersTest(unittest.TestCase):

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)

    def start(self, text, args=()):
        self.cfg = faultkit.write_file(self, text)
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['-c', self.cfg] + list(args))
        self.sock = harness.connect(self.mcfault.port)
        self.addCleanup(self.sock.close)

    def gets(self, key, n):
        """n `get key` on the connection kept open across reloads."""
        self.sock.sendall((b'get ' + key + b'\r\n') * n + b'mn\r\n')
        r = harness.recv_until(self.sock, b'MN\r\n', timeout=5)
        self.assertTrue(r.data.endswith(b'MN\r\n'), r)
        return re.findall(rb'(END|SERVER_ERROR \w+)\r\n', r.data)

    def reload(self, text):
        faultkit.replace_file(self.cfg, text)
        sighup_and_wait(self, self.mcfault)

    def test_limit_and_after_carry_over_by_name(self):
        E = b'END'
        L, A = b'SERVER_ERROR lim', b'SERVER_ERROR aft'
        self.start('''
rules:
  - {name: lim, key: "c:*", action: error, message: SERVER_ERROR lim,
     limit: 2}
  - {name: aft, key: "a:*", action: error, message: SERVER_ERROR aft,
     after: 3}
''')
        self.assertEqual(self.gets(b'c:1', 3), [L, L, E])
        self.assertEqual(self.gets(b'a:1', 2), [E, E])
        # Same names, another order, one more rule: counters kept.
        self.reload('''
rules:
  - {name: extra, key: "x:*", action: drop}
  - {name: aft, key: "a:*", action: error, message: SERVER_ERROR aft,
     after: 3}
  - {name: lim, key: "c:*", action: error, message: SERVER_ERROR lim,
     limit: 2}
''')
        self.assertEqual(self.gets(b'c:1', 2), [E, E])
        self.assertEqual(self.gets(b'a:1', 2), [E, A])
        # The same name with a higher limit: 2 fired already, 3 to go.
        self.reload('''
rules:
  - {name: lim, key: "c:*", action: error, message: SERVER_ERROR lim,
     limit: 5}
''')
        self.assertEqual(self.gets(b'c:1', 5), [L, L, L, E, E])
        # Renamed: a fresh counter.
        self.reload('''
rules:
  - {name: lim2, key: "c:*", action: error, message: SERVER_ERROR lim,
     limit: 2}
  - {name: aft2, key: "a:*", action: error, message: SERVER_ERROR aft,
     after: 3}
''')
        self.assertEqual(self.gets(b'c:1', 3), [L, L, E])
        self.assertEqual(self.gets(b'a:1', 4), [E, E, E, A])
        # A failed reload keeps counters too.
        faultkit.replace_file(self.cfg, 'rules:\n  - {action: boom}\n')
        sighup_and_wait(self, self.mcfault, FAILED_RX)
        self.assertEqual(self.gets(b'c:1', 1), [E])

    def test_pending_delay_survives_reload_removing_its_rule(self):
        self.start('''
rules:
  - {name: slow, key: "w:*", action: delay, delay: 500ms}
  - {name: slowf, key: "wf:*", action: delay, delay: 500ms, forward: true}
''')
        t0 = time.monotonic()
        self.sock.sendall(b'get w:1\r\nget wf:1\r\nget other\r\nmn\r\n')
        self.reload('rules:\n')
        r = harness.recv_until(self.sock, b'MN\r\n', timeout=5)
        self.assertEqual(r.data, b'END\r\nEND\r\nEND\r\nMN\r\n')
        self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        # No rules now: immediate.
        t0 = time.monotonic()
        self.assertEqual(self.gets(b'w:1', 1), [b'END'])
        self.assertLess(time.monotonic() - t0, 0.4)

    def test_reload_that_changes_proxies_is_refused(self):
        self.start('''
rules:
  - {name: e, key: "e:*", action: error, message: SERVER_ERROR e}
''')
        self.assertEqual(self.gets(b'e:1', 1), [b'SERVER_ERROR e'])
        faultkit.replace_file(self.cfg, '''
proxies:
  - {name: p1, listen: "127.0.0.1:1", upstream: "127.0.0.1:2"}
  - {name: p2, listen: "127.0.0.1:3", upstream: "127.0.0.1:4"}
''')
        text = sighup_and_wait(self, self.mcfault, FAILED_RX)
        self.assertRegex(text, r'reload: the number of proxies changed '
                         r'\(restart mcfault to apply it\)\n.*reload: '
                         r'failed, 1 problem; kept the 1 old rules')
        self.assertEqual(self.gets(b'e:1', 1), [b'SERVER_ERROR e'])
        # Missing file: refused, old rules kept.
        os.unlink(self.cfg)
        text = sighup_and_wait(self, self.mcfault, FAILED_RX)
        self.assertIn('%s: No such file or directory' % self.cfg, text)
        self.assertEqual(self.gets(b'e:1', 1), [b'SERVER_ERROR e'])
        # A YAML syntax error names its line and column.
        faultkit.replace_file(self.cfg, 'rules:\n  - {action: drop\n')
        text = sighup_and_wait(self, self.mcfault, FAILED_RX)
        self.assertRegex(text, r'reload: %s:\d+:\d+: '
                         % re.escape(self.cfg))
        self.assertEqual(self.gets(b'e:1', 1), [b'SERVER_ERROR e'])
        # Back to a good file.
        faultkit.replace_file(self.cfg, 'rules:\n')
        sighup_and_wait(self, self.mcfault)
        self.assertEqual(self.gets(b'e:1', 1), [b'END'])

    def test_sighup_without_config_file(self):
        p = harness.start_mcfault_for_test(self, self.up.port)
        s = harness.connect(p.port)
        self.addCleanup(s.close)
        p.proc.send_signal(signal.SIGHUP)
        text = faultkit.wait_stderr(p, r'reload: no config file')
        self.assertIn('reload: no config file', text)
        s.sendall(b'version\r\n')
        self.assertTrue(harness.recv_until(s, b'\r\n').data
                        .startswith(b'VERSION '))

    def test_event_log_reopened_on_sigusr1(self):
        d = os.path.dirname(faultkit.write_file(self, ''))
        ev = os.path.join(d, 'events.jsonl')
        self.start('rules:\n  - {name: e, key: "e:*", action: error, '
                   'message: SERVER_ERROR e}\n', ['--event-log', ev])
        self.assertEqual(self.gets(b'e:1', 1), [b'SERVER_ERROR e'])
        evs = faultkit.wait_events(ev, lambda e: len(e) >= 1)
        self.assertEqual([(e['rule'], e['key']) for e in evs], [('e', 'e:1')])
        os.rename(ev, ev + '.1')
        self.mcfault.proc.send_signal(signal.SIGUSR1)
        harness.wait_for(lambda: os.path.exists(ev), 5)
        self.assertEqual(self.gets(b'e:2', 1), [b'SERVER_ERROR e'])
        evs = faultkit.wait_events(ev, lambda e: len(e) >= 1)
        self.assertEqual([(e['rule'], e['key']) for e in evs], [('e', 'e:2')])
        self.assertEqual(len(faultkit.read_events(ev + '.1')), 1)


if __name__ == '__main__':
    unittest.main()

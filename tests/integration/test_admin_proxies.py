# The admin API's proxy switch and rule schedules against a real memcached
# and a real mcfault: POST /proxies/NAME/disable closes every client of the
# proxy and its listening socket (new clients are refused), /enable binds
# the same port again; /health, /stats and /metrics say which proxies are
# on; POST /reset switches every proxy back on; with several proxies the
# others go on serving. GET /rules shows whether a scheduled rule is in
# force now and when that next changes; a reload keeps a rule's clock, a
# reset restarts it.

import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from test_admin import (AdminCase, MultiMcfault, cmd, http_req,  # noqa: E402
                        metric, parse_metrics, set_cmd)

RULES_FILE = '''rules:
  - name: slow
    command: get
    key: "slow:*"
    action: delay
    delay: 3s
'''

GET_MISS = b'get nothing:here\r\n'


def open_client(port):
    """A client connection through the proxy that has been answered once
    (so that its upstream connection is up too)."""
    s = socket.create_connection((harness.HOST, port), timeout=5)
    s.sendall(GET_MISS)
    rep = harness.recv_until(s, b'END\r\n', timeout=5)
    assert rep.data == b'END\r\n', rep
    return s


def closed_by_peer(s, timeout=3.0):
    """True when the peer closed s (EOF or a reset) within timeout."""
    s.settimeout(timeout)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def refused(port):
    """True when a connect to port is refused (nothing listens)."""
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((harness.HOST, port))
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


class ProxyCase(AdminCase):

    def switch(self, name, on, want=200):
        return self.json('POST', '/proxies/%s/%s'
                         % (name, 'enable' if on else 'disable'),
                         want=want)[1]

    def health(self):
        st, doc = self.json('GET', '/health', want=200)
        return {p['name']: p for p in doc['proxies']}

    def stats_proxies(self):
        doc = self.json('GET', '/stats', want=200)[1]
        return {p['name']: p for p in doc['proxies']}


class ProxySwitchTest(ProxyCase):
    """One memcached, one mcfault with a rule file and the API. Each test
    starts from POST /reset and leaves the proxy on."""

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, RULES_FILE)

    def setUp(self):
        self.json('POST', '/reset', want=200)
        self.port = self.mcfault.port
        # Whatever a test does, the class's mcfault ends up listening
        # (stop_and_check wants it so).
        self.addCleanup(self.switch, 'default', True)

    def test_disable_closes_clients_and_refuses_new_ones(self):
        idle = socket.create_connection((harness.HOST, self.port), timeout=5)
        self.addCleanup(idle.close)
        busy = open_client(self.port)
        self.addCleanup(busy.close)
        # One held by a delay rule: its timer goes with it.
        held = socket.create_connection((harness.HOST, self.port), timeout=5)
        self.addCleanup(held.close)
        held.sendall(b'get slow:1\r\n')
        self.assertTrue(harness.wait_for(
            lambda: self.stats_proxies()['default']['connections_now'] == 3))

        t0 = time.monotonic()
        doc = self.switch('default', False)
        self.assertEqual(doc, {'ok': True, 'proxy': 'default',
                               'enabled': False,
                               'listen': '127.0.0.1:%d' % self.port,
                               'closed': 3})
        for s in (idle, busy, held):
            self.assertTrue(closed_by_peer(s), 'client still open')
        # The delayed get did not hold the close back.
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertTrue(refused(self.port))
        self.assertFalse(harness.port_accepts(self.port))

        p = self.stats_proxies()['default']
        self.assertIs(p['enabled'], False)
        self.assertEqual(p['connections_now'], 0)
        # Health is about the upstream: still 200, the proxy marked off.
        st, doc = self.json('GET', '/health', want=200)
        self.assertIs(doc['ok'], True)
        self.assertEqual(doc['proxies'], [{
            'name': 'default', 'listen': '127.0.0.1:%d' % self.port,
            'upstream': '127.0.0.1:%d' % self.up.port, 'enabled': False,
            'upstream_reachable': True}])
        st, hdrs, text = http_req(self.admin, 'GET', '/metrics')
        samples, types = parse_metrics(text.decode())
        self.assertEqual(metric(samples, 'mcfault_proxy_enabled',
                                proxy='default'), 0)

        # Twice is fine: nothing more to close.
        doc = self.switch('default', False)
        self.assertEqual((doc['enabled'], doc['closed']), (False, 0))
        self.assertTrue(refused(self.port))

    def test_enable_listens_on_the_same_port_again(self):
        base_fds = faultkit.settled_fd_count(self.mcfault.pid)
        faultkit.put(self.up.port, 'sw:1', b'before')
        self.switch('default', False)
        self.assertTrue(refused(self.port))
        doc = self.switch('default', True)
        self.assertEqual(doc, {'ok': True, 'proxy': 'default',
                               'enabled': True,
                               'listen': '127.0.0.1:%d' % self.port})
        # Traffic flows through again, faults too.
        self.assertEqual(cmd(self.port, set_cmd('sw:2', b'after')),
                         b'STORED\r\n')
        self.assertEqual(cmd(self.port, b'get sw:1 sw:2\r\n', b'END\r\n'),
                         b'VALUE sw:1 0 6\r\nbefore\r\n'
                         b'VALUE sw:2 0 5\r\nafter\r\nEND\r\n')
        # Twice is fine.
        self.assertIs(self.switch('default', True)['enabled'], True)
        self.assertIs(self.health()['default']['enabled'], True)
        self.assertIs(self.stats_proxies()['default']['enabled'], True)
        # Off and on leaks no descriptor.
        for _ in range(3):
            s = open_client(self.port)
            self.switch('default', False)
            self.assertTrue(closed_by_peer(s))
            s.close()
            self.switch('default', True)
        self.assertEqual(faultkit.settled_fd_count(self.mcfault.pid),
                         base_fds)
        self.assertEqual(cmd(self.port, GET_MISS, b'END\r\n'), b'END\r\n')

    def test_enable_while_the_port_is_taken(self):
        self.switch('default', False)
        squatter = socket.socket()
        self.addCleanup(squatter.close)
        # (SO_REUSEADDR past the TIME_WAIT of the tests' connections; a
        # listening socket still keeps mcfault's bind out.)
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((harness.HOST, self.port))
        squatter.listen(1)
        st, doc = self.json('POST', '/proxies/default/enable', want=409)
        self.assertIn('cannot listen on 127.0.0.1:%d again' % self.port,
                      doc['error'])
        self.assertIn('in use', doc['error'])
        self.assertIs(self.health()['default']['enabled'], False)
        squatter.close()
        self.assertIs(self.switch('default', True)['enabled'], True)
        self.assertEqual(cmd(self.port, GET_MISS, b'END\r\n'), b'END\r\n')

    def test_unknown_proxy_and_wrong_methods(self):
        st, doc = self.json('POST', '/proxies/nope/disable', want=404)
        self.assertEqual(doc, {'error': "no proxy named 'nope'"})
        st, doc = self.json('POST', '/proxies/nope/enable', want=404)
        st, doc = self.json('POST', '/proxies/de%66ault/disable', want=200)
        self.assertEqual(doc['proxy'], 'default')
        self.switch('default', True)
        for method in ('GET', 'PUT', 'DELETE'):
            st, hdrs, data = http_req(self.admin, method,
                                      '/proxies/default/disable')
            self.assertEqual(st, 405, (method, data))
            self.assertEqual(hdrs.get('allow'), 'POST')
        for path in ('/proxies', '/proxies/', '/proxies/default',
                     '/proxies/default/off', '/proxies//disable'):
            st, doc = self.json('POST', path, want=404)
            self.assertIn('no such endpoint', doc['error'])
        st, doc = self.json('POST', '/proxies/a%00b/disable', want=400)
        # Nothing was switched off on the way.
        self.assertEqual(cmd(self.port, GET_MISS, b'END\r\n'), b'END\r\n')

    def test_reset_switches_every_proxy_on(self):
        self.switch('default', False)
        self.assertTrue(refused(self.port))
        st, doc = self.json('POST', '/reset', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 1})
        self.assertIs(self.health()['default']['enabled'], True)
        self.assertEqual(cmd(self.port, GET_MISS, b'END\r\n'), b'END\r\n')

    def test_switches_and_rule_changes_apply_in_order(self):
        # Pipelined on one connection: the disable lands after the PUT and
        # before the reset, whatever each takes.
        s = socket.create_connection((harness.HOST, self.admin), timeout=10)
        self.addCleanup(s.close)
        body = b'rules: []\n'
        s.sendall(b'PUT /rules HTTP/1.1\r\nHost: x\r\nContent-Length: %d'
                  b'\r\n\r\n%s' % (len(body), body) +
                  b'POST /proxies/default/disable HTTP/1.1\r\nHost: x\r\n'
                  b'Content-Length: 0\r\n\r\n'
                  b'POST /reset HTTP/1.1\r\nHost: x\r\n'
                  b'Content-Length: 0\r\n\r\n')
        data = b''
        deadline = time.monotonic() + 10
        while data.count(b'HTTP/1.1 200') < 3 and \
                time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        self.assertEqual(data.count(b'HTTP/1.1 200'), 3, data)
        self.assertIn(b'"enabled":false', data)
        # The reset came last: the proxy is on, the file's rule back.
        self.assertIs(self.health()['default']['enabled'], True)
        self.assertEqual(cmd(self.port, GET_MISS, b'END\r\n'), b'END\r\n')


class MultiProxySwitchTest(ProxyCase):
    """Two proxies over one memcached: switching one off leaves the other
    serving, its clients untouched."""

    @classmethod
    def setUpClass(cls):
        cls.up = harness.start_memcached_for_class(cls)
        cls.port_a = harness.free_port()
        cls.port_b = harness.free_port()
        cls.admin = harness.free_port()
        cfg = faultkit.write_class_file(cls, '''proxies:
  - name: a
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
  - name: b
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
    rules:
      - {name: b-err, command: set, key: "b:*", action: error,
         message: SERVER_ERROR from b}
''' % (cls.port_a, cls.up.port, cls.port_b, cls.up.port))
        cls.mcfault = MultiMcfault(cls.up.port,
                                   ['-c', cfg, '--admin', str(cls.admin)],
                                   port=cls.port_a)
        cls.addClassCleanup(cls.mcfault.stop_and_check)
        cls.mcfault.start()
        harness.wait_port(cls.admin, 10, cls.mcfault.proc, 'admin API')
        harness.wait_port(cls.port_b, 10, cls.mcfault.proc, 'proxy b')

    def setUp(self):
        self.json('POST', '/reset', want=200)
        self.addCleanup(self.switch, 'a', True)
        self.addCleanup(self.switch, 'b', True)

    def test_disabling_one_leaves_the_other_serving(self):
        a = open_client(self.port_a)
        self.addCleanup(a.close)
        b = open_client(self.port_b)
        self.addCleanup(b.close)
        doc = self.switch('a', False)
        self.assertEqual((doc['proxy'], doc['closed']), ('a', 1))
        self.assertTrue(closed_by_peer(a))
        self.assertTrue(refused(self.port_a))
        # b's open client and new ones go on, its rules too.
        b.sendall(GET_MISS)
        self.assertEqual(harness.recv_until(b, b'END\r\n', timeout=5).data,
                         b'END\r\n')
        self.assertEqual(cmd(self.port_b, set_cmd('b:1')),
                         b'SERVER_ERROR from b\r\n')
        self.assertEqual(cmd(self.port_b, set_cmd('x:1')), b'STORED\r\n')
        self.assertEqual({n: p['enabled'] for n, p in self.health().items()},
                         {'a': False, 'b': True})
        # The one-command connections above close on their own time.
        def seen():
            return {n: (p['enabled'], p['connections_now'])
                    for n, p in self.stats_proxies().items()}
        want = {'a': (False, 0), 'b': (True, 1)}
        harness.wait_for(lambda: seen() == want)
        self.assertEqual(seen(), want)

        # Both off, then a reset brings both back.
        self.switch('b', False)
        self.assertTrue(closed_by_peer(b))
        self.assertTrue(refused(self.port_b))
        self.json('POST', '/reset', want=200)
        self.assertEqual({n: p['enabled'] for n, p in self.health().items()},
                         {'a': True, 'b': True})
        self.assertEqual(cmd(self.port_a, set_cmd('b:2')), b'STORED\r\n')
        self.assertEqual(cmd(self.port_b, set_cmd('b:2')),
                         b'SERVER_ERROR from b\r\n')

    def test_enable_one_by_name(self):
        self.switch('a', False)
        self.switch('b', False)
        self.switch('b', True)
        self.assertTrue(refused(self.port_a))
        self.assertEqual(cmd(self.port_b, set_cmd('x:2')), b'STORED\r\n')
        self.switch('a', True)
        self.assertEqual(cmd(self.port_a, set_cmd('x:3')), b'STORED\r\n')


# One rule of each newer action and targeting key, for GET /rules.
FIELDS_FILE = '''rules:
  - {name: thr, command: get, key: "t:*", action: throttle, rate: 10KiB/s}
  - {name: sl, command: get, key: "s:*", action: slice, size: 1-16,
     interval: 2ms}
  - {name: sl1, command: get, key: "s1:*", action: slice, size: 4}
  - {name: tr, key: "tr:*", action: truncate, keep: 50%, close: reset}
  - {name: trb, key: "trb:*", action: truncate, keep: 1KiB}
  - {name: dr, key: "d:*", action: drop}
  - {name: co, key: "c:*", action: corrupt, flips: 3}
  - {name: ev, key: "e:*", action: evict}
  - {name: tg, key: "tg:*", action: error, message: SERVER_ERROR tg,
     client: [127.0.0.1, 10.1.2.3/8, "fd00::/8", "::ffff:10.0.0.0/104"],
     connections: 25%, min_size: 10, max_size: 1MiB}
  - {name: big, key: "big:*", action: drop, min_size: 1KiB}
  - {name: conn, command: connect, action: drop, close: reset,
     client: 192.168.0.0/16}
'''

# The fields GET /rules shows for every rule.
COMMON = {'probability': 1, 'after': 0, 'limit': 0, 'forward': False,
          'enabled': True, 'matched': 0, 'fired': 0, 'in_force': True,
          'next_change_ms': None}


class RuleFieldsTest(AdminCase):
    """GET /rules shows each newer action's parameters and each targeting
    key, where they apply."""

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, FIELDS_FILE)

    def test_every_field(self):
        st, doc = self.json('GET', '/rules', want=200)
        got = {r['name']: r for r in doc['proxies'][0]['rules']}

        def want(name, command, key, action, **extra):
            return dict(COMMON, name=name, command=command, key=key,
                        action=action, **extra)

        self.assertEqual(got['thr'], want('thr', ['get'], ['t:*'],
                                          'throttle', rate_bps=10240))
        self.assertEqual(got['sl'], want('sl', ['get'], ['s:*'], 'slice',
                                         size={'min': 1, 'max': 16},
                                         interval_us=2000))
        self.assertEqual(got['sl1'], want('sl1', ['get'], ['s1:*'], 'slice',
                                          size={'min': 4, 'max': 4},
                                          interval_us=1000))
        self.assertEqual(got['tr'], want('tr', ['*'], ['tr:*'], 'truncate',
                                         close='reset', keep='50%'))
        self.assertEqual(got['trb'], want('trb', ['*'], ['trb:*'],
                                          'truncate', close='fin',
                                          keep=1024))
        self.assertEqual(got['dr'], want('dr', ['*'], ['d:*'], 'drop',
                                         close='fin'))
        self.assertEqual(got['co'], want('co', ['*'], ['c:*'], 'corrupt',
                                         flips=3))
        self.assertEqual(got['ev'], want('ev', ['*'], ['e:*'], 'evict'))
        self.assertEqual(got['tg'], want(
            'tg', ['*'], ['tg:*'], 'error', message='SERVER_ERROR tg',
            client=['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8', '10.0.0.0/8'],
            connections=0.25, min_size=10, max_size=1048576))
        self.assertEqual(got['big'], want('big', ['*'], ['big:*'], 'drop',
                                          close='fin', min_size=1024,
                                          max_size=None))
        self.assertEqual(got['conn'], want('conn', ['connect'], ['*'], 'drop',
                                           close='reset',
                                           client=['192.168.0.0/16']))
        # GET /rules/NAME: the same, with the proxy.
        st, one = self.json('GET', '/rules/tg', want=200)
        self.assertEqual(one, dict(got['tg'], proxy='default'))

    def test_small_shares_read_back_as_plain_decimals(self):
        """probability, connections and keep as decimals the rule parser
        reads (never 1e-05), and read back as the same numbers."""
        spec = {'name': 'tiny', 'key': 'tiny:*', 'action': 'truncate',
                'keep': '0.000001%', 'probability': 0.00001,
                'connections': 1e-07}
        self.json('POST', '/rules', json.dumps(spec), want=200)
        self.addCleanup(self.json, 'DELETE', '/rules/tiny')
        st, hdrs, raw = http_req(self.admin, 'GET', '/rules/tiny')
        self.assertEqual(st, 200)
        self.assertNotIn(b'e-', raw)
        got = json.loads(raw)
        self.assertEqual((got['keep'], got['probability'],
                          got['connections']),
                         ('0.000001%', 0.00001, 0.0000001))
        # Values that need many digits are written with those that read
        # back exactly: what GET says, sent again, is the same number.
        tricky = [1 / 3, 0.09641453609309437, '0.00039662697289458%',
                  3.9662697289458e-06, 1e-18, '0.05289743501094008%']
        for i, value in enumerate(tricky):
            first = {'name': 'p%d' % i, 'key': 'p:*', 'action': 'drop',
                     'probability': value, 'connections': value}
            cut = {'name': 'k%d' % i, 'key': 'k:*', 'action': 'truncate',
                   'keep': value if isinstance(value, str)
                   else '%r%%' % (value * 100)}
            self.json('POST', '/rules', json.dumps([first, cut]), want=200)
            self.addCleanup(self.json, 'DELETE', '/rules/p%d' % i)
            self.addCleanup(self.json, 'DELETE', '/rules/k%d' % i)
            p = self.json('GET', '/rules/p%d' % i, want=200)[1]
            k = self.json('GET', '/rules/k%d' % i, want=200)[1]
            if not isinstance(value, str):
                self.assertEqual(p['probability'], value)
            again = [dict(first, name='p%d-again' % i,
                          probability=p['probability'],
                          connections=p['connections']),
                     dict(cut, name='k%d-again' % i, keep=k['keep'])]
            self.json('POST', '/rules', json.dumps(again), want=200)
            self.addCleanup(self.json, 'DELETE', '/rules/p%d-again' % i)
            self.addCleanup(self.json, 'DELETE', '/rules/k%d-again' % i)
            p2 = self.json('GET', '/rules/p%d-again' % i, want=200)[1]
            k2 = self.json('GET', '/rules/k%d-again' % i, want=200)[1]
            self.assertEqual((p2['probability'], p2['connections'],
                              k2['keep']),
                             (p['probability'], p['connections'], k['keep']),
                             value)

    def test_what_get_reports_posts_as_the_same_rule(self):
        """Every rule of the file, written back from what GET /rules says
        (in the rule file's keys), makes the same rule: connect rules
        included, whose key "*" and forward false are accepted."""
        st, doc = self.json('GET', '/rules', want=200)
        rules = doc['proxies'][0]['rules']
        read_only = ('matched', 'fired', 'in_force', 'next_change_ms')
        specs = []
        for r in rules:
            spec = {k: v for k, v in r.items() if k not in read_only}
            spec['name'] += '-again'
            if 'rate_bps' in spec:
                spec['rate'] = '%dB/s' % spec.pop('rate_bps')
            if 'size' in spec:
                size = spec.pop('size')
                spec['size'] = '%d-%d' % (size['min'], size['max'])
            if 'interval_us' in spec:
                spec['interval'] = '%dus' % spec.pop('interval_us')
            if spec.get('max_size', 0) is None:
                del spec['max_size']
            specs.append(spec)
        self.json('POST', '/rules', json.dumps(specs), want=200)
        for spec in specs:
            self.addCleanup(self.json, 'DELETE', '/rules/' + spec['name'])
        st, doc = self.json('GET', '/rules', want=200)
        again = {r['name']: r for r in doc['proxies'][0]['rules']}
        for r in rules:
            self.assertEqual(dict(again[r['name'] + '-again'],
                                  name=r['name']), r)


# A rule in force from 2 s after it was loaded, for 1 s, every 5 s.
SCHEDULE_FILE = '''rules:
  - name: sched
    command: set
    key: "sch:*"
    action: error
    message: SERVER_ERROR scheduled
    schedule: {start: 2s, duration: 1s, every: 5s}
  - name: always
    command: get
    key: "always:*"
    action: miss
'''


class RuleScheduleTest(AdminCase):
    """GET /rules says whether each rule is in force now and when that
    next changes."""

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        self.cfg = faultkit.write_file(self, SCHEDULE_FILE)
        self.admin = harness.free_port()
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['-c', self.cfg, '--admin', str(self.admin)])
        harness.wait_port(self.admin, 10, self.mcfault.proc, 'admin API')

    def rule(self, name):
        """(in_force, next_change_ms, the monotonic time it was read)."""
        st, doc = self.json('GET', '/rules/' + name, want=200)
        return doc['in_force'], doc['next_change_ms'], time.monotonic()

    def wait_in_force(self, want, timeout=8.0):
        """Waits (by next_change_ms, not by polling) until sched's in_force
        is want; returns what rule() returned then."""
        deadline = time.monotonic() + timeout
        while True:
            on, nxt, t = self.rule('sched')
            if on == want:
                return on, nxt, t
            self.assertIsNotNone(nxt)
            self.assertLess(time.monotonic() + nxt / 1000, deadline,
                            'sched not %s in time' % want)
            time.sleep(nxt / 1000 + 0.02)

    def test_fields_of_rules_with_and_without_schedule(self):
        st, doc = self.json('GET', '/rules', want=200)
        sched, always = doc['proxies'][0]['rules']
        self.assertEqual(sched['schedule'], {
            'start_us': 2000000, 'duration_us': 1000000,
            'every_us': 5000000})
        self.assertIsInstance(sched['in_force'], bool)
        self.assertIsInstance(sched['next_change_ms'], int)
        self.assertTrue(0 <= sched['next_change_ms'] <= 4000, sched)
        self.assertNotIn('schedule', always)
        self.assertIs(always['in_force'], True)
        self.assertIsNone(always['next_change_ms'])
        # A disabled rule is not in force and does not change by itself.
        self.json('POST', '/rules/sched/disable', want=200)
        on, nxt, _ = self.rule('sched')
        self.assertEqual((on, nxt), (False, None))
        self.json('POST', '/rules/always/disable',
                  want=200)
        self.assertEqual(self.rule('always')[:2], (False, None))
        # /stats carries in_force too (the dashboard's poll).
        st, doc = self.json('GET', '/stats', want=200)
        self.assertEqual([(r['name'], r['in_force'])
                          for r in doc['proxies'][0]['rules']],
                         [('sched', False), ('always', False)])

    def test_in_force_follows_the_schedule(self):
        # Loaded at the start: off for 2 s, on for 1 s, off for 4 s, ...
        on, nxt, t = self.wait_in_force(False)
        self.assertTrue(0 < nxt <= 4000, nxt)
        on, nxt, t = self.wait_in_force(True)
        self.assertTrue(0 < nxt <= 1000, nxt)
        # In force: the rule fires (when the window did not end meanwhile).
        reply = cmd(self.mcfault.port, set_cmd('sch:1'))
        if self.rule('sched')[0]:
            self.assertEqual(reply, b'SERVER_ERROR scheduled\r\n')
        on, nxt, t = self.wait_in_force(False)
        self.assertTrue(3000 <= nxt <= 4000, nxt)
        reply = cmd(self.mcfault.port, set_cmd('sch:2'))
        self.assertEqual(reply, b'STORED\r\n')
        st, hdrs, text = http_req(self.admin, 'GET', '/metrics')
        samples, types = parse_metrics(text.decode())
        self.assertEqual(metric(samples, 'mcfault_rule_in_force',
                                proxy='default', rule='sched'), 0)
        self.assertEqual(metric(samples, 'mcfault_rule_in_force',
                                proxy='default', rule='always'), 1)

    def test_reload_keeps_the_clock_reset_restarts_it(self):
        on, nxt, t = self.wait_in_force(True)
        if nxt < 400:  # too close to the window's end to tell: the next
            self.wait_in_force(False)
            on, nxt, t = self.wait_in_force(True)
        end = t + nxt / 1000
        self.json('POST', '/reload', want=200)
        on2, nxt2, t2 = self.rule('sched')
        # The same window: a restarted clock would be off for 2 s.
        self.assertIs(on2, True)
        self.assertAlmostEqual(t2 + nxt2 / 1000, end, delta=0.15)
        # A PUT that keeps the name keeps it too.
        self.json('PUT', '/rules', SCHEDULE_FILE.encode(),
                  want=200)
        on3, nxt3, t3 = self.rule('sched')
        if t3 < end - 0.05:
            self.assertIs(on3, True)
            self.assertAlmostEqual(t3 + nxt3 / 1000, end, delta=0.15)
        # A reset starts every clock again: off for 2 s from now.
        self.json('POST', '/reset', want=200)
        on4, nxt4, t4 = self.rule('sched')
        self.assertIs(on4, False)
        self.assertTrue(1800 <= nxt4 <= 2000, nxt4)


if __name__ == '__main__':
    unittest.main()

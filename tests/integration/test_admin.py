# The admin HTTP API (--admin): every endpoint against a real memcached,
# bad requests answered 4xx with a JSON body and the old rules kept, rule
# changes in force on the next command, /health probing asynchronously,
# /stats and /metrics moving with traffic, /events, and the API never
# getting in the way of proxy traffic (load while rules change, a client
# that sends half a request).

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put  # noqa: E402

RULES_FILE = '''
rules:
  - name: oom
    command: set
    key: "oom:*"
    action: error
    message: SERVER_ERROR out of memory storing object
  - name: slow
    command: [get, mg]
    key: ["slow:*", "q\\"\\x01*"]
    action: delay
    delay: 5ms
    jitter: 2ms
    probability: 12.5%
    after: 3
    limit: 7
    forward: true
    enabled: false
'''

RULES_FILE_2 = '''
rules:
  - name: file-two
    command: set
    key: "two:*"
    action: error
    message: SERVER_ERROR from file two
'''

# Line 4: an unknown key (col 5); line 5: a bad duration (col 12).
RULES_FILE_BAD = '''rules:
  - name: broken
    key: "two:*"
    probabilty: 0.5
    delay: 10
    action: delay
'''


def http_req(port, method, path, body=None, headers=None, timeout=10):
    """One request on a new connection: (status, headers dict, body)."""
    c = http.client.HTTPConnection(harness.HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def http_json(tc, port, method, path, body=None, want=None):
    """A request whose reply must be JSON (and of status want, when
    given); returns (status, parsed body)."""
    st, hdrs, data = http_req(port, method, path, body)
    tc.assertEqual(hdrs.get('content-type'), 'application/json',
                   '%s %s: %r' % (method, path, data))
    try:
        doc = json.loads(data.decode('utf-8'))
    except ValueError as e:
        tc.fail('%s %s: not JSON (%s): %r' % (method, path, e, data))
    if want is not None:
        tc.assertEqual(st, want, '%s %s: %r' % (method, path, doc))
    if 400 <= st < 500:
        tc.assertIsInstance(doc.get('error'), str, doc)
    return st, doc


class AdminCase(unittest.TestCase):
    """A test case whose admin API listens on self.admin: self.json(method,
    path, body, want) is http_json on it (a str body is sent as UTF-8)."""

    def json(self, method, path, body=None, want=None):
        if isinstance(body, str):
            body = body.encode()
        return http_json(self, self.admin, method, path, body, want)


def cmd(port, data, tail=b'\r\n'):
    """One command through the proxy on a new connection; the reply."""
    rep = faultkit.talk(port, data, tail, timeout=5, drain=0)
    return rep.data


def set_cmd(key, value=b'v'):
    if isinstance(key, str):
        key = key.encode()
    return b'set %s 0 0 %d\r\n%s\r\n' % (key, len(value), value)


# --------------------------------------------------------------------------
# Prometheus text exposition format 0.0.4, parsed strictly

METRIC_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                      r'(,|$)')


def unescape_label(v):
    return re.sub(r'\\(.)', lambda m: {'n': '\n'}.get(m.group(1),
                                                      m.group(1)), v)


def parse_metrics(text):
    """{(name, frozenset of (label, value))): float} plus {family: type};
    raises AssertionError on anything outside the format."""
    samples = {}
    types = {}
    helps = set()
    for line in text.split('\n'):
        if line == '':
            continue
        if line.startswith('# HELP '):
            name = line.split(' ')[2]
            if name in helps:
                raise AssertionError('second HELP for %s' % name)
            helps.add(name)
            continue
        if line.startswith('# TYPE '):
            parts = line.split(' ')
            if len(parts) != 4 or \
                    parts[3] not in ('counter', 'gauge', 'histogram'):
                raise AssertionError('bad TYPE line %r' % line)
            if parts[2] in types:
                raise AssertionError('second TYPE for %s' % parts[2])
            types[parts[2]] = parts[3]
            continue
        if line.startswith('#'):
            raise AssertionError('stray comment %r' % line)
        m = METRIC_RX.match(line)
        if not m:
            raise AssertionError('bad sample line %r' % line)
        name, labels, value = m.group(1), m.group(2), m.group(3)
        family = name
        for suffix in ('_bucket', '_sum', '_count'):
            if name.endswith(suffix) and \
                    types.get(name[:-len(suffix)]) == 'histogram':
                family = name[:-len(suffix)]
        if family not in types or family not in helps:
            raise AssertionError('sample %r before its HELP/TYPE' % line)
        lab = []
        if labels:
            pos = 0
            while pos < len(labels):
                lm = LABEL_RX.match(labels, pos)
                if not lm:
                    raise AssertionError('bad labels in %r' % line)
                lab.append((lm.group(1), unescape_label(lm.group(2))))
                pos = lm.end()
        key = (name, frozenset(lab))
        if key in samples:
            raise AssertionError('duplicate sample %r' % line)
        samples[key] = float(value)
    # Parsers following OpenMetrics strip _total from counter names: no
    # two families may meet that way.
    seen = {}
    for name, typ in types.items():
        base = name[:-6] if typ == 'counter' and name.endswith('_total') \
            else name
        if base in seen:
            raise AssertionError('families %s and %s clash'
                                 % (seen[base], name))
        seen[base] = name
    for name, typ in types.items():
        if typ == 'counter' and not name.endswith('_total'):
            raise AssertionError('counter %s does not end in _total' % name)
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


# --------------------------------------------------------------------------


class AdminApiTest(AdminCase):
    """One memcached, one mcfault with a rule file and --admin PORT (the
    PORT-alone form, bound to 127.0.0.1). Each test sets the rules it
    needs first."""

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, RULES_FILE)

    def put_rules(self, text, want=200, query=''):
        return self.json('PUT', '/rules' + query, text.encode(), want)[1]

    def rules_doc(self):
        return self.json('GET', '/rules', want=200)[1]

    def test_health_all_reachable(self):
        st, doc = self.json('GET', '/health', want=200)
        self.assertIs(doc['ok'], True)
        self.assertEqual(doc['proxies'], [{
            'name': 'default',
            'listen': '127.0.0.1:%d' % self.mcfault.port,
            'upstream': '127.0.0.1:%d' % self.up.port, 'enabled': True,
            'upstream_reachable': True}])

    def test_get_rules_as_loaded(self):
        self.json('POST', '/reload', want=200)
        doc = self.rules_doc()
        self.assertEqual(len(doc['proxies']), 1)
        self.assertEqual(doc['proxies'][0]['name'], 'default')
        oom, slow = doc['proxies'][0]['rules']
        self.assertEqual(oom, {
            'name': 'oom', 'command': ['set'], 'key': ['oom:*'],
            'action': 'error',
            'message': 'SERVER_ERROR out of memory storing object',
            'probability': 1, 'after': 0, 'limit': 0, 'forward': False,
            'enabled': True, 'matched': oom['matched'],
            'fired': oom['fired'], 'in_force': True, 'next_change_ms': None})
        # Bytes outside printable ASCII come back as \u00XX escapes.
        self.assertEqual(slow, {
            'name': 'slow', 'command': ['get', 'mg'],
            'key': ['slow:*', 'q"\x01*'], 'action': 'delay',
            'delay_us': 5000, 'jitter_us': 2000, 'probability': 0.125,
            'after': 3, 'limit': 7, 'forward': True, 'enabled': False,
            'matched': 0, 'fired': 0, 'in_force': False,
            'next_change_ms': None})
        st, hdrs, data = http_req(self.admin, 'GET', '/rules')
        self.assertIn(b'"q\\"\\u0001*"', data)

    def test_put_then_fires_on_next_command(self):
        doc = self.put_rules('''rules:
  - name: put-err
    command: set
    key: "put:*"
    action: error
    message: SERVER_ERROR put works
''')
        self.assertEqual(doc, {'ok': True, 'rules': 1})
        self.assertEqual(cmd(self.mcfault.port, set_cmd('put:1')),
                         b'SERVER_ERROR put works\r\n')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('other:1')),
                         b'STORED\r\n')
        rules = self.rules_doc()['proxies'][0]['rules']
        self.assertEqual([r['name'] for r in rules], ['put-err'])
        self.assertEqual(rules[0]['fired'], 1)
        # JSON is YAML too.
        doc = self.put_rules(json.dumps({'rules': [
            {'name': 'j1', 'command': 'get', 'key': 'jm:*',
             'action': 'miss'},
            {'name': 'j2', 'command': ['set'], 'key': 'jerr:*',
             'action': 'error', 'message': 'SERVER_ERROR json'}]}))
        self.assertEqual(doc['rules'], 2)
        put(self.up.port, 'jm:1', 'there')
        self.assertEqual(cmd(self.mcfault.port, b'get jm:1\r\n', b'END\r\n'),
                         b'END\r\n')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('jerr:1')),
                         b'SERVER_ERROR json\r\n')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('put:2')),
                         b'STORED\r\n')

    def test_put_bad_bodies_keep_old_rules(self):
        self.put_rules('''rules:
  - {name: keep, command: set, key: "keep:*", action: error,
     message: SERVER_ERROR kept}
''')
        before = self.rules_doc()
        # A YAML syntax error: one problem, with line and column.
        st, doc = self.json('PUT', '/rules', b'rules:\n  - {name: x\n',
                            want=400)
        self.assertEqual(doc['error'], 'invalid rules')
        self.assertEqual(len(doc['problems']), 1, doc)
        self.assertRegex(doc['problems'][0], r'^body:\d+:\d+: ')
        # Schema errors: every one, at its line and column.
        st, doc = self.json('PUT', '/rules', b'''rules:
  - name: bad
    action: delay
    delya: 10ms
    probability: 2
''', want=400)
        got = sorted(doc['problems'])
        self.assertEqual(len(got), 3, doc)
        self.assertEqual(got[0],
                         "body:2:5: rule 'bad': action delay needs 'delay'")
        self.assertTrue(got[1].startswith(
            "body:4:5: unknown key 'delya' in rule"), doc)
        self.assertTrue(got[2].startswith(
            "body:5:18: 'probability' must be"), doc)
        # A document for a proxy that does not run.
        st, doc = self.json('PUT', '/rules', b'''proxies:
  - name: elsewhere
    listen: 127.0.0.1:1
    upstream: 127.0.0.1:2
''', want=400)
        self.assertIn("no running proxy 'elsewhere'", doc['problems'][0])
        # An empty body, an unknown ?proxy=.
        self.json('PUT', '/rules', b'', want=400)
        st, doc = self.json('PUT', '/rules?proxy=nope', b'rules: []\n',
                            want=404)
        self.assertIn('nope', doc['error'])
        # Bytes that are no text at all.
        self.json('PUT', '/rules', b'rules: [\xff\x00\xfe]\n', want=400)
        # Nothing changed: same table, and the old rule still fires.
        self.assertEqual(self.rules_doc(), before)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('keep:1')),
                         b'SERVER_ERROR kept\r\n')

    def test_put_body_too_large(self):
        before = self.rules_doc()
        s = socket.create_connection((harness.HOST, self.admin), timeout=5)
        try:
            # evhttp refuses on the announced length, before reading it.
            s.sendall(b'PUT /rules HTTP/1.1\r\nHost: x\r\n'
                      b'Content-Length: %d\r\n\r\nrules: []\n'
                      % (1024 * 1024 + 1))
            rep = harness.recv_until(s, None, timeout=5)
        finally:
            s.close()
        self.assertTrue(rep.data.startswith(b'HTTP/1.1 413 '), rep.data)
        self.assertEqual(self.rules_doc(), before)

    def test_enable_disable(self):
        self.put_rules('''rules:
  - {name: tog, command: set, key: "tog:*", action: error,
     message: SERVER_ERROR toggled}
  - {name: "odd/name x", command: set, key: "odd:*", action: error,
     message: SERVER_ERROR odd, enabled: false}
''')
        st, doc = self.json('POST', '/rules/tog/disable', want=200)
        self.assertEqual(doc, {'ok': True, 'changed': 1})
        self.assertEqual(cmd(self.mcfault.port, set_cmd('tog:1')),
                         b'STORED\r\n')
        rules = self.rules_doc()['proxies'][0]['rules']
        self.assertIs(rules[0]['enabled'], False)
        self.json('POST', '/rules/tog/enable', want=200)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('tog:1')),
                         b'SERVER_ERROR toggled\r\n')
        # Names are percent-decoded and may hold '/'.
        self.assertEqual(cmd(self.mcfault.port, set_cmd('odd:1')),
                         b'STORED\r\n')
        path = '/rules/%s/enable' % urllib.parse.quote('odd/name x', safe='')
        self.json('POST', path, want=200)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('odd:1')),
                         b'SERVER_ERROR odd\r\n')
        st, doc = self.json('POST', '/rules/nope/enable', want=404)
        self.assertIn("'nope'", doc['error'])
        st, hdrs, data = http_req(self.admin, 'GET', '/rules/tog/disable')
        self.assertEqual(st, 405)
        self.assertEqual(hdrs.get('allow'), 'POST')
        self.json('POST', '/rules/%00x/enable', want=400)
        # Still enabled after the refused requests.
        self.assertEqual(cmd(self.mcfault.port, set_cmd('tog:2')),
                         b'SERVER_ERROR toggled\r\n')

    def test_delete_rules(self):
        self.put_rules('''rules:
  - {name: del, command: set, key: "del:*", action: error,
     message: SERVER_ERROR not yet deleted}
''')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('del:1')),
                         b'SERVER_ERROR not yet deleted\r\n')
        st, doc = self.json('DELETE', '/rules?proxy=nope', want=404)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('del:1')),
                         b'SERVER_ERROR not yet deleted\r\n')
        st, doc = self.json('DELETE', '/rules', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 0})
        self.assertEqual(cmd(self.mcfault.port, set_cmd('del:1')),
                         b'STORED\r\n')
        self.assertEqual(self.rules_doc(),
                         {'proxies': [{'name': 'default', 'rules': []}]})
        self.json('DELETE', '/rules?proxy=default', want=200)

    def test_reload_good_then_bad_file(self):
        self.json('DELETE', '/rules', want=200)
        try:
            faultkit.replace_file(self.cfg, RULES_FILE_2)
            st, doc = self.json('POST', '/reload', want=200)
            self.assertEqual(doc, {'ok': True, 'rules': 1})
            self.assertEqual(cmd(self.mcfault.port, set_cmd('two:1')),
                             b'SERVER_ERROR from file two\r\n')
            faultkit.replace_file(self.cfg, RULES_FILE_BAD)
            st, doc = self.json('POST', '/reload', want=400)
            p = re.escape(self.cfg)
            self.assertEqual(len(doc['problems']), 2, doc)
            self.assertRegex(doc['problems'][0],
                             '^%s:4:5: unknown key .probabilty.' % p)
            self.assertRegex(doc['problems'][1],
                             "^%s:5:12: bad duration '10'" % p)
            self.assertEqual(cmd(self.mcfault.port, set_cmd('two:2')),
                             b'SERVER_ERROR from file two\r\n')
            st, hdrs, data = http_req(self.admin, 'GET', '/reload')
            self.assertEqual((st, hdrs.get('allow')), (405, 'POST'))
        finally:
            faultkit.replace_file(self.cfg, RULES_FILE)

    def stats_and_metrics(self):
        st, doc = self.json('GET', '/stats', want=200)
        st, hdrs, data = http_req(self.admin, 'GET', '/metrics')
        self.assertEqual(st, 200)
        self.assertTrue(hdrs['content-type'].startswith(
            'text/plain; version=0.0.4'), hdrs)
        samples, types = parse_metrics(data.decode('utf-8'))
        return doc, samples, types

    def test_stats_and_metrics_move_with_traffic(self):
        self.put_rules(r'''rules:
  - {name: st-err, command: set, key: "st:*", action: error,
     message: SERVER_ERROR stats}
  - {name: 'we"ird\name', command: get, key: "stw:*", action: miss}
''')
        s0, m0, types = self.stats_and_metrics()
        for field in ('connections_total', 'connections_now',
                      'client_bytes_in', 'client_bytes_out',
                      'upstream_bytes_out', 'upstream_bytes_in',
                      'upstream_errors', 'faults_total', 'reloads_ok',
                      'reloads_failed'):
            self.assertIsInstance(s0[field], int, field)
        self.assertEqual(s0['rules'], 2)
        self.assertRegex(s0['version'], r'^\d+\.\d+\.\d+')
        self.assertIsInstance(s0['uptime_seconds'], int)
        self.assertEqual(set(s0['faults']),
                         {'error', 'delay', 'drop', 'hang', 'miss',
                          'throttle', 'slice', 'truncate', 'corrupt',
                          'evict'})
        self.assertEqual(types['mcfault_commands_total'], 'counter')
        self.assertEqual(types['mcfault_connections'], 'gauge')

        s = harness.connect(self.mcfault.port)
        try:
            req = (b'get st:a\r\n' * 5 + set_cmd('st:1') + set_cmd('n:1') +
                   b'get stw:1\r\nmn\r\n')
            rep = harness.exchange(s, req, b'MN\r\n', timeout=5, drain=0)
            self.assertEqual(rep.data, b'END\r\n' * 5 +
                             b'SERVER_ERROR stats\r\nSTORED\r\nEND\r\nMN\r\n')
            s1, m1, _ = self.stats_and_metrics()
        finally:
            s.close()
        self.assertEqual(s1['commands'].get('get', 0) -
                         s0['commands'].get('get', 0), 6)
        self.assertEqual(s1['commands'].get('set', 0) -
                         s0['commands'].get('set', 0), 2)
        self.assertEqual(s1['faults']['error'] - s0['faults']['error'], 1)
        self.assertEqual(s1['faults']['miss'] - s0['faults']['miss'], 1)
        self.assertEqual(s1['faults_total'] - s0['faults_total'], 2)
        self.assertGreaterEqual(s1['connections_total'] -
                                s0['connections_total'], 1)
        self.assertGreater(s1['client_bytes_in'], s0['client_bytes_in'])
        self.assertGreater(s1['upstream_bytes_in'], s0['upstream_bytes_in'])
        px1 = s1['proxies'][0]
        self.assertEqual(px1['name'], 'default')
        self.assertGreaterEqual(px1['connections_now'], 1)
        self.assertEqual([(r['name'], r['matched'], r['fired'])
                          for r in px1['rules']],
                         [('st-err', 1, 1), ('we"ird\\name', 1, 1)])
        self.assertNotIn('gat', s1['commands'])  # zero: left out

        def delta(name, **labels):
            return metric(m1, name, **labels) - metric(m0, name, **labels)
        self.assertEqual(delta('mcfault_commands_total', command='get'), 6)
        self.assertEqual(delta('mcfault_commands_total', command='set'), 2)
        self.assertEqual(delta('mcfault_faults_total', action='error'), 1)
        self.assertEqual(delta('mcfault_faults_total', action='miss'), 1)
        self.assertEqual(delta('mcfault_faults_total', action='hang'), 0)
        self.assertEqual(metric(m1, 'mcfault_rule_fired_total',
                                proxy='default', rule='st-err'), 1)
        self.assertEqual(metric(m1, 'mcfault_rule_matched_total',
                                proxy='default', rule='we"ird\\name'), 1)
        self.assertEqual(metric(m1, 'mcfault_rule_enabled',
                                proxy='default', rule='st-err'), 1)
        self.assertGreaterEqual(metric(m1, 'mcfault_connections',
                                       proxy='default'), 1)
        self.assertGreaterEqual(
            delta('mcfault_connections_accepted_total', proxy='default'), 1)
        self.assertGreater(delta('mcfault_client_bytes_in_total'), 0)
        self.assertEqual(metric(m1, 'mcfault_rules'), 2)
        self.assertEqual(metric(m1, 'mcfault_reloads_ok_total'),
                         s1['reloads_ok'])
        st, hdrs, data = http_req(self.admin, 'GET', '/metrics')
        self.assertIn(b'rule="we\\"ird\\\\name"', data)

    def test_events_since(self):
        self.put_rules('''rules:
  - {name: ev, command: set, key: "ev:*", action: error,
     message: SERVER_ERROR event}
''')
        st, doc = self.json('GET', '/events', want=200)
        last = doc['last']
        self.assertEqual(len(doc['events']), min(last, 1024))
        for i in range(3):
            self.assertEqual(cmd(self.mcfault.port, set_cmd('ev:%d' % i)),
                             b'SERVER_ERROR event\r\n')
        st, doc = self.json('GET', '/events?since=%d' % last, want=200)
        self.assertEqual(doc['last'], last + 3)
        self.assertEqual([e['seq'] for e in doc['events']],
                         [last + 1, last + 2, last + 3])
        for i, e in enumerate(doc['events']):
            ev = e['event']
            self.assertEqual((ev['rule'], ev['action'], ev['command'],
                              ev['key'], ev['proxy'], ev['forward']),
                             ('ev', 'error', 'set', 'ev:%d' % i, 'default',
                              False))
        st, doc = self.json('GET', '/events?since=%d' % (last + 3), want=200)
        self.assertEqual(doc, {'last': last + 3, 'events': []})
        for bad in ('-1', 'abc', '1.5', '', '99999999999999999999999'):
            st, doc = self.json('GET', '/events?since=' + bad, want=400)

    def test_unknown_paths_and_methods(self):
        for path in ('/nope', '/index.html', '/rules/', '/rules/x',
                     '/health/x', '/rules/x/toggle'):
            st, doc = self.json('GET', path, want=404)
        cases = [('POST', '/', 'GET, HEAD'),
                 ('POST', '/health', 'GET, HEAD'),
                 ('DELETE', '/stats', 'GET, HEAD'),
                 ('PUT', '/metrics', 'GET, HEAD'),
                 ('POST', '/events', 'GET, HEAD'),
                 ('PATCH', '/rules', 'GET, HEAD, PUT, DELETE, POST'),
                 ('DELETE', '/reload', 'POST')]
        for method, path, allow in cases:
            st, hdrs, data = http_req(self.admin, method, path)
            self.assertEqual(st, 405, (method, path))
            self.assertEqual(hdrs.get('allow'), allow, (method, path))
            self.assertEqual(hdrs.get('content-type'), 'application/json')
            self.assertIn('error', json.loads(data))
        st, hdrs, data = http_req(self.admin, 'HEAD', '/stats')
        self.assertEqual((st, data), (200, b''))

    def test_keep_alive_connection_serves_many(self):
        c = http.client.HTTPConnection(harness.HOST, self.admin, timeout=5)
        try:
            for path in ('/stats', '/rules', '/nope', '/health', '/metrics'):
                c.request('GET', path)
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 404 if path == '/nope' else 200)
        finally:
            c.close()


class MultiMcfault(harness.Mcfault):
    """mcfault with a several-proxies file: no -l/-u; port is the first
    proxy's."""

    def command(self):
        return [harness.MCFAULT_BIN] + self.args


class AdminHealthTest(unittest.TestCase):

    def test_503_when_memcached_stops(self):
        up = harness.start_memcached_for_test(self)
        admin = harness.free_port()
        mcf = harness.start_mcfault_for_test(
            self, up.port, ['--admin', '127.0.0.1:%d' % admin])
        harness.wait_port(admin, 10, mcf.proc, 'admin API')
        st, doc = http_json(self, admin, 'GET', '/health', want=200)
        up.stop()
        st, doc = http_json(self, admin, 'GET', '/health', want=503)
        self.assertIs(doc['ok'], False)
        p = doc['proxies'][0]
        self.assertIs(p['upstream_reachable'], False)
        self.assertIn('refused', p['error'].lower())
        # Without a rule file there is nothing to reload.
        st, doc = http_json(self, admin, 'POST', '/reload', want=409)
        self.assertIn('no config file', doc['error'])
        up.start()
        st, doc = http_json(self, admin, 'GET', '/health', want=200)

    def test_slow_upstream_times_out_and_vanishing_clients(self):
        # An upstream whose accept queue is full: SYNs go unanswered.
        hole = socket.socket()
        self.addCleanup(hole.close)
        hole.bind((harness.HOST, 0))
        hole.listen(0)
        fillers = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(hole.getsockname())
            fillers.append(f)
        for f in fillers:
            self.addCleanup(f.close)
        up = harness.start_memcached_for_test(self)
        good_port, hole_port = harness.free_port(), harness.free_port()
        admin = harness.free_port()
        cfg = faultkit.write_file(self, '''proxies:
  - name: good
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
  - name: hole
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
    rules:
      - {name: h1, command: set, key: "h:*", action: error,
         message: SERVER_ERROR hole}
''' % (good_port, up.port, hole_port, hole.getsockname()[1]))
        mcf = MultiMcfault(up.port, ['-c', cfg, '--admin', str(admin)],
                           port=good_port)
        self.addCleanup(mcf.stop_and_check)
        mcf.start()
        harness.wait_port(admin, 10, mcf.proc, 'admin API')
        base_fds = faultkit.settled_fd_count(mcf.pid)

        t0 = time.monotonic()
        st, doc = http_json(self, admin, 'GET', '/health', want=503)
        took = time.monotonic() - t0
        self.assertTrue(0.8 <= took < 3.0, took)
        self.assertEqual([(p['name'], p['upstream_reachable'])
                          for p in doc['proxies']],
                         [('good', True), ('hole', False)])
        self.assertIn('1s', doc['proxies'][1]['error'])

        # While a check waits, the proxy and the rest of the API answer.
        waiting = http.client.HTTPConnection(harness.HOST, admin, timeout=5)
        self.addCleanup(waiting.close)
        waiting.request('GET', '/health')
        t0 = time.monotonic()
        self.assertEqual(cmd(good_port, set_cmd('k')), b'STORED\r\n')
        http_json(self, admin, 'GET', '/stats', want=200)
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual(waiting.getresponse().status, 503)
        waiting.close()

        # Clients that go away while their check waits: nothing leaks (the
        # sanitizer checks at exit), descriptors come back.
        for how in ('close', 'shutdown', 'reset'):
            s = socket.create_connection((harness.HOST, admin))
            s.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
            if how == 'shutdown':
                s.shutdown(socket.SHUT_WR)
                time.sleep(0.1)
            elif how == 'reset':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b'\x01\x00\x00\x00\x00\x00\x00\x00')
            s.close()
        time.sleep(1.3)
        self.assertEqual(faultkit.settled_fd_count(mcf.pid), base_fds)

        # Several proxies: ?proxy= picks one.
        st, doc = http_json(self, admin, 'GET', '/rules?proxy=hole',
                            want=200)
        self.assertEqual([p['name'] for p in doc['proxies']], ['hole'])
        st, doc = http_json(self, admin, 'PUT', '/rules',
                            b'rules: []\n', want=400)
        self.assertIn('?proxy=NAME', doc['problems'][0])
        st, doc = http_json(self, admin, 'PUT', '/rules?proxy=good',
                            b'listen: 127.0.0.1:1\nrules: []\n', want=400)
        self.assertIn("proxy 'good': the listen address changed",
                      doc['problems'][0])
        st, doc = http_json(self, admin, 'PUT', '/rules?proxy=good', b'''
rules:
  - {name: g1, command: set, key: "h:*", action: error,
     message: SERVER_ERROR good}
''', want=200)
        self.assertEqual(doc['rules'], 2)
        self.assertEqual(cmd(good_port, set_cmd('h:1')),
                         b'SERVER_ERROR good\r\n')
        st, doc = http_json(self, admin, 'DELETE', '/rules?proxy=good',
                            want=200)
        self.assertEqual(doc['rules'], 1)
        self.assertEqual(cmd(good_port, set_cmd('h:1')), b'STORED\r\n')
        st, doc = http_json(self, admin, 'GET', '/rules', want=200)
        self.assertEqual([(p['name'], [r['name'] for r in p['rules']])
                          for p in doc['proxies']],
                         [('good', []), ('hole', ['h1'])])

        # A check in flight when mcfault stops is cleaned up too.
        s = socket.create_connection((harness.HOST, admin))
        self.addCleanup(s.close)
        s.sendall(b'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
        time.sleep(0.1)


class AdminStartupTest(unittest.TestCase):

    def run_mcfault(self, up_port, admin_arg):
        port = harness.free_port()
        cmdline = [harness.MCFAULT_BIN, '-l', '127.0.0.1:%d' % port,
                   '-u', '127.0.0.1:%d' % up_port, '--admin', admin_arg]
        return subprocess.run(cmdline, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=15)

    def test_port_taken_refuses_to_start(self):
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind((harness.HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = self.run_mcfault(1, '127.0.0.1:%d' % port)
        err = r.stderr.decode()
        self.assertEqual(r.returncode, 1, err)
        self.assertIn('admin API: listen 127.0.0.1:%d: Address already in use'
                      % port, err)
        self.assertNotIn('Sanitizer', err)

    def test_bad_address_refuses_to_start(self):
        for arg in ('nonsense', '127.0.0.1:', '127.0.0.1:99999', ''):
            r = self.run_mcfault(1, arg)
            err = r.stderr.decode()
            self.assertEqual(r.returncode, 1, (arg, err))
            self.assertIn('admin API', err)
            self.assertNotIn('Sanitizer', err)


class AdminUnderLoadTest(unittest.TestCase):
    """The API shares the proxy's event loop; it must never hold traffic
    up or change what unrelated commands get."""

    NTHREADS = 4

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        self.admin = harness.free_port()
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['--admin', str(self.admin)])
        harness.wait_port(self.admin, 10, self.mcfault.proc, 'admin API')

    def load(self, t, stop, result):
        """Pipelined set/get/mg batches on load keys no rule targets; every
        reply checked exactly."""
        batches = 0
        last = {}
        try:
            s = harness.connect(self.mcfault.port)
            try:
                i = 0
                while not stop.is_set():
                    i += 1
                    req = bytearray()
                    want = bytearray()
                    for j in range(8):
                        k = b'load:%d:%d' % (t, j)
                        v = b'%d-%d-%d-' % (t, i, j) + b'x' * ((i + j) % 40)
                        req += set_cmd(k, v) + b'get ' + k + b'\r\n'
                        req += b'mg ' + k + b' v\r\n'
                        want += b'STORED\r\n'
                        want += b'VALUE %s 0 %d\r\n%s\r\nEND\r\n' % (
                            k, len(v), v)
                        want += b'VA %d\r\n%s\r\n' % (len(v), v)
                        last[k] = v
                    req += b'mn\r\n'
                    want += b'MN\r\n'
                    rep = harness.exchange(s, bytes(req), b'MN\r\n',
                                           timeout=10, drain=0)
                    if rep.data != bytes(want):
                        raise AssertionError(
                            'thread %d batch %d: %r\n%s' % (
                                t, i, rep, harness.describe_diff(
                                    bytes(want), rep.data)))
                    batches += 1
                    result['batches'] = batches
            finally:
                s.close()
        except BaseException as e:  # reported by the main thread
            result['error'] = e
        result['batches'] = batches
        result['last'] = last

    def test_rule_changes_under_pipelined_load(self):
        stop = threading.Event()
        results = [dict() for _ in range(self.NTHREADS)]
        threads = [threading.Thread(target=self.load,
                                    args=(t, stop, results[t]), daemon=True)
                   for t in range(self.NTHREADS)]
        for th in threads:
            th.start()
        port = self.mcfault.port
        try:
            time.sleep(0.2)
            for n in range(25):
                body = '''rules:
  - {name: adm-err, command: set, key: "adm:*", action: error,
     message: SERVER_ERROR gen %d}
  - {name: adm-miss, command: [get, mg], key: "adm:*", action: miss}
  - {name: adm-delay, command: [get, mg], key: "admd:*", action: delay,
     delay: 1ms}
  - {name: adm-drop, key: "admx:*", action: drop}
  - {name: adm-hang, key: "admh:*", action: hang}
''' % n
                st, doc = http_json(self, self.admin, 'PUT', '/rules',
                                    body.encode(), want=200)
                self.assertEqual(doc['rules'], 5)
                self.assertEqual(cmd(port, set_cmd('adm:%d' % n)),
                                 b'SERVER_ERROR gen %d\r\n' % n)
                http_json(self, self.admin, 'POST',
                          '/rules/adm-err/disable', want=200)
                self.assertEqual(cmd(port, set_cmd('adm:%d' % n)),
                                 b'STORED\r\n')
                self.assertEqual(cmd(port, b'get adm:%d\r\n' % n, b'END\r\n'),
                                 b'END\r\n')
                http_json(self, self.admin, 'POST',
                          '/rules/adm-err/enable', want=200)
                if n % 5 == 0:
                    for path in ('/stats', '/rules', '/events', '/health'):
                        http_json(self, self.admin, 'GET', path, want=200)
                    st, hdrs, data = http_req(self.admin, 'GET', '/metrics')
                    parse_metrics(data.decode())
                    http_json(self, self.admin, 'PUT', '/rules',
                              b'rules: [', want=400)
                http_json(self, self.admin, 'DELETE', '/rules', want=200)
                self.assertEqual(cmd(port, b'get adm:%d\r\n' % n, b'END\r\n'),
                                 b'VALUE adm:%d 0 1\r\nv\r\nEND\r\n' % n)
            busy = [r.get('batches', 0) for r in results]
        finally:
            stop.set()
            for th in threads:
                th.join(15)
        for t, r in enumerate(results):
            if 'error' in r:
                raise r['error']
            self.assertGreater(r['batches'], 5, 'thread %d barely ran' % t)
            for k, v in r['last'].items():
                self.assertEqual(get_value(self.up.port, k), v)
        self.assertTrue(all(b > 0 for b in busy), busy)

    def test_slow_admin_client_does_not_block_traffic(self):
        stalls = []
        half_line = socket.create_connection((harness.HOST, self.admin))
        self.addCleanup(half_line.close)
        half_line.sendall(b'GET /sta')
        half_headers = socket.create_connection((harness.HOST, self.admin))
        self.addCleanup(half_headers.close)
        half_headers.sendall(b'GET /stats HTTP/1.1\r\nHost: x\r\nX-A')
        half_body = socket.create_connection((harness.HOST, self.admin))
        self.addCleanup(half_body.close)
        half_body.sendall(b'PUT /rules HTTP/1.1\r\nHost: x\r\n'
                          b'Content-Length: 1000\r\n\r\nrules:\n')
        stalls.extend([half_line, half_headers, half_body])
        time.sleep(0.1)
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        t0 = time.monotonic()
        for i in range(200):
            s.sendall(set_cmd('slow:%d' % i, b'%d' % i) +
                      b'get slow:%d\r\n' % i)
            want = (b'STORED\r\nVALUE slow:%d 0 %d\r\n%d\r\nEND\r\n'
                    % (i, len(b'%d' % i), i))
            rep = harness.recv_until(s, want, timeout=2)
            self.assertEqual(rep.data, want)
        self.assertLess(time.monotonic() - t0, 5)
        # The API still answers others, and the stalled requests were not
        # applied or answered.
        st, doc = http_json(self, self.admin, 'GET', '/stats', want=200)
        self.assertEqual(doc['rules'], 0)
        for c in stalls:
            c.setblocking(False)
            try:
                data = c.recv(100)
                self.assertNotEqual(data, b'', 'stalled client was closed')
            except BlockingIOError:
                data = b''
            self.assertEqual(data, b'', 'stalled client was answered')


if __name__ == '__main__':
    unittest.main()

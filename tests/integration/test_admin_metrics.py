# GET /metrics' upstream latency histograms
# (mcfault_upstream_latency_seconds{command}) in the Prometheus text format
# 0.0.4, parsed strictly: HELP and TYPE, one series per command seen,
# cumulative buckets at the documented bounds, +Inf equal to _count, _sum in
# seconds; the same figures in GET /stats' upstream_latency; zeroed by POST
# /reset; a slow upstream landing in the right buckets. Also GET / (the
# dashboard, byte for byte src/dashboard.html) and HEAD on a keep-alive
# connection.

import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402

FAMILY = 'mcfault_upstream_latency_seconds'
# The documented bucket bounds (docs/admin-api.md), as /metrics writes them.
LE = ['0.0001', '0.0002', '0.0005', '0.001', '0.002', '0.005', '0.01',
      '0.02', '0.05', '0.1', '0.2', '0.5', '1', '2', '5', '+Inf']
LE_US = [100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
         200000, 500000, 1000000, 2000000, 5000000]
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                    'src', 'dashboard.html')

RULES = '''
rules:
  - name: oom
    command: set
    key: "oom:*"
    action: error
    message: SERVER_ERROR out of memory storing object
'''

# --------------------------------------------------------------------------
# Prometheus text exposition format 0.0.4, histograms included, strictly

NAME_RX = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
SAMPLE_RX = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RX = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                      r'(,|$)')
VALUE_RX = re.compile(r'^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?'
                      r'|[+-]Inf|NaN)$')
HIST_SUFFIXES = ('_bucket', '_sum', '_count')


def unescape_label(v):
    return re.sub(r'\\(.)', lambda m: {'n': '\n'}.get(m.group(1),
                                                      m.group(1)), v)


class Exposition:
    """A parsed /metrics reply: families {name: (type, help)}, samples
    [(name, {labels}, raw value string)] in order. Raises AssertionError on
    anything outside the format."""

    def __init__(self, text):
        self.families = {}
        self.samples = []
        if not text.endswith('\n'):
            raise AssertionError('exposition does not end in a newline')
        helps = {}
        current = None
        done = set()
        for line in text[:-1].split('\n'):
            if line.startswith('# HELP ') or line.startswith('# TYPE '):
                parts = line.split(' ', 3)
                if len(parts) != 4 or not NAME_RX.match(parts[2]):
                    raise AssertionError('bad comment line %r' % line)
                name = parts[2]
                if name in done:
                    raise AssertionError('%s declared again after its '
                                         'samples' % name)
                if current is not None and current != name:
                    done.add(current)
                current = name
                if parts[1] == 'HELP':
                    if name in helps:
                        raise AssertionError('second HELP for %s' % name)
                    helps[name] = parts[3]
                else:
                    if parts[3] not in ('counter', 'gauge', 'histogram'):
                        raise AssertionError('bad TYPE line %r' % line)
                    if name in self.families:
                        raise AssertionError('second TYPE for %s' % name)
                    self.families[name] = parts[3]
                continue
            if line.startswith('#') or line == '':
                raise AssertionError('stray line %r' % line)
            m = SAMPLE_RX.match(line)
            if not m or not VALUE_RX.match(m.group(3)):
                raise AssertionError('bad sample line %r' % line)
            name, labels, value = m.groups()
            family = name
            for suffix in HIST_SUFFIXES:
                base = name[:-len(suffix)]
                if name.endswith(suffix) and \
                        self.families.get(base) == 'histogram':
                    family = base
            if family != current or family not in self.families or \
                    family not in helps:
                raise AssertionError('sample %r outside its family' % line)
            if self.families[family] == 'histogram' and family == name:
                raise AssertionError('histogram sample without a suffix: %r'
                                     % line)
            lab = {}
            pos = 0
            while labels and pos < len(labels):
                lm = LABEL_RX.match(labels, pos)
                if not lm or lm.group(1) in lab:
                    raise AssertionError('bad labels in %r' % line)
                lab[lm.group(1)] = unescape_label(lm.group(2))
                pos = lm.end()
            self.samples.append((name, lab, value))
        for name in self.families:
            if name not in helps:
                raise AssertionError('no HELP for %s' % name)

    def histograms(self, family):
        """{command: {'le': [(le, count)], 'sum': str, 'count': int}} of a
        histogram family, checked: le ascending ending in +Inf, counts
        cumulative, +Inf == _count, _sum and _count once each."""
        out = {}
        for name, lab, value in self.samples:
            if not name.startswith(family):
                continue
            other = {k: v for k, v in lab.items() if k != 'le'}
            if list(other) != ['command']:
                raise AssertionError('labels %r' % lab)
            h = out.setdefault(other['command'],
                               {'le': [], 'sum': None, 'count': None})
            suffix = name[len(family):]
            if suffix == '_bucket':
                if h['sum'] is not None or h['count'] is not None:
                    raise AssertionError('bucket after _sum/_count')
                h['le'].append((lab['le'], int(value)))
            elif suffix == '_sum' and h['sum'] is None and 'le' not in lab:
                h['sum'] = value
            elif suffix == '_count' and h['count'] is None and \
                    'le' not in lab:
                h['count'] = int(value)
            else:
                raise AssertionError('unexpected %s%r' % (name, lab))
        for cmd, h in out.items():
            les = [le for le, _ in h['le']]
            counts = [c for _, c in h['le']]
            if les[-1] != '+Inf' or h['sum'] is None or h['count'] is None:
                raise AssertionError('%s: incomplete histogram %r' % (cmd, h))
            bounds = [float(le) for le in les[:-1]]
            if bounds != sorted(set(bounds)):
                raise AssertionError('%s: le not ascending: %r' % (cmd, les))
            if counts != sorted(counts):
                raise AssertionError('%s: buckets not cumulative: %r'
                                     % (cmd, counts))
            if counts[-1] != h['count']:
                raise AssertionError('%s: +Inf %d != _count %d'
                                     % (cmd, counts[-1], h['count']))
        return out


# --------------------------------------------------------------------------


def http_req(port, method, path, body=None, timeout=10):
    c = http.client.HTTPConnection(harness.HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def seconds(us):
    """us microseconds written as /metrics writes seconds: exact decimal,
    no trailing zeros."""
    whole, frac = divmod(us, 1000000)
    if frac == 0:
        return str(whole)
    return '%d.%s' % (whole, ('%06d' % frac).rstrip('0'))


def set_cmd(key, value=b'v'):
    return b'set %s 0 0 %d\r\n%s\r\n' % (key.encode(), len(value), value)


class MetricsBase(unittest.TestCase):

    def metrics(self):
        st, hdrs, data = http_req(self.admin, 'GET', '/metrics')
        self.assertEqual(st, 200)
        self.assertTrue(hdrs['content-type'].startswith(
            'text/plain; version=0.0.4'), hdrs)
        return Exposition(data.decode('utf-8'))

    def stats(self):
        st, hdrs, data = http_req(self.admin, 'GET', '/stats')
        self.assertEqual(st, 200)
        return json.loads(data)

    def reset(self):
        st, _, data = http_req(self.admin, 'POST', '/reset')
        self.assertEqual(st, 200, data)

    def send(self, data, tail):
        return faultkit.talk(self.mcfault.port, data, tail, timeout=10,
                             drain=0).data


class UpstreamLatencyTest(MetricsBase):
    """A real memcached behind mcfault with one error rule; every test
    starts from POST /reset."""

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, RULES)

    def setUp(self):
        self.reset()

    def test_declared_with_no_series_before_traffic(self):
        m = self.metrics()
        self.assertEqual(m.families[FAMILY], 'histogram')
        self.assertEqual(m.histograms(FAMILY), {})
        lat = self.stats()['upstream_latency']
        self.assertEqual(lat, {'le_us': LE_US, 'commands': {}})

    def test_one_series_per_command_seen(self):
        n = {'set': 12, 'get': 20, 'mg': 5, 'incr': 3}
        req = b''.join(set_cmd('lat:%d' % i) for i in range(n['set']))
        req += b''.join(b'get lat:%d\r\n' % (i % 15) for i in range(n['get']))
        req += b'mg lat:1 v\r\n' * n['mg']
        req += b'set ctr 0 0 1\r\n5\r\n' + b'incr ctr 1\r\n' * n['incr']
        n['set'] += 1
        rep = self.send(req + b'mn\r\n', b'MN\r\n')
        self.assertTrue(rep.endswith(b'8\r\nMN\r\n'), rep[-40:])
        # Faulted and never forwarded: no upstream round trip to count.
        rep = self.send(set_cmd('oom:1') + set_cmd('oom:2'),
                        b'storing object\r\n' * 2)
        self.assertEqual(rep, b'SERVER_ERROR out of memory storing '
                         b'object\r\n' * 2)

        h = self.metrics().histograms(FAMILY)
        self.assertEqual(sorted(h), sorted(list(n) + ['mn']))
        for cmd, want in n.items():
            self.assertEqual([le for le, _ in h[cmd]['le']], LE, cmd)
            self.assertEqual(h[cmd]['count'], want, cmd)
            self.assertRegex(h[cmd]['sum'], r'^\d+(\.\d*[1-9])?$', cmd)
            # A loopback round trip: well under a second each.
            self.assertLess(float(h[cmd]['sum']), want * 1.0, cmd)
        # The same figures in /stats, per bucket rather than cumulative.
        lat = self.stats()['upstream_latency']
        self.assertEqual(lat['le_us'], LE_US)
        self.assertEqual(sorted(lat['commands']), sorted(h))
        for cmd, s in lat['commands'].items():
            self.assertEqual(len(s['buckets']), len(LE))
            cum = [sum(s['buckets'][:i + 1]) for i in range(len(LE))]
            self.assertEqual(cum, [c for _, c in h[cmd]['le']], cmd)
            self.assertEqual(s['count'], h[cmd]['count'], cmd)
            self.assertEqual(seconds(s['sum_us']), h[cmd]['sum'], cmd)

    def test_reset_zeroes_the_histograms(self):
        self.send(set_cmd('r:1') + b'get r:1\r\n', b'END\r\n')
        self.assertIn('set', self.metrics().histograms(FAMILY))
        self.reset()
        self.assertEqual(self.metrics().histograms(FAMILY), {})
        self.assertEqual(self.stats()['upstream_latency']['commands'], {})

    def test_dashboard_page(self):
        st, hdrs, data = http_req(self.admin, 'GET', '/')
        self.assertEqual(st, 200)
        self.assertEqual(hdrs['content-type'], 'text/html; charset=utf-8')
        csp = hdrs['content-security-policy']
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        with open(PAGE, 'rb') as f:
            self.assertEqual(data, f.read())
        st, hdrs, data = http_req(self.admin, 'POST', '/')
        self.assertEqual((st, hdrs.get('allow')), (405, 'GET, HEAD'))

    def test_head_on_a_keep_alive_connection(self):
        # The body is not sent after a HEAD reply (it would be read as the
        # next reply); its length is.
        with open(PAGE, 'rb') as f:
            page_len = len(f.read())
        c = http.client.HTTPConnection(harness.HOST, self.admin, timeout=10)
        try:
            for method, path in (('HEAD', '/'), ('GET', '/stats'),
                                 ('HEAD', '/metrics'), ('HEAD', '/nope'),
                                 ('GET', '/health'), ('HEAD', '/stats'),
                                 ('GET', '/')):
                c.request(method, path)
                r = c.getresponse()
                body = r.read()
                if method == 'HEAD':
                    self.assertEqual(body, b'', path)
                    self.assertGreater(int(r.getheader('content-length')), 0)
                else:
                    self.assertEqual(int(r.getheader('content-length')),
                                     len(body), path)
                if path == '/':
                    self.assertEqual(int(r.getheader('content-length')),
                                     page_len)
                self.assertEqual(r.status, 404 if path == '/nope' else 200)
        finally:
            c.close()


class SlowUpstream:
    """A stand-in for memcached that answers `set` after delay seconds and
    everything else (get: END) at once, on 127.0.0.1:port."""

    def __init__(self, delay):
        self.delay = delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((harness.HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,),
                             daemon=True).start()

    def serve(self, c):
        buf = b''
        try:
            while True:
                eol = buf.find(b'\r\n')
                if eol < 0:
                    data = c.recv(65536)
                    if not data:
                        return
                    buf += data
                    continue
                words = buf[:eol].split()
                if words and words[0] == b'set':
                    end = eol + 2 + int(words[4]) + 2
                    while len(buf) < end:
                        data = c.recv(65536)
                        if not data:
                            return
                        buf += data
                    buf = buf[end:]
                    time.sleep(self.delay)
                    c.sendall(b'STORED\r\n')
                elif words and words[0] in (b'get', b'gets'):
                    buf = buf[eol + 2:]
                    c.sendall(b'END\r\n')
                else:
                    buf = buf[eol + 2:]
                    c.sendall(b'ERROR\r\n')
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.stopping = True
        self.sock.close()


class SlowUpstreamLatencyTest(MetricsBase):
    """mcfault in front of an upstream that takes 60 ms over each set:
    every set lands above the 50 ms bound."""

    DELAY = 0.06
    N = 8

    @classmethod
    def setUpClass(cls):
        cls.up = SlowUpstream(cls.DELAY)
        cls.addClassCleanup(cls.up.stop)
        cls.admin = harness.free_port()
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.up.port, ['--admin', str(cls.admin)])
        harness.wait_port(cls.admin, 10, cls.mcfault.proc, 'admin API')

    def test_slow_sets_land_in_the_slow_buckets(self):
        for i in range(self.N):
            self.assertEqual(self.send(set_cmd('s:%d' % i), b'\r\n'),
                             b'STORED\r\n')
        self.assertEqual(self.send(b'get s:1\r\n', b'END\r\n'), b'END\r\n')
        h = self.metrics().histograms(FAMILY)
        le = dict(h['set']['le'])
        # Nothing faster than the upstream's 60 ms: none at or under 50 ms
        # (the upper side depends on the machine's load).
        self.assertEqual(le['0.05'], 0, h['set'])
        self.assertEqual(le['+Inf'], self.N)
        self.assertGreaterEqual(float(h['set']['sum']), self.N * self.DELAY)
        # The gets were answered at once.
        self.assertEqual(h['get']['count'], 1)
        self.assertLess(float(h['get']['sum']), self.DELAY)


if __name__ == '__main__':
    unittest.main()

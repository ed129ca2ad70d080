# The admin API at its edges: a client that drips a request byte by byte
# is cut off at a hard deadline, admin connections are capped, names and
# keys that are UTF-8 stay UTF-8 in every JSON reply and event line, and a
# big PUT /rules is built off the event loop so proxied traffic does not
# stall while it is parsed.

import http.client
import json
import os
import select
import socket
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from test_admin import AdminCase, cmd, http_req, set_cmd  # noqa: E402

# src/admin.c: ADMIN_REQUEST_DEADLINE_S and ADMIN_CONNS_MAX.
DEADLINE_S = 10
CONNS_MAX = 64
# Slack for a loaded machine (sanitizer build, two shared cores).
MARGIN_S = 3
# A slowloris sends its next byte this often: well inside evhttp's idle
# timeout (10 s), so only the whole-request deadline can stop it.
DRIP_S = 1.0
# The longest a proxied get may wait while a 10,000-rule PUT is handled
# (see test_put_10000_rules_does_not_stall_traffic for what was measured).
STALL_BOUND_S = 0.25
NRULES_BIG = 10000


def big_rules(n, tag):
    """A rule document of n rules, two commands and two key globs each
    (~85 bytes a rule: 10,000 stay under the 1 MiB body limit); the last
    one answers keys '<tag>:hit'."""
    lines = ['rules:']
    for i in range(n - 1):
        lines.append('  - {name: %s%d, command: [get, mg], key: ["%s%d:*", '
                     '"*:%s%d"], action: miss}' % (tag, i, tag, i, tag, i))
    lines.append('  - {name: %s-last, command: set, key: "%s:hit", '
                 'action: error, message: SERVER_ERROR %s}' % (tag, tag, tag))
    return ('\n'.join(lines) + '\n').encode()


def read_by_server(sock):
    """True once every byte sent on sock was read by the process at the
    other end: our send queue and its receive queue (/proc/net/tcp) are
    empty. Then evhttp has seen the whole request."""
    ours = '0100007F:%04X' % sock.getsockname()[1]
    theirs = '0100007F:%04X' % sock.getpeername()[1]
    seen = False
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            p = line.split()
            tx, rx = (int(x, 16) for x in p[4].split(':'))
            if (p[1], p[2]) == (ours, theirs) and tx != 0:
                return False
            if (p[1], p[2]) == (theirs, ours):
                if rx != 0:
                    return False
                seen = True
    return seen


class Drip:
    """A connection that drips `drip` one byte at a time, DRIP_S apart
    (from `opened` on), noting when the server closed it."""

    def __init__(self, sock, drip, opened):
        self.sock = sock
        self.opened = opened
        self.drip = drip
        self.pos = 0
        self.next_at = opened + DRIP_S
        self.data = b''
        self.closed_at = None

    @classmethod
    def connect(cls, port, head, drip):
        """A new connection that sends head at once, then drips."""
        sock = socket.create_connection((harness.HOST, port))
        opened = time.monotonic()
        sock.sendall(head)
        return cls(sock, drip, opened)

    def step(self, now):
        """Sends the next byte when due (and the server has not closed)."""
        if self.closed_at is not None or now < self.next_at:
            return
        if self.pos < len(self.drip):
            try:
                self.sock.send(self.drip[self.pos:self.pos + 1])
            except OSError:
                pass
            self.pos += 1
        self.next_at = now + DRIP_S

    def readable(self):
        try:
            chunk = self.sock.recv(4096)
        except ConnectionResetError:
            chunk = b''
        if chunk:
            # A reply (408) may come just before the close; the close is
            # what is timed.
            self.data += chunk
            return
        self.closed_at = time.monotonic()


class AdminEdgesTest(AdminCase):

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        self.admin = harness.free_port()
        self.events = os.path.join(
            os.path.dirname(faultkit.write_file(self, '', 'unused')),
            'events.jsonl')
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port,
            ['--admin', str(self.admin), '--event-log', self.events])
        harness.wait_port(self.admin, 10, self.mcfault.proc, 'admin API')

    # ------------------------------------------------------------------
    # F: slowloris

    def test_slowloris_cut_off_at_deadline(self):
        """Three clients that never finish a request within the deadline,
        each sending a byte a second (so evhttp's idle timeout never
        fires): in the request line, in the body, and the second request
        of a keep-alive connection (its deadline starts when the first
        reply has gone). Each is closed within DEADLINE_S (+ MARGIN_S);
        meanwhile the API and the proxy answer as usual."""
        drips = [
            Drip.connect(self.admin, b'GET /stats HTTP/1.1\r\nHost: x\r\n'
                         b'X-Slow: ', b'a' * 100),
            Drip.connect(self.admin, b'PUT /rules HTTP/1.1\r\nHost: x\r\n'
                         b'Content-Length: 200\r\n\r\nrules:\n', b'#' * 200),
        ]
        keep = socket.create_connection((harness.HOST, self.admin))
        keep.sendall(b'GET /stats HTTP/1.1\r\nHost: x\r\n\r\n')
        first = harness.recv_until(keep, b'}\n', timeout=5)
        self.assertTrue(first.data.startswith(b'HTTP/1.1 200'), first)
        drips.append(Drip(keep, b'GET /stats HTTP/1.1\r\nHost: x\r\nX: ' +
                          b'b' * 100, time.monotonic()))
        for d in drips:
            self.addCleanup(d.sock.close)

        checked_midway = False
        give_up = time.monotonic() + DEADLINE_S + MARGIN_S + 5
        while time.monotonic() < give_up:
            open_ = [d for d in drips if d.closed_at is None]
            if not open_:
                break
            now = time.monotonic()
            for d in open_:
                d.step(now)
            r, _, _ = select.select([d.sock for d in open_], [], [], 0.05)
            for d in open_:
                if d.sock in r:
                    d.readable()
            if not checked_midway and now - drips[0].opened > DEADLINE_S / 2:
                # Mid-way: a normal request and proxied traffic still go.
                checked_midway = True
                st, doc = self.json('GET', '/stats', want=200)
                self.assertEqual(cmd(self.mcfault.port, set_cmd('sl:1')),
                                 b'STORED\r\n')
                for d in drips:
                    self.assertIsNone(d.closed_at,
                                      'closed before the deadline')
        self.assertTrue(checked_midway)
        for i, d in enumerate(drips):
            self.assertIsNotNone(
                d.closed_at, 'slow client %d still open after %.1fs (sent '
                '%d dripped bytes)' % (i, time.monotonic() - d.opened, d.pos))
            took = d.closed_at - d.opened
            self.assertGreaterEqual(took, DEADLINE_S - 1, (i, took))
            self.assertLess(took, DEADLINE_S + MARGIN_S, (i, took))
            if d.data:
                self.assertTrue(d.data.startswith(b'HTTP/1.1 408 '), d.data)
        # The half-sent PUT changed nothing; the API still answers.
        st, doc = self.json('GET', '/stats', want=200)
        self.assertEqual(doc['rules'], 0)

    def test_request_deadline_spares_slow_handlers(self):
        """The deadline runs from accept, or from the end of the previous
        reply, to a complete request: a keep-alive client that pauses
        between its requests (under the idle timeout) lives on past it."""
        c = http.client.HTTPConnection(harness.HOST, self.admin, timeout=5)
        self.addCleanup(c.close)
        for _ in range(3):
            c.request('GET', '/stats')
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            time.sleep(DEADLINE_S / 2 - 1)
        c.request('GET', '/rules')
        self.assertEqual(c.getresponse().status, 200)

    # ------------------------------------------------------------------
    # F: connection cap

    def test_connection_cap(self):
        extra = 8
        # A connection the server has not yet seen close (wait_port's probe
        # when the API started) would still count against the cap.
        self.assertEqual(harness.wait_for(
            lambda: harness.server_side_connections(self.admin) == 0), True,
            'earlier admin connections still open')
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        for _ in range(CONNS_MAX + extra):
            s = socket.create_connection((harness.HOST, self.admin),
                                         timeout=5)
            idle.append(s)
        # The extra ones are refused at once: a 503 or a close.
        deadline = time.monotonic() + 3
        refused = {}
        while time.monotonic() < deadline and len(refused) < extra:
            r, _, _ = select.select([s for s in idle if s not in refused],
                                    [], [], 0.1)
            for s in r:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b''
                refused[s] = refused.get(s, b'') + data
                if data:
                    # A 503 and then the close.
                    rest = harness.recv_until(s, None, timeout=2)
                    refused[s] += rest.data
                    self.assertTrue(rest.eof or rest.reset, rest)
        self.assertEqual(len(refused), extra,
                         '%d of %d admin connections refused (cap %d)'
                         % (len(refused), len(idle), CONNS_MAX))
        for s, data in refused.items():
            if data:
                self.assertTrue(data.startswith(b'HTTP/1.1 503 '), data)
                body = data.split(b'\r\n\r\n', 1)[1]
                self.assertIn('error', json.loads(body))
        kept = [s for s in idle if s not in refused]
        self.assertEqual(len(kept), CONNS_MAX)
        # The ones kept are untouched: one still gets its answer.
        kept[0].sendall(b'GET /stats HTTP/1.1\r\nHost: x\r\n\r\n')
        rep = harness.recv_until(kept[0], b'}\n', timeout=5)
        self.assertTrue(rep.data.startswith(b'HTTP/1.1 200 '), rep)
        # The proxy is not affected.
        self.assertEqual(cmd(self.mcfault.port, set_cmd('cap:1')),
                         b'STORED\r\n')
        # Once the idle ones close, a fresh request is served.
        for s in idle:
            s.close()

        def fresh_ok():
            try:
                return http_req(self.admin, 'GET', '/stats')[0] == 200
            except OSError:
                return False
        self.assertTrue(harness.wait_for(fresh_ok, 5, 0.1))
        st, doc = self.json('GET', '/rules', want=200)

    # ------------------------------------------------------------------
    # G: UTF-8 in JSON

    def test_utf8_round_trip(self):
        body = '''rules:
  - name: café
    command: set
    key: "clé:*"
    action: error
    message: SERVER_ERROR déjà vu
  - name: bytes
    command: set
    key: "raw:*"
    action: error
    message: SERVER_ERROR raw
'''.encode()
        self.json('PUT', '/rules', body, want=200)
        st, hdrs, data = http_req(self.admin, 'GET', '/rules')
        self.assertEqual(st, 200)
        # Valid UTF-8 is written as it is, not one \u00XX per byte.
        self.assertIn('"café"'.encode(), data)
        self.assertNotIn(b'\\u00c3', data)
        rules = json.loads(data.decode('utf-8'))['proxies'][0]['rules']
        self.assertEqual([(r['name'], r['key'], r.get('message'))
                          for r in rules],
                         [('café', ['clé:*'], 'SERVER_ERROR déjà vu'),
                          ('bytes', ['raw:*'], 'SERVER_ERROR raw')])
        # A name with UTF-8 is found by its percent-encoded form.
        path = '/rules/%s/disable' % urllib.parse.quote('café')
        st, doc = self.json('POST', path, want=200)
        self.assertEqual(doc, {'ok': True, 'changed': 1})
        self.json('POST', path.replace('disable', 'enable'), want=200)
        st, doc = self.json('POST', '/rules/caf%C3/enable', want=404)
        self.assertEqual(doc['error'], "no rule named 'caf\u00c3'")
        # Keys in events: valid UTF-8 kept, other bytes one \u00XX each
        # (read as Latin-1); every line is valid JSON in strict UTF-8.
        keys = ['clé:1'.encode(), b'raw:\xff\xc3(\xe2\x82',
                b'raw:\xed\xa0\x80', b'raw:\xc0\xaf\x80',
                b'raw:\xf0\x9f\x98\x80']
        for k in keys:
            self.assertEqual(cmd(self.mcfault.port, set_cmd(k)),
                             b'SERVER_ERROR ' +
                             (b'd\xc3\xa9j\xc3\xa0 vu' if k.startswith(b'cl')
                              else b'raw') + b'\r\n')
        events = faultkit.wait_events(self.events,
                                      lambda ev: len(ev) >= len(keys))
        self.assertEqual([(e['rule'], e['key']) for e in events], [
            ('café', 'clé:1'),
            ('bytes', 'raw:\u00ff\u00c3(\u00e2\u0082'),
            ('bytes', 'raw:\u00ed\u00a0\u0080'),
            ('bytes', 'raw:\u00c0\u00af\u0080'),
            ('bytes', 'raw:\U0001f600')])
        with open(self.events, 'rb') as f:
            raw = f.read()
        self.assertIn('"key":"clé:1"'.encode(), raw)
        self.assertIn(b'"key":"raw:\\u00ff\\u00c3(\\u00e2\\u0082"', raw)
        # GET /events carries the same objects.
        st, data_hdrs, data = http_req(self.admin, 'GET', '/events')
        doc = json.loads(data.decode('utf-8'))
        self.assertEqual([e['event']['key'] for e in doc['events']],
                         [e['key'] for e in events])

    # ------------------------------------------------------------------
    # G: a big PUT off the loop

    def test_put_10000_rules_does_not_stall_traffic(self):
        """A client runs gets through the proxy, one at a time, while
        10,000-rule documents are PUT (five times: the first into an
        empty table, then replacing 10,000 rules each time).

        - Between the moment mcfault has read a PUT whole and its answer
          (while the document is built), the client is answered, again
          and again: a loop busy building answers nobody then.
        - The longest wait between two replies while a PUT is handled,
          the least of the five, stays under STALL_BOUND_S (a stall of
          the loop shows in every PUT, a hiccup of a busy machine hardly
          in all five).

        Measured on the sanitizer build, two busy shared cores: building
        on the loop (as before) stalled 450-1,600 ms, with 0 or 1 reply
        during each build; off the loop, 18-160 ms (no more than with no
        PUT at all on that machine; up to 300 ms when it was very
        busy), with 1,400-35,000 replies per build."""
        harness.request(self.up.port, set_cmd('st:k', b'v'), b'STORED\r\n')
        stop = threading.Event()
        times = []
        errors = []

        def client():
            try:
                s = harness.connect(self.mcfault.port)
                want = b'VALUE st:k 0 1\r\nv\r\nEND\r\n'
                try:
                    while not stop.is_set():
                        s.sendall(b'get st:k\r\n')
                        rep = harness.recv_until(s, want, timeout=10)
                        if rep.data != want:
                            raise AssertionError(rep)
                        times.append(time.monotonic())
                finally:
                    s.close()
            except BaseException as e:
                errors.append(e)

        th = threading.Thread(target=client, daemon=True)
        th.start()
        worst = []
        served = []
        try:
            harness.wait_for(lambda: len(times) > 50, 5, 0.01)
            for tag in ('big1', 'big2', 'big3', 'big4', 'big5'):
                body = big_rules(NRULES_BIG, tag)
                self.assertLess(len(body), 1024 * 1024)
                s = socket.create_connection((harness.HOST, self.admin))
                self.addCleanup(s.close)
                t0 = time.monotonic()
                s.sendall(b'PUT /rules HTTP/1.1\r\nHost: x\r\n'
                          b'Content-Length: %d\r\n\r\n%s'
                          % (len(body), body))
                self.assertTrue(harness.wait_for(
                    lambda: read_by_server(s), 30, 0.002))
                t_read = time.monotonic()
                rep = harness.recv_until(s, b'}\n', timeout=60)
                t1 = time.monotonic()
                s.close()
                head, _, doc = rep.data.partition(b'\r\n\r\n')
                self.assertTrue(head.startswith(b'HTTP/1.1 200 '), rep)
                self.assertEqual(json.loads(doc),
                                 {'ok': True, 'rules': NRULES_BIG})
                harness.wait_for(lambda: times and times[-1] > t1 + 0.05, 2,
                                 0.01)
                # The replies just around the window bound its first and
                # last gap.
                before = [t for t in times if t < t0][-1:]
                after = [t for t in times if t > t1][:1]
                marks = before + [t for t in times if t0 <= t <= t1] + after
                gap = max(b - a for a, b in zip(marks, marks[1:]))
                n = len([t for t in times if t_read < t < t1])
                harness.log('PUT of %d rules: read whole after %.3fs, '
                            'answered after %.3fs; %d proxied replies in '
                            'between; longest gap %.1f ms'
                            % (NRULES_BIG, t_read - t0, t1 - t0, n,
                               gap * 1000))
                worst.append(gap)
                served.append(n)
                # The new table is in force.
                self.assertEqual(cmd(self.mcfault.port, set_cmd(tag + ':hit')),
                                 b'SERVER_ERROR %s\r\n' % tag.encode())
        finally:
            stop.set()
            th.join(15)
        if errors:
            raise errors[0]
        self.assertTrue(all(n >= 20 for n in served),
                        'proxied replies while a PUT was built: %r' % served)
        self.assertLess(min(worst), STALL_BOUND_S,
                        'proxied gets stalled %s ms during the PUTs'
                        % ', '.join('%.0f' % (w * 1000) for w in worst))
        self.assertEqual(cmd(self.mcfault.port, b'get big577:x\r\n',
                             b'END\r\n'), b'END\r\n')

    def test_rule_changes_apply_in_order(self):
        """A big PUT, then (before it is answered) on other connections a
        small PUT, a disable, a DELETE and another PUT: they apply in the
        order they arrived, whatever the time each takes to build."""
        body = big_rules(NRULES_BIG, 'ord')
        conns = []

        def send(method, path, data=b''):
            s = socket.create_connection((harness.HOST, self.admin),
                                         timeout=30)
            self.addCleanup(s.close)
            s.sendall(b'%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n'
                      b'\r\n%s' % (method, path, len(data), data))
            conns.append(s)
            # Wholly read by mcfault before the next one is sent.
            self.assertTrue(harness.wait_for(lambda: read_by_server(s), 10,
                                             0.005))
            return s

        send(b'PUT', b'/rules', body)
        send(b'PUT', b'/rules', b'rules:\n  - {name: small, command: set, '
             b'key: "o:*", action: error, message: SERVER_ERROR small}\n')
        send(b'POST', b'/rules/small/disable')
        send(b'DELETE', b'/rules')
        send(b'PUT', b'/rules', b'rules:\n  - {name: last, command: set, '
             b'key: "o:*", action: error, message: SERVER_ERROR last}\n')
        replies = []
        for s in conns:
            rep = harness.recv_until(s, b'}\n', timeout=30)
            head, _, body_ = rep.data.partition(b'\r\n\r\n')
            replies.append((head.split(b'\r\n')[0], json.loads(body_)))
        self.assertEqual(replies, [
            (b'HTTP/1.1 200 OK', {'ok': True, 'rules': NRULES_BIG}),
            (b'HTTP/1.1 200 OK', {'ok': True, 'rules': 1}),
            (b'HTTP/1.1 200 OK', {'ok': True, 'changed': 1}),
            (b'HTTP/1.1 200 OK', {'ok': True, 'rules': 0}),
            (b'HTTP/1.1 200 OK', {'ok': True, 'rules': 1})])
        st, doc = self.json('GET', '/rules', want=200)
        self.assertEqual([r['name'] for r in doc['proxies'][0]['rules']],
                         ['last'])
        self.assertEqual(cmd(self.mcfault.port, set_cmd('o:1')),
                         b'SERVER_ERROR last\r\n')

    def test_client_gone_while_put_builds(self):
        """Clients that send a big PUT and go away while it is built (a
        close, a reset): the API goes on, nothing leaks (the sanitizer
        checks at exit). A change that arrived whole is applied; the next
        change lands after it."""
        def stats():
            return self.json('GET', '/stats', want=200)[1]

        def send_and_leave(body, how):
            s = socket.create_connection((harness.HOST, self.admin))
            s.sendall(b'PUT /rules HTTP/1.1\r\nHost: x\r\n'
                      b'Content-Length: %d\r\n\r\n%s' % (len(body), body))
            self.assertTrue(harness.wait_for(lambda: read_by_server(s), 10,
                                             0.005))
            if how == 'reset':
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                             b'\x01\x00\x00\x00\x00\x00\x00\x00')
            s.close()

        ok0 = stats()['reloads_ok']
        send_and_leave(big_rules(NRULES_BIG, 'gone'), 'close')
        self.assertTrue(harness.wait_for(
            lambda: stats()['reloads_ok'] > ok0, 30, 0.1))
        self.assertEqual(stats()['rules'], NRULES_BIG)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('gone:hit')),
                         b'SERVER_ERROR gone\r\n')
        # The reset comes while the change is built (or queued): it is
        # applied, and the change sent next lands after it.
        send_and_leave(big_rules(NRULES_BIG, 'reset'), 'reset')
        st, doc = self.json('PUT', '/rules', b'rules:\n  - {name: after, '
                            b'command: set, key: "gone:*", action: error, '
                            b'message: SERVER_ERROR after}\n', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 1})
        self.assertEqual(stats()['reloads_ok'], ok0 + 3)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('gone:hit')),
                         b'SERVER_ERROR after\r\n')



if __name__ == '__main__':
    unittest.main()

# The admin API's issue-10 endpoints against a real memcached and a real
# mcfault: POST /rules (one rule, a list, {"rules": [...]}, YAML and JSON,
# appended after the rules in force, names unique), GET and DELETE
# /rules/NAME, POST /reset (the file's rules, every counter and the event
# ring back to a fresh start), POST /upstream/command (one command on a side
# connection, past the rules, binary-safe) and GET /upstream/stats.

import base64
import json
import os
import signal
import socket
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultkit  # noqa: E402
import harness  # noqa: E402
from faultkit import get_value, put  # noqa: E402
from test_admin import (AdminCase, MultiMcfault, cmd, http_req,  # noqa: E402
                        set_cmd)
from test_admin_edges import big_rules, read_by_server  # noqa: E402

RULES_FILE = '''rules:
  - name: file-err
    command: set
    key: "file:*"
    action: error
    message: SERVER_ERROR from the file
  - name: file-off
    command: get
    key: "off:*"
    action: miss
    enabled: false
'''

# The problems a rule with a misspelt key makes, at their line:col.
BAD_RULE = b'name: x\naction: delay\ndelya: 1s\n'
BAD_RULE_PROBLEMS = [
    "body:1:1: rule 'x': action delay needs 'delay'",
    "body:3:1: unknown key 'delya' in rule (known: name, command, key, "
    "action, message, delay, jitter, probability, after, limit, forward, "
    "enabled, close, rate, size, interval, keep, flips, client, connections, "
    "min_size, max_size, schedule)"]


def names(doc, proxy=0):
    return [r['name'] for r in doc['proxies'][proxy]['rules']]


class ApiCase(AdminCase):
    """Helpers shared by the classes below: self.admin is the API's port,
    self.mcfault the proxy, self.up its memcached."""

    def rules_doc(self):
        return self.json('GET', '/rules', want=200)[1]

    def upstream(self, body, want=200, query=''):
        """POST /upstream/command; the parsed reply."""
        if isinstance(body, str):
            body = body.encode()
        return self.json('POST', '/upstream/command' + query, body, want)[1]

    def reply_bytes(self, doc):
        """The reply of a 200 /upstream/command, checked for consistency:
        reply_base64 always, reply the same bytes as text when they are
        UTF-8, null otherwise."""
        self.assertIs(doc['ok'], True, doc)
        self.assertIsInstance(doc['elapsed_us'], int)
        self.assertGreaterEqual(doc['elapsed_us'], 0)
        raw = base64.b64decode(doc['reply_base64'], validate=True)
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError:
            text = None
        self.assertEqual(doc['reply'], text, doc)
        return raw


# --------------------------------------------------------------------------
# Rules: POST /rules, GET and DELETE /rules/NAME, POST /reset


class RulesEditTest(ApiCase):
    """One memcached, one mcfault with a rule file and the API. Each test
    starts from POST /reset: the file's two rules, counters at zero."""

    @classmethod
    def setUpClass(cls):
        faultkit.start_with_admin(cls, RULES_FILE)

    def setUp(self):
        self.json('POST', '/reset', want=200)

    def test_post_one_rule_yaml_appends_and_fires(self):
        # A counter of a rule in force before the POST is kept.
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:1')),
                         b'SERVER_ERROR from the file\r\n')
        st, doc = self.json('POST', '/rules', b'''name: posted
command: set
key: "post:*"
action: error
message: SERVER_ERROR posted
''', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 3, 'added': 1})
        rules = self.rules_doc()['proxies'][0]['rules']
        self.assertEqual([r['name'] for r in rules],
                         ['file-err', 'file-off', 'posted'])
        self.assertEqual((rules[0]['matched'], rules[0]['fired']), (1, 1))
        self.assertEqual(rules[1]['enabled'], False)
        self.assertEqual(rules[2], {
            'name': 'posted', 'command': ['set'], 'key': ['post:*'],
            'action': 'error', 'message': 'SERVER_ERROR posted',
            'probability': 1, 'after': 0, 'limit': 0, 'forward': False,
            'enabled': True, 'matched': 0, 'fired': 0, 'in_force': True,
            'next_change_ms': None})
        # In force on the next command, through a real client connection.
        self.assertEqual(cmd(self.mcfault.port, set_cmd('post:1')),
                         b'SERVER_ERROR posted\r\n')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('other:1')),
                         b'STORED\r\n')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:2')),
                         b'SERVER_ERROR from the file\r\n')

    def test_post_list_and_document_yaml_and_json(self):
        bodies = [
            # a list, JSON
            json.dumps([{'name': 'l1', 'command': 'set', 'key': 'l1:*',
                         'action': 'error', 'message': 'SERVER_ERROR l1'},
                        {'name': 'l2', 'command': 'get', 'key': 'l2:*',
                         'action': 'miss'}]),
            # a list, YAML
            '- {name: l3, command: set, key: "l3:*", action: error,\n'
            '   message: SERVER_ERROR l3}\n'
            '- name: l4\n  command: set\n  key: "l4:*"\n  action: error\n'
            '  message: SERVER_ERROR l4\n',
            # {"rules": [...]}, YAML
            'rules:\n  - {name: d1, command: set, key: "d1:*", '
            'action: error, message: SERVER_ERROR d1}\n',
            # {"rules": [...]}, JSON
            json.dumps({'rules': [{'name': 'd2', 'command': 'set',
                                   'key': 'd2:*', 'action': 'error',
                                   'message': 'SERVER_ERROR d2'}]}),
            # one rule, JSON
            json.dumps({'name': 'j1', 'command': 'set', 'key': 'j1:*',
                        'action': 'error', 'message': 'SERVER_ERROR j1'}),
        ]
        added = [2, 2, 1, 1, 1]
        total = 2
        for body, n in zip(bodies, added):
            total += n
            st, doc = self.json('POST', '/rules', body, want=200)
            self.assertEqual(doc, {'ok': True, 'rules': total, 'added': n})
        self.assertEqual(names(self.rules_doc()),
                         ['file-err', 'file-off', 'l1', 'l2', 'l3', 'l4',
                          'd1', 'd2', 'j1'])
        for tag in ('l1', 'l3', 'l4', 'd1', 'd2', 'j1'):
            self.assertEqual(cmd(self.mcfault.port, set_cmd(tag + ':k')),
                             b'SERVER_ERROR %s\r\n' % tag.encode())
        put(self.up.port, 'l2:k', 'there')
        self.assertEqual(cmd(self.mcfault.port, b'get l2:k\r\n', b'END\r\n'),
                         b'END\r\n')

    def test_post_unnamed_rule_numbered_after_those_in_force(self):
        st, doc = self.json('POST', '/rules', b'action: drop\n', want=200)
        self.assertEqual(names(self.rules_doc())[-1], 'rule-3')

    def test_post_duplicate_names_409_nothing_changes(self):
        before = self.rules_doc()
        # A name in force.
        st, doc = self.json('POST', '/rules',
                            b'{name: file-err, action: drop}', want=409)
        self.assertEqual(doc, {'error': 'duplicate rule name',
                               'problems': ["rule 'file-err' already "
                                            "exists"]})
        # Twice in the body.
        st, doc = self.json('POST', '/rules', b'- {name: twice, action: drop}'
                            b'\n- {name: twice, action: hang}\n', want=409)
        self.assertEqual(doc, {'error': 'duplicate rule name',
                               'problems': ["rule 'twice' is given twice "
                                            "in the body"]})
        # A new name beside a taken one: the new one is not added either.
        st, doc = self.json('POST', '/rules', json.dumps({'rules': [
            {'name': 'fresh', 'action': 'drop'},
            {'name': 'file-off', 'action': 'drop'}]}), want=409)
        self.assertEqual(doc['problems'], ["rule 'file-off' already exists"])
        self.assertEqual(self.rules_doc(), before)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('fresh:1')),
                         b'STORED\r\n')

    def test_post_bad_bodies_400_nothing_changes(self):
        before = self.rules_doc()
        st, doc = self.json('POST', '/rules', BAD_RULE, want=400)
        self.assertEqual(doc, {'error': 'invalid rules',
                               'problems': BAD_RULE_PROBLEMS})
        # In a list: the second rule's bad action, at its line and column.
        st, doc = self.json('POST', '/rules', b'- name: ok\n  action: drop\n'
                            b'- name: bad\n  action: nope\n', want=400)
        self.assertEqual(doc['problems'], [
            "body:4:11: 'action' must be one of error, delay, drop, hang, "
            "miss, throttle, slice, truncate, corrupt, evict, got 'nope'"])
        # A YAML syntax error.
        st, doc = self.json('POST', '/rules', b'- {name: x\n', want=400)
        self.assertEqual(len(doc['problems']), 1, doc)
        self.assertRegex(doc['problems'][0], r'^body:\d+:\d+: ')
        # The several-proxies form, a scalar, nothing but a comment.
        st, doc = self.json('POST', '/rules', b'proxies:\n  - {name: default, '
                            b'rules: [{name: p, action: drop}]}\n', want=400)
        self.assertEqual(doc['problems'][0],
                         "body:1:1: 'proxies' cannot be used here: rules are "
                         "added to one proxy (name it with ?proxy=NAME)")
        st, doc = self.json('POST', '/rules', b'drop\n', want=400)
        self.assertEqual(doc['problems'], ['body:1:1: expected a mapping'])
        self.json('POST', '/rules', b'# nothing\n', want=400)
        # An empty body, an unknown ?proxy=.
        st, doc = self.json('POST', '/rules', b'', want=400)
        self.assertIn('empty body', doc['error'])
        st, doc = self.json('POST', '/rules?proxy=nope',
                            b'{name: n, action: drop}', want=404)
        self.assertIn("'nope'", doc['error'])
        self.assertEqual(self.rules_doc(), before)

    def test_get_rule_by_name(self):
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:1')),
                         b'SERVER_ERROR from the file\r\n')
        listed = self.rules_doc()['proxies'][0]['rules'][0]
        st, doc = self.json('GET', '/rules/file-err', want=200)
        self.assertEqual(doc, dict(listed, proxy='default'))
        self.assertEqual(doc['fired'], 1)
        st, doc = self.json('GET', '/rules/file-err?proxy=default', want=200)
        self.assertEqual(doc['name'], 'file-err')
        st, doc = self.json('GET', '/rules/nope', want=404)
        self.assertEqual(doc, {'error': "no rule named 'nope'"})
        st, doc = self.json('GET', '/rules/file-err?proxy=nope', want=404)
        self.assertIn("'nope'", doc['error'])
        # HEAD as GET; POST is no method of /rules/NAME.
        st, hdrs, data = http_req(self.admin, 'HEAD', '/rules/file-err')
        self.assertEqual((st, data), (200, b''))
        st, doc = self.json('POST', '/rules/file-err', b'', want=405)

    def test_percent_encoded_names(self):
        odd = 'odd/name é?&'
        st, doc = self.json('POST', '/rules', json.dumps(
            {'name': odd, 'command': 'set', 'key': 'odd:*',
             'action': 'error', 'message': 'SERVER_ERROR odd'}), want=200)
        path = '/rules/' + urllib.parse.quote(odd, safe='')
        st, doc = self.json('GET', path, want=200)
        self.assertEqual((doc['name'], doc['proxy']), (odd, 'default'))
        # A rule named like the toggle paths is still a name.
        st, doc = self.json('POST', '/rules', b'{name: enable, '
                            b'key: "none:*", action: drop}', want=200)
        self.json('GET', '/rules/enable', want=200)
        st, doc = self.json('DELETE', path, want=200)
        self.assertEqual(doc, {'ok': True, 'removed': 1, 'rules': 3})
        self.json('GET', path, want=404)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('odd:1')),
                         b'STORED\r\n')

    def test_delete_rule_by_name(self):
        self.json('POST', '/rules', b'{name: gone, command: set, key: '
                  b'"gone:*", action: error, message: SERVER_ERROR gone}',
                  want=200)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('gone:1')),
                         b'SERVER_ERROR gone\r\n')
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:1')),
                         b'SERVER_ERROR from the file\r\n')
        st, doc = self.json('DELETE', '/rules/gone', want=200)
        self.assertEqual(doc, {'ok': True, 'removed': 1, 'rules': 2})
        self.assertEqual(names(self.rules_doc()), ['file-err', 'file-off'])
        self.assertEqual(cmd(self.mcfault.port, set_cmd('gone:2')),
                         b'STORED\r\n')
        # The others keep their counters and their place.
        st, doc = self.json('GET', '/rules/file-err', want=200)
        self.assertEqual((doc['matched'], doc['fired']), (1, 1))
        st, doc = self.json('DELETE', '/rules/gone', want=404)
        self.assertEqual(doc, {'error': "no rule named 'gone'"})
        self.json('DELETE', '/rules/file-err?proxy=nope', want=404)
        # The last rules of a proxy can go: traffic is forwarded untouched.
        self.json('DELETE', '/rules/file-err?proxy=default', want=200)
        st, doc = self.json('DELETE', '/rules/file-off', want=200)
        self.assertEqual(doc, {'ok': True, 'removed': 1, 'rules': 0})
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:2')),
                         b'STORED\r\n')

    def test_reset_is_a_fresh_start(self):
        # Traffic, faults, changes: counters move, the file's rules change.
        for i in range(3):
            self.assertEqual(cmd(self.mcfault.port, set_cmd('file:%d' % i)),
                             b'SERVER_ERROR from the file\r\n')
        self.json('POST', '/rules/file-err/disable', want=200)
        self.json('POST', '/rules/file-off/enable', want=200)
        self.json('POST', '/rules', b'{name: extra, action: drop}', want=200)
        self.json('PUT', '/rules', b'rules: [{name: bad, action: nope}]',
                  want=400)
        st, stats = self.json('GET', '/stats', want=200)
        self.assertGreater(stats['connections_total'], 0)
        self.assertGreater(stats['faults_total'], 0)
        self.assertGreater(stats['reloads_failed'], 0)
        st, ev = self.json('GET', '/events', want=200)
        self.assertGreaterEqual(ev['last'], 3)

        st, doc = self.json('POST', '/reset', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 2})
        rules = self.rules_doc()['proxies'][0]['rules']
        self.assertEqual([(r['name'], r['enabled'], r['matched'], r['fired'])
                          for r in rules],
                         [('file-err', True, 0, 0),
                          ('file-off', False, 0, 0)])
        st, stats = self.json('GET', '/stats', want=200)
        for field in ('connections_total', 'client_bytes_in',
                      'client_bytes_out', 'upstream_bytes_out',
                      'upstream_bytes_in', 'upstream_errors', 'faults_total',
                      'reloads_ok', 'reloads_failed'):
            self.assertEqual(stats[field], 0, field)
        self.assertEqual(stats['commands'], {})
        self.assertEqual(set(stats['faults'].values()), {0})
        self.assertEqual(stats['proxies'][0]['connections_total'], 0)
        self.assertEqual(self.json('GET', '/events', want=200)[1],
                         {'last': 0, 'events': []})
        # The file's rule fires again (it was disabled), and the events are
        # numbered from 1.
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:9')),
                         b'SERVER_ERROR from the file\r\n')
        st, ev = self.json('GET', '/events', want=200)
        self.assertEqual(ev['last'], 1)
        self.assertEqual([(e['seq'], e['event']['rule'], e['event']['key'])
                          for e in ev['events']], [(1, 'file-err', 'file:9')])
        st, stats = self.json('GET', '/stats', want=200)
        self.assertEqual((stats['connections_total'], stats['faults_total'],
                          stats['commands']), (1, 1, {'set': 1}))

    def test_reset_with_a_bad_file_resets_nothing(self):
        self.addCleanup(faultkit.replace_file, self.cfg, RULES_FILE)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('file:1')),
                         b'SERVER_ERROR from the file\r\n')
        self.json('POST', '/rules', b'{name: kept, action: drop, '
                  b'key: "kept:*"}', want=200)
        faultkit.replace_file(self.cfg, 'rules:\n  - name: b\n'
                              '    action: nope\n')
        before = self.rules_doc()
        st, stats0 = self.json('GET', '/stats', want=200)
        st, doc = self.json('POST', '/reset', want=400)
        self.assertEqual(doc['error'],
                         'the rule file has problems; nothing was reset')
        self.assertEqual(len(doc['problems']), 1, doc)
        self.assertTrue(doc['problems'][0].startswith(
            "%s:3:13: 'action' must be one of" % self.cfg), doc)
        self.assertEqual(self.rules_doc(), before)
        st, stats = self.json('GET', '/stats', want=200)
        self.assertEqual(stats['faults_total'], stats0['faults_total'])
        self.assertEqual(stats['connections_total'],
                         stats0['connections_total'])
        self.assertGreater(stats['faults_total'], 0)

    def test_edits_queue_in_arrival_order(self):
        """A big PUT, then (before it is answered) on other connections a
        POST, a DELETE /rules/NAME of a rule the PUT brings, a POST of a
        name the PUT brings, a reset and a last POST: each applies after
        the one before, whatever each takes to build."""
        conns = []

        def send(method, path, data=b''):
            s = socket.create_connection((harness.HOST, self.admin),
                                         timeout=30)
            self.addCleanup(s.close)
            s.sendall(b'%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n'
                      b'\r\n%s' % (method, path, len(data), data))
            conns.append(s)
            self.assertTrue(harness.wait_for(lambda: read_by_server(s), 10,
                                             0.005))

        n = 5000
        send(b'PUT', b'/rules', big_rules(n, 'q'))
        send(b'POST', b'/rules', b'{name: p1, command: set, key: "q:*", '
             b'action: error, message: SERVER_ERROR p1}')
        send(b'DELETE', b'/rules/q-last')
        send(b'POST', b'/rules', b'{name: q7, action: drop}')
        send(b'POST', b'/reset')
        send(b'POST', b'/rules', b'{name: p2, command: set, key: "q:*", '
             b'action: error, message: SERVER_ERROR p2}')
        replies = []
        for s in conns:
            rep = harness.recv_until(s, b'}\n', timeout=30)
            head, _, body = rep.data.partition(b'\r\n\r\n')
            replies.append((head.split(b'\r\n')[0].split(b' ')[1],
                            json.loads(body)))
        self.assertEqual(replies, [
            (b'200', {'ok': True, 'rules': n}),
            (b'200', {'ok': True, 'rules': n + 1, 'added': 1}),
            (b'200', {'ok': True, 'rules': n, 'removed': 1}),
            (b'409', {'error': 'duplicate rule name',
                      'problems': ["rule 'q7' already exists"]}),
            (b'200', {'ok': True, 'rules': 2}),
            (b'200', {'ok': True, 'rules': 3, 'added': 1})])
        self.assertEqual(names(self.rules_doc()),
                         ['file-err', 'file-off', 'p2'])
        self.assertEqual(cmd(self.mcfault.port, set_cmd('q:1')),
                         b'SERVER_ERROR p2\r\n')


class ResetWithoutFileTest(ApiCase):

    def test_reset_without_file_removes_every_rule(self):
        self.up = harness.start_memcached_for_test(self)
        self.admin = harness.free_port()
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['--admin', str(self.admin)])
        harness.wait_port(self.admin, 10, self.mcfault.proc, 'admin API')
        self.json('POST', '/rules', b'{name: r, command: set, key: "r:*", '
                  b'action: error, message: SERVER_ERROR r}', want=200)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('r:1')),
                         b'SERVER_ERROR r\r\n')
        st, doc = self.json('POST', '/reset', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 0})
        self.assertEqual(names(self.rules_doc()), [])
        st, stats = self.json('GET', '/stats', want=200)
        self.assertEqual((stats['faults_total'], stats['connections_total']),
                         (0, 0))
        self.assertEqual(self.json('GET', '/events', want=200)[1],
                         {'last': 0, 'events': []})
        self.assertEqual(cmd(self.mcfault.port, set_cmd('r:2')),
                         b'STORED\r\n')
        # Reload still says there is no file.
        self.json('POST', '/reload', want=409)


class EditRacesReloadTest(ApiCase):

    def test_sighup_while_post_builds(self):
        """A SIGHUP (not queued) that lands while a POST /rules is built
        from a copy of the rules in force: the POST is built again on top
        of the reloaded rules, so the reload is never undone. When the
        SIGHUP comes after the POST instead, the file's rules are all that
        is left. Either way never the old rules plus the posted ones."""
        self.up = harness.start_memcached_for_test(self)
        cfg = faultkit.write_file(self, 'rules:\n  - {name: f1, action: '
                                  'drop, key: "f1:*"}\n')
        self.admin = harness.free_port()
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['-c', cfg, '--admin', str(self.admin),
                                 '-v'])
        harness.wait_port(self.admin, 10, self.mcfault.proc, 'admin API')
        self.json('PUT', '/rules', big_rules(3000, 'a'), want=200)
        n = 9000
        # The same rules as a list (the body form a PUT does not take).
        body = big_rules(n, 'b').replace(b'rules:\n', b'').replace(
            b'  - {', b'- {')
        s = socket.create_connection((harness.HOST, self.admin), timeout=30)
        self.addCleanup(s.close)
        s.sendall(b'POST /rules HTTP/1.1\r\nHost: x\r\nContent-Length: %d'
                  b'\r\n\r\n%s' % (len(body), body))
        self.assertTrue(harness.wait_for(lambda: read_by_server(s), 10,
                                         0.001))
        os.kill(self.mcfault.pid, signal.SIGHUP)
        rep = harness.recv_until(s, b'}\n', timeout=30)
        doc = json.loads(rep.data.partition(b'\r\n\r\n')[2])
        self.assertEqual(doc['added'], n, doc)
        faultkit.wait_stderr(self.mcfault, r'reload: ok, 1 rule')
        got = names(self.rules_doc())
        if 'building it again' in self.mcfault.stderr_text():
            self.assertEqual(doc['rules'], 1 + n)
            self.assertEqual(got[0], 'f1')
            self.assertEqual(len(got), 1 + n)
            self.assertEqual(got[-1], 'b-last')
        else:
            self.assertEqual(doc['rules'], 3000 + n)
            self.assertEqual(got, ['f1'])


# --------------------------------------------------------------------------
# Upstream: POST /upstream/command, GET /upstream/stats


class UpstreamCommandTest(ApiCase):

    @classmethod
    def setUpClass(cls):
        cls.up = harness.start_memcached_for_class(cls)
        cls.admin = harness.free_port()
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.up.port, ['--admin', str(cls.admin)])
        harness.wait_port(cls.admin, 10, cls.mcfault.proc, 'admin API')

    def test_set_then_get_binary_value(self):
        value = b'\x00\xffz\r\n'
        doc = self.upstream(b'set bin 0 0 %d\r\n%s\r\n' % (len(value), value))
        self.assertEqual(self.reply_bytes(doc), b'STORED\r\n')
        self.assertEqual(doc['reply'], 'STORED\r\n')
        self.assertEqual(get_value(self.up.port, 'bin'), value)
        doc = self.upstream(b'get bin\r\n')
        self.assertIsNone(doc['reply'])
        self.assertEqual(self.reply_bytes(doc),
                         b'VALUE bin 0 5\r\n' + value + b'\r\nEND\r\n')
        # UTF-8 comes back as text as well.
        doc = self.upstream('set u 0 0 2\r\né\r\n'.encode())
        doc = self.upstream(b'get u\r\n')
        self.assertEqual(doc['reply'], 'VALUE u 0 2\r\né\r\nEND\r\n')

    def test_line_end_added_when_missing(self):
        doc = self.upstream(b'version')
        self.assertRegex(doc['reply'], r'^VERSION \S+\r\n$')
        doc = self.upstream(b'set crlf 0 0 2\r\nhi')
        self.assertEqual(doc['reply'], 'STORED\r\n')
        self.assertEqual(get_value(self.up.port, 'crlf'), b'hi')
        doc = self.upstream(b'set cr 0 0 2\r\nhi\r')
        self.assertEqual(doc['reply'], 'STORED\r\n')
        self.assertEqual(get_value(self.up.port, 'cr'), b'hi')
        doc = self.upstream(b'get cr\r')
        self.assertEqual(doc['reply'], 'VALUE cr 0 2\r\nhi\r\nEND\r\n')

    def test_noreply_and_quiet_commands(self):
        doc = self.upstream(b'set nr 0 0 3 noreply\r\nabc\r\n')
        self.assertEqual((doc['reply'], doc['reply_base64']), ('', ''))
        self.assertEqual(get_value(self.up.port, 'nr'), b'abc')
        doc = self.upstream(b'ms mq 2 q\r\nhi\r\n')
        self.assertEqual(self.reply_bytes(doc), b'')
        self.assertEqual(get_value(self.up.port, 'mq'), b'hi')
        doc = self.upstream(b'delete nr noreply\r\n')
        self.assertEqual(self.reply_bytes(doc), b'')
        self.assertIsNone(get_value(self.up.port, 'nr'))
        # A quiet hit answers, a quiet miss does not.
        doc = self.upstream(b'mg mq v q\r\n')
        self.assertEqual(self.reply_bytes(doc), b'VA 2\r\nhi\r\n')
        doc = self.upstream(b'mg absent v q\r\n')
        self.assertEqual(self.reply_bytes(doc), b'')
        # An error before the MN is the reply.
        doc = self.upstream(b'ma mq q\r\n')
        self.assertEqual(self.reply_bytes(doc),
                         b'CLIENT_ERROR cannot increment or decrement '
                         b'non-numeric value\r\n')

    def test_unknown_command_gets_error_at_once(self):
        doc = self.upstream(b'no_such_command a b\r\n')
        self.assertEqual(self.reply_bytes(doc), b'ERROR\r\n')

    def test_meta_commands(self):
        cases = [
            (b'ms mk 2 T0\r\nhi\r\n', b'HD\r\n'),
            (b'mg mk v\r\n', b'VA 2\r\nhi\r\n'),
            (b'mg mk s v t\r\n', b'VA 2 s2 t-1\r\nhi\r\n'),
            (b'mg mk k v Oab\r\n', b'VA 2 kmk Oab\r\nhi\r\n'),
            (b'ma mk\r\n', b'CLIENT_ERROR cannot increment or decrement '
             b'non-numeric value\r\n'),
            (b'mn\r\n', b'MN\r\n'),
            (b'md mk\r\n', b'HD\r\n'),
            (b'mg mk v\r\n', b'EN\r\n'),
        ]
        for body, want in cases:
            self.assertEqual(self.reply_bytes(self.upstream(body)), want,
                             body)

    def test_multi_line_replies(self):
        put(self.up.port, 'm1', 'one')
        put(self.up.port, 'm2', 'two')
        doc = self.upstream(b'gets m1 m2 m3\r\n')
        raw = self.reply_bytes(doc)
        self.assertRegex(raw, rb'^VALUE m1 0 3 \d+\r\none\r\n'
                              rb'VALUE m2 0 3 \d+\r\ntwo\r\nEND\r\n$')
        doc = self.upstream(b'stats settings\r\n')
        raw = self.reply_bytes(doc)
        self.assertIn(b'STAT tcpport %d\r\n' % self.up.port, raw)
        self.assertTrue(raw.endswith(b'END\r\n'))

    def test_rules_do_not_touch_it(self):
        self.json('PUT', '/rules', b'rules:\n  - {name: all, action: error, '
                  b'message: SERVER_ERROR faulted}\n', want=200)
        self.addCleanup(self.json, 'DELETE', '/rules', None, 200)
        self.assertEqual(cmd(self.mcfault.port, set_cmd('rk')),
                         b'SERVER_ERROR faulted\r\n')
        doc = self.upstream(set_cmd('rk', b'direct'))
        self.assertEqual(doc['reply'], 'STORED\r\n')
        doc = self.upstream(b'get rk\r\n')
        self.assertEqual(doc['reply'], 'VALUE rk 0 6\r\ndirect\r\nEND\r\n')
        st, doc = self.json('GET', '/rules/all', want=200)
        self.assertEqual((doc['matched'], doc['fired']), (1, 1))

    def test_bad_bodies_400(self):
        bad = [
            (b'', 'empty body'),
            (b'get a\r\nget b\r\n', 'more than one command'),
            (b'get a\r\nget b', 'more than one command'),
            (b'get a\r\n\r\n', 'more than one command'),
            (b'set short 0 0 5\r\nhi\r\n', 'shorter'),
            (b'set short 0 0 5\r\n', 'shorter'),
            (b'set short 0 0 1\r\nhello\r\n', 'not as long'),
            # The \r\n ends the block: 3 bytes where 5 were announced.
            (b'set short 0 0 5\r\nhel\r\n', 'shorter'),
            (b'ms short 5\r\nhi\r\n', 'shorter'),
            (b'\x80\x0a\x00\x00', 'binary protocol'),
        ]
        for body, why in bad:
            st, doc = self.json('POST', '/upstream/command', body, want=400)
            self.assertIn(why, doc['error'], body)
        self.assertIsNone(get_value(self.up.port, 'short'))
        for t in ('0', 'abc', '600001', '', '-5', '1.5'):
            st, doc = self.json('POST', '/upstream/command?timeout_ms=' + t,
                                b'version\r\n', want=400)
            self.assertIn('timeout_ms', doc['error'])
        self.upstream(b'version\r\n', query='?timeout_ms=600000')
        st, doc = self.json('POST', '/upstream/command?proxy=nope',
                            b'version\r\n', want=404)
        st, doc = self.json('GET', '/upstream/command', want=405)

    def test_stats_general(self):
        st, doc = self.json('GET', '/upstream/stats', want=200)
        self.assertIs(doc['ok'], True)
        stats = doc['stats']
        direct = self.up.stats()
        for field in ('pid', 'version', 'pointer_size', 'max_connections',
                      'threads'):
            self.assertEqual(stats[field], direct[field], field)
        self.assertTrue(all(isinstance(v, str) for v in stats.values()))
        self.assertEqual(int(stats['pid']), self.up.pid)

    def test_stats_subs(self):
        put(self.up.port, 'sub:1', 'x')
        st, doc = self.json('GET', '/upstream/stats?sub=settings', want=200)
        self.assertEqual(doc['stats']['tcpport'], str(self.up.port))
        self.assertEqual(doc['stats']['domain_socket'], 'NULL')
        st, doc = self.json('GET', '/upstream/stats?sub=items', want=200)
        self.assertTrue(any(k.startswith('items:') and k.endswith(':number')
                            for k in doc['stats']), doc)
        st, doc = self.json('GET', '/upstream/stats?sub=slabs', want=200)
        self.assertIn('active_slabs', doc['stats'])
        st, doc = self.json('GET', '/upstream/stats?sub=conns', want=200)
        self.assertTrue(any(k.endswith(':addr') for k in doc['stats']), doc)
        st, doc = self.json('GET', '/upstream/stats?sub=sizes', want=200)
        self.assertIsInstance(doc['stats'], dict)
        for sub in ('detail', 'cachedump', '', 'ITEMS', 'items x'):
            st, doc = self.json('GET', '/upstream/stats?sub=' +
                                urllib.parse.quote(sub), want=400)
            self.assertIn("'sub'", doc['error'])
        st, doc = self.json('POST', '/upstream/stats', want=405)


class UpstreamDownTest(ApiCase):
    """A memcached of each test's own, stopped or frozen."""

    def setUp(self):
        self.up = harness.start_memcached_for_test(self)
        self.admin = harness.free_port()
        self.mcfault = harness.start_mcfault_for_test(
            self, self.up.port, ['--admin', str(self.admin)])
        harness.wait_port(self.admin, 10, self.mcfault.proc, 'admin API')

    def test_dead_upstream_502(self):
        self.upstream(b'version\r\n')
        self.up.stop()
        doc = self.upstream(b'version\r\n', want=502)
        self.assertEqual(doc, {'error': 'upstream: Connection refused'})
        st, doc = self.json('GET', '/upstream/stats', want=502)
        self.assertEqual(doc, {'error': 'upstream: Connection refused'})
        self.up.start()
        self.upstream(b'version\r\n')

    def test_frozen_upstream_504(self):
        self.addCleanup(os.kill, self.up.pid, signal.SIGCONT)
        harness.stop_process(self.up.pid)
        doc = self.upstream(b'get k\r\n', want=504, query='?timeout_ms=300')
        self.assertEqual(doc, {'error': 'upstream: timeout'})
        st, doc = self.json('GET', '/upstream/stats?timeout_ms=300&sub=items',
                            want=504)
        self.assertEqual(doc, {'error': 'upstream: timeout'})
        # A client that leaves while its command waits: the side
        # connection ends at the timeout, nothing leaks (the sanitizer
        # checks at exit).
        base_fds = faultkit.settled_fd_count(self.mcfault.pid)
        s = socket.create_connection((harness.HOST, self.admin))
        body = b'version\r\n'
        s.sendall(b'POST /upstream/command?timeout_ms=200 HTTP/1.1\r\n'
                  b'Host: x\r\nContent-Length: %d\r\n\r\n%s'
                  % (len(body), body))
        self.assertTrue(harness.wait_for(lambda: read_by_server(s), 10,
                                         0.005))
        s.close()
        self.assertEqual(faultkit.wait_fds(self.mcfault.pid, base_fds, 10),
                         base_fds)
        os.kill(self.up.pid, signal.SIGCONT)
        doc = self.upstream(b'version\r\n')
        self.assertTrue(doc['reply'].startswith('VERSION '))


class SeveralProxiesTest(ApiCase):
    """Two proxies, each with a memcached of its own: ?proxy=NAME says
    which one, and is needed."""

    def test_proxy_parameter(self):
        up_a = harness.start_memcached_for_test(self)
        up_b = harness.start_memcached_for_test(self)
        pa, pb = harness.free_port(), harness.free_port()
        self.admin = harness.free_port()
        cfg = faultkit.write_file(self, '''proxies:
  - name: a
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
    rules:
      - {name: both, command: set, key: "both:*", action: error,
         message: SERVER_ERROR a}
  - name: b
    listen: 127.0.0.1:%d
    upstream: 127.0.0.1:%d
    rules:
      - {name: both, command: set, key: "both:*", action: error,
         message: SERVER_ERROR b}
''' % (pa, up_a.port, pb, up_b.port))
        mcf = MultiMcfault(up_a.port, ['-c', cfg, '--admin', str(self.admin)],
                           port=pa)
        self.addCleanup(mcf.stop_and_check)
        mcf.start()
        harness.wait_port(self.admin, 10, mcf.proc, 'admin API')

        st, doc = self.json('POST', '/upstream/command', b'version\r\n',
                            want=400)
        self.assertIn('?proxy=NAME', doc['error'])
        self.json('GET', '/upstream/stats', want=400)
        doc = self.upstream(set_cmd('where', b'b'), query='?proxy=b')
        self.assertEqual(doc['reply'], 'STORED\r\n')
        self.assertEqual(get_value(up_b.port, 'where'), b'b')
        self.assertIsNone(get_value(up_a.port, 'where'))
        st, doc = self.json('GET', '/upstream/stats?proxy=a', want=200)
        self.assertEqual(doc['stats']['pid'], str(up_a.pid))

        st, doc = self.json('POST', '/rules', b'{name: x, action: drop}',
                            want=400)
        self.assertIn('?proxy=NAME', doc['error'])
        st, doc = self.json('POST', '/rules?proxy=b', b'{name: x, command: '
                            b'set, key: "x:*", action: error, '
                            b'message: SERVER_ERROR bx}', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 3, 'added': 1})
        self.assertEqual(cmd(pb, set_cmd('x:1')), b'SERVER_ERROR bx\r\n')
        self.assertEqual(cmd(pa, set_cmd('x:1')), b'STORED\r\n')
        st, doc = self.json('GET', '/rules/x', want=200)
        self.assertEqual(doc['proxy'], 'b')
        st, doc = self.json('GET', '/rules/both?proxy=b', want=200)
        self.assertEqual((doc['proxy'], doc['message']),
                         ('b', 'SERVER_ERROR b'))
        st, doc = self.json('GET', '/rules/both', want=200)
        self.assertEqual(doc['proxy'], 'a')
        # DELETE without ?proxy: from every proxy that has it.
        st, doc = self.json('DELETE', '/rules/both', want=200)
        self.assertEqual(doc, {'ok': True, 'removed': 2, 'rules': 1})
        self.assertEqual(cmd(pa, set_cmd('both:1')), b'STORED\r\n')
        self.assertEqual(cmd(pb, set_cmd('both:1')), b'STORED\r\n')
        # Reset brings both back, in both proxies.
        st, doc = self.json('POST', '/reset', want=200)
        self.assertEqual(doc, {'ok': True, 'rules': 2})
        self.assertEqual(cmd(pb, set_cmd('both:2')), b'SERVER_ERROR b\r\n')
        self.assertEqual(cmd(pb, set_cmd('x:2')), b'STORED\r\n')


if __name__ == '__main__':
    unittest.main()

# Lifecycle: configuration from the environment (and what wins over what),
# --health, graceful SIGTERM with delayed commands in flight, SIGUSR1
# reopening the event log, refusing to start on a taken port.

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import HOST, MCFAULT_BIN  # noqa: E402


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)


class EnvMcfault(harness.Mcfault):
    """mcfault started with a chosen environment and argument list (no -l/-u
    added unless given)."""

    def __init__(self, port, argv, env):
        super().__init__(0, port=port)
        self.argv = argv
        self.env = env

    def command(self):
        return [MCFAULT_BIN] + self.argv

    def start(self, timeout=15.0):
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            return super().start(timeout)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def set_get(port, key, value=b'v'):
    s = harness.connect(port)
    try:
        s.sendall(b'set %s 0 0 %d\r\n%s\r\nget %s\r\n'
                  % (key, len(value), value, key))
        return harness.recv_until(s, b'END\r\n').data
    finally:
        s.close()


class LifecycleTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        cls.tmp = tempfile.mkdtemp(prefix='mcfault-life-')

    def rules_file(self, name, text):
        path = os.path.join(self.tmp, name)
        write(path, text)
        return path

    def test_environment_configures_and_flags_win(self):
        rules = self.rules_file('env.yaml', (
            'listen: 127.0.0.1:1\nupstream: 127.0.0.1:1\nrules:\n'
            '  - {name: e, key: "env:*", action: error, '
            'message: SERVER_ERROR from env}\n'))
        port = harness.free_port()
        env = {'MCFAULT_LISTEN': '%s:%d' % (HOST, port),
               'MCFAULT_UPSTREAM': '%s:%d' % (HOST, self.mc.port),
               'MCFAULT_CONFIG': rules}
        p = EnvMcfault(port, [], env)
        self.addCleanup(p.stop_and_check)
        p.start()
        # The environment beat the file's addresses, and loaded its rules.
        self.assertEqual(set_get(port, b'plain'),
                         b'STORED\r\nVALUE plain 0 1\r\nv\r\nEND\r\n')
        s = harness.connect(port)
        s.sendall(b'get env:1\r\n')
        self.assertEqual(harness.recv_until(s, b'\r\n').data,
                         b'SERVER_ERROR from env\r\n')
        s.close()

        # A flag beats the environment: -l moves the listener.
        port2 = harness.free_port()
        p2 = EnvMcfault(port2, ['-l', '%s:%d' % (HOST, port2)],
                        dict(env, MCFAULT_LISTEN='%s:%d'
                             % (HOST, harness.free_port())))
        self.addCleanup(p2.stop_and_check)
        p2.start()
        self.assertEqual(set_get(port2, b'plain2'),
                         b'STORED\r\nVALUE plain2 0 1\r\nv\r\nEND\r\n')

    def test_health(self):
        mc = harness.start_memcached_for_test(self)
        p = harness.start_mcfault_for_test(self, mc.port)
        addr = '%s:%d' % (HOST, p.port)
        r = subprocess.run([MCFAULT_BIN, '--health', addr],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b'VERSION', r.stdout)
        # Upstream down: mcfault answers the connection but cannot reach
        # memcached, so the check fails.
        mc.stop()
        r = subprocess.run([MCFAULT_BIN, '--health', addr],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 1, r.stdout)
        # Nothing listening at all.
        r = subprocess.run([MCFAULT_BIN, '--health',
                            '%s:%d' % (HOST, harness.free_port())],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b'refused', r.stderr)

    def test_health_ignores_rules(self):
        # A rule that drops every command must not make the health check
        # fail: the probe goes past the rules (and the rule still fires
        # for a real client).
        rules = self.rules_file('dropall.yaml', (
            'rules:\n  - {name: cache-partitioned, action: drop}\n'))
        p = harness.start_mcfault_for_test(self, self.mc.port, ['-c', rules])
        r = subprocess.run([MCFAULT_BIN, '--health', '%s:%d' % (HOST, p.port)],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = harness.connect(p.port)
        s.sendall(b'version\r\n')
        rep = harness.recv_until(s, b'\r\n', timeout=5)
        s.close()
        self.assertTrue(rep.eof and rep.data == b'', rep)

    def test_sigterm_lets_delayed_commands_finish(self):
        rules = self.rules_file('slow.yaml', (
            'rules:\n  - {name: slow, key: "slow:*", action: delay, '
            'delay: 600ms}\n'))
        p = harness.Mcfault(self.mc.port, ['-c', rules])
        p.start()
        self.addCleanup(p.stop)
        busy = harness.connect(p.port)
        busy.sendall(b'set slow:1 0 0 2\r\nhi\r\nget slow:1\r\n')
        idle = harness.connect(p.port)
        time.sleep(0.2)  # the delay is running
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        # New connections are refused at once...
        self.assertTrue(harness.wait_for(lambda: not harness.port_accepts(
            p.port), timeout=3))
        # ...the idle connection is closed...
        idle.settimeout(5)
        self.assertEqual(idle.recv(10), b'')
        # ...and the delayed commands are still answered, then closed.
        got = harness.recv_until(busy, b'END\r\n', timeout=10).data
        self.assertEqual(got, b'STORED\r\nVALUE slow:1 0 2\r\nhi\r\nEND\r\n')
        busy.settimeout(5)
        self.assertEqual(busy.recv(10), b'')
        self.assertEqual(p.proc.wait(10), 0)
        self.assertGreater(time.monotonic() - t0, 0.2)

    def test_sigterm_grace_period_is_bounded(self):
        rules = self.rules_file('hang.yaml', (
            'rules:\n  - {name: slow, key: "slow:*", action: delay, '
            'delay: 30s}\n'))
        p = harness.Mcfault(self.mc.port, ['-c', rules, '--grace', '1'])
        p.start()
        self.addCleanup(p.stop)
        s = harness.connect(p.port)
        s.sendall(b'get slow:1\r\n')
        time.sleep(0.2)
        t0 = time.monotonic()
        p.proc.send_signal(signal.SIGTERM)
        self.assertEqual(p.proc.wait(15), 0)
        took = time.monotonic() - t0
        self.assertGreater(took, 0.8)
        self.assertLess(took, 10)
        self.assertIn('grace period over', p.stderr_text())
        s.close()

    def test_sigusr1_reopens_event_log(self):
        rules = self.rules_file('ev.yaml', (
            'rules:\n  - {name: boom, key: "boom:*", action: error, '
            'message: SERVER_ERROR boom}\n'))
        log = os.path.join(self.tmp, 'events.jsonl')
        p = harness.start_mcfault_for_test(
            self, self.mc.port, ['-c', rules, '--event-log', log])
        s = harness.connect(p.port)
        s.sendall(b'get boom:1\r\n')
        harness.recv_until(s, b'\r\n')
        rotated = log + '.1'
        os.rename(log, rotated)
        p.proc.send_signal(signal.SIGUSR1)
        self.assertTrue(harness.wait_for(lambda: os.path.exists(log), 5))
        s.sendall(b'get boom:2\r\n')
        harness.recv_until(s, b'\r\n')
        s.close()
        with open(rotated) as f:
            old = [json.loads(line) for line in f]
        self.assertTrue(harness.wait_for(
            lambda: os.path.getsize(log) > 0, 5))
        with open(log) as f:
            new = [json.loads(line) for line in f]
        self.assertEqual([e['key'] for e in old], ['boom:1'])
        self.assertEqual([e['key'] for e in new], ['boom:2'])

    def test_sigusr1_reopens_log_file(self):
        log = os.path.join(self.tmp, 'mcfault.log')
        p = harness.start_mcfault_for_test(
            self, self.mc.port, ['-v', '--log-file', log])
        s = harness.connect(p.port)
        s.sendall(b'version\r\n')
        harness.recv_until(s, b'\r\n')
        self.assertTrue(harness.wait_for(
            lambda: 'open from' in open(log).read(), 5))
        rotated = log + '.1'
        os.rename(log, rotated)
        p.proc.send_signal(signal.SIGUSR1)
        self.assertTrue(harness.wait_for(lambda: os.path.exists(log), 5))
        s.close()  # logged as "closed" in the new file only
        self.assertTrue(harness.wait_for(
            lambda: 'closed' in open(log).read(), 5))
        with open(rotated) as f:
            old = f.read()
        with open(log) as f:
            new = f.read()
        self.assertIn('listening on', old)
        self.assertNotIn('listening on', new)
        self.assertNotIn('log files reopened', old)
        self.assertIn('SIGUSR1: log files reopened', new)
        # Nothing of it went to stderr.
        self.assertNotIn('open from', p.stderr_text())

    def test_refuses_taken_port(self):
        taken = socket.socket()
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind((HOST, 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        r = subprocess.run([MCFAULT_BIN, '-l', '%s:%d' % (HOST, port),
                            '-u', '%s:%d' % (HOST, self.mc.port)],
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b'cannot listen on', r.stderr)
        self.assertIn(b'in use', r.stderr)


if __name__ == '__main__':
    unittest.main()

# Logging: -vv traces every command and reply line memcached-style
# ("<FD get foo", ">FD END", FD = the client socket's fd in mcfault);
# -v logs connections (and errors) but no commands.

import re
import unittest

import faultkit
import harness
import mcgen


def client_fd(tc, mcfault, sock):
    """mcfault's fd number for the accepted end of sock."""
    inode = harness.socket_inode_of_connection(mcfault.port,
                                               sock.getsockname()[1])
    tc.assertIsNotNone(inode, 'connection not in /proc/net/tcp')
    want = 'socket:[%d]' % inode
    fds = [fd for fd, t in harness.fd_targets(mcfault.pid).items()
           if t == want]
    tc.assertEqual(len(fds), 1, 'mcfault fds for the client socket: %r'
                   % fds)
    return fds[0]


def wait_lines(mcfault, patterns, timeout=3.0):
    """Waits until every regex in patterns matches a whole stderr line;
    returns the stderr text."""
    def ok():
        t = mcfault.stderr_text()
        return all(re.search(p, t, re.M) for p in patterns) and t
    return harness.wait_for(ok, timeout) or mcfault.stderr_text()


class VeryVerboseTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.mc.port,
                                                      ['-vv'])

    def test_get_and_end_with_client_fd(self):
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(b'get foo\r\n')
        self.assertEqual(harness.recv_until(s, b'END\r\n').data, b'END\r\n')
        fd = client_fd(self, self.mcfault, s)
        req, rep = r'^<%d get foo$' % fd, r'^>%d END$' % fd
        text = wait_lines(self.mcfault, [req, rep])
        # fds are reused across connections: look for this connection's
        # command, then for the reply line after it.
        m1 = re.search(req, text, re.M)
        self.assertTrue(m1, 'no line "<%d get foo" in stderr:\n%s'
                        % (fd, text[-2000:]))
        m2 = re.compile(rep, re.M).search(text, m1.end())
        self.assertTrue(m2, 'no line ">%d END" after "<%d get foo":\n%s'
                        % (fd, fd, text[-2000:]))

    def test_every_command_and_reply_line(self):
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(b'set logkey 0 0 3\r\nbar\r\nget logkey\r\n'
                  b'delete logkey noreply\r\nmn\r\n')
        want = (b'STORED\r\nVALUE logkey 0 3\r\nbar\r\nEND\r\nMN\r\n')
        self.assertEqual(harness.recv_until(s, b'MN\r\n').data, want)
        fd = client_fd(self, self.mcfault, s)
        lines = ['<%d set logkey 0 0 3' % fd, '>%d STORED' % fd,
                 '<%d get logkey' % fd, '>%d VALUE logkey 0 3' % fd,
                 '>%d END' % fd, '<%d delete logkey noreply' % fd,
                 '<%d mn' % fd, '>%d MN' % fd]
        text = wait_lines(self.mcfault, ['^' + re.escape(l) + '$'
                                         for l in lines])
        mine = [l for l in text.splitlines()
                if re.match(r'^[<>]%d ' % fd, l)]
        for l in lines:
            self.assertIn(l, mine, 'stderr lines for fd %d: %r' % (fd, mine))
        self.assertNotIn('<%d bar' % fd, mine, 'a data block was logged as '
                         'a command')
        self.assertNotIn('>%d bar' % fd, mine, 'a data block was logged as '
                         'a reply line')
        # Commands in order, replies in order.
        reqs = [l for l in mine if l.startswith('<')]
        reps = [l for l in mine if l.startswith('>')]
        self.assertEqual(reqs, [l for l in lines if l.startswith('<')])
        self.assertEqual(reps, [l for l in lines if l.startswith('>')])


class VeryVerboseInjectTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        rules = faultkit.write_class_file(cls, mcgen.INJECT_RULES)
        cls.mcfault = harness.start_mcfault_for_class(
            cls, cls.mc.port, ['-vv', '-c', rules])

    def test_injected_command_and_reply_logged(self):
        s = harness.connect(self.mcfault.port)
        self.addCleanup(s.close)
        s.sendall(b'get inj:log\r\nmn\r\n')
        want = harness.INJECT_REPLY + b'MN\r\n'
        self.assertEqual(harness.recv_until(s, b'MN\r\n').data, want)
        fd = client_fd(self, self.mcfault, s)
        lines = ['<%d get inj:log' % fd,
                 '>%d SERVER_ERROR mcfault injected' % fd,
                 '<%d mn' % fd, '>%d MN' % fd]
        text = wait_lines(self.mcfault, ['^' + re.escape(l) + '$'
                                         for l in lines])
        mine = [l for l in text.splitlines()
                if re.match(r'^[<>]%d ' % fd, l)]
        # Commands in order and replies in order (how the two interleave
        # depends on when each is seen).
        self.assertEqual([l for l in mine if l.startswith('<')],
                         [l for l in lines if l.startswith('<')], text)
        self.assertEqual([l for l in mine if l.startswith('>')],
                         [l for l in lines if l.startswith('>')],
                         'the proxy-made reply is a reply line too; '
                         'stderr:\n%s' % text)


class VerboseTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.mc.port,
                                                      ['-v'])

    def test_connections_logged_commands_not(self):
        p = self.mcfault
        before = len(p.stderr_text())
        s = harness.connect(p.port)
        s.sendall(b'get foo\r\n')
        self.assertEqual(harness.recv_until(s, b'END\r\n').data, b'END\r\n')
        fd = client_fd(self, p, s)
        port = s.getsockname()[1]
        opened = harness.wait_for(
            lambda: p.stderr_text()[before:].strip(), timeout=3)
        self.assertTrue(opened, 'nothing logged for a new connection')
        self.assertTrue(re.search(r'\b(%d|%d)\b' % (fd, port), opened),
                        'the connection log names neither the fd (%d) nor '
                        'the client port (%d): %r' % (fd, port, opened))
        mid = len(p.stderr_text())
        s.close()
        closed_text = harness.wait_for(
            lambda: p.stderr_text()[mid:].strip(), timeout=3)
        self.assertTrue(closed_text, 'nothing logged when the client '
                        'closed; stderr:\n%s' % p.stderr_text()[-1000:])
        self.assertNotRegex(p.stderr_text(), r'(?m)^[<>]\d+ ',
                            '-v logged command or reply lines')


class QuietTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = harness.start_memcached_for_class(cls)
        cls.mcfault = harness.start_mcfault_for_class(cls, cls.mc.port)

    def test_no_traces_without_v(self):
        got = harness.request(self.mcfault.port, b'get foo\r\n', b'END\r\n')
        self.assertEqual(got, b'END\r\n')
        self.assertNotRegex(self.mcfault.stderr_text(), r'(?m)^[<>]\d+ ')


if __name__ == '__main__':
    unittest.main()

# --watch-config (and the file's watch: true): the rule file is reloaded
# when it changes, without a signal: written in place, replaced by an
# editor's rename-on-save, or swapped the way Kubernetes updates a mounted
# ConfigMap (a "..data" symlink renamed over). A bad file keeps the old
# rules and logs every problem, as SIGHUP does; a touch that changes
# nothing reloads nothing.

import os
import shutil
import tempfile
import time
import unittest

import faultkit
import harness

OK_RX = r'^mcfault: reload: ok, \d+ rules?$'
FAILED_RX = r'^mcfault: reload: failed'


def rules_doc(message, extra=''):
    return ('%srules:\n  - name: r\n    key: "w:*"\n    action: error\n'
            '    message: %s\n' % (extra, message))


def answer(port):
    return faultkit.talk(port, b'get w:1\r\n', b'\r\n').data


class WatchTest(unittest.TestCase):

    def setUp(self):
        self.mc = harness.start_memcached_for_test(self)
        self.dir = tempfile.mkdtemp(prefix='mcfault-watch-')
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start(self, path, args=('--watch-config',)):
        return harness.start_mcfault_for_test(
            self, self.mc.port, ['-v', '-c', path] + list(args))

    def wait_answer(self, p, want, timeout=5.0):
        got = harness.wait_for(lambda: answer(p.port) == want and want,
                               timeout)
        self.assertEqual(answer(p.port), want, p.stderr_tail())
        return got

    def test_written_in_place(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one'))
        p = self.start(path)
        self.assertEqual(answer(p.port), b'SERVER_ERROR one\r\n')
        with open(path, 'w') as f:           # truncate and write
            f.write(rules_doc('SERVER_ERROR two'))
        self.wait_answer(p, b'SERVER_ERROR two\r\n')
        self.assertEqual(faultkit.count_lines(p, OK_RX), 1, p.stderr_tail())

    def test_rename_on_save(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one'))
        p = self.start(path)
        faultkit.replace_file(path, rules_doc('SERVER_ERROR two'))
        self.wait_answer(p, b'SERVER_ERROR two\r\n')

    def test_file_key_turns_it_on(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one', 'watch: true\n'))
        p = self.start(path, args=())
        faultkit.replace_file(
            path, rules_doc('SERVER_ERROR two', 'watch: true\n'))
        self.wait_answer(p, b'SERVER_ERROR two\r\n')

    def test_without_it_nothing_is_watched(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one'))
        p = self.start(path, args=())
        faultkit.replace_file(path, rules_doc('SERVER_ERROR two'))
        time.sleep(1.0)
        self.assertEqual(answer(p.port), b'SERVER_ERROR one\r\n')
        self.assertEqual(faultkit.count_lines(p, OK_RX), 0)

    def test_configmap_symlink_swap(self):
        # What the kubelet does: the file is a symlink through "..data" to a
        # timestamped directory; an update writes a new directory, points
        # "..data_tmp" at it and renames "..data_tmp" over "..data".
        def publish(n, text):
            d = os.path.join(self.dir, '..2026_11_30_%d' % n)
            os.mkdir(d)
            with open(os.path.join(d, 'rules.yaml'), 'w') as f:
                f.write(text)
            tmp = os.path.join(self.dir, '..data_tmp')
            os.symlink(os.path.basename(d), tmp)
            os.replace(tmp, os.path.join(self.dir, '..data'))
            return d

        old = publish(1, rules_doc('SERVER_ERROR one'))
        path = os.path.join(self.dir, 'rules.yaml')
        os.symlink('..data/rules.yaml', path)
        p = self.start(path)
        self.assertEqual(answer(p.port), b'SERVER_ERROR one\r\n')
        publish(2, rules_doc('SERVER_ERROR two'))
        shutil.rmtree(old)                   # the kubelet removes the old one
        self.wait_answer(p, b'SERVER_ERROR two\r\n')
        publish(3, rules_doc('SERVER_ERROR three'))
        self.wait_answer(p, b'SERVER_ERROR three\r\n')

    def test_bad_file_keeps_the_rules(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one'))
        p = self.start(path)
        faultkit.replace_file(path, 'rules:\n  - name: r\n    action: nap\n')
        text = faultkit.wait_stderr(p, FAILED_RX)
        self.assertRegex(text, r'rules\.yaml:3:13: ', 'every problem logged')
        self.assertEqual(answer(p.port), b'SERVER_ERROR one\r\n')
        # Fixed: reloaded again.
        faultkit.replace_file(path, rules_doc('SERVER_ERROR two'))
        self.wait_answer(p, b'SERVER_ERROR two\r\n')

    def test_touch_and_burst(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one'))
        p = self.start(path)
        os.utime(path)                       # same content: no reload
        faultkit.replace_file(path, rules_doc('SERVER_ERROR one'))
        time.sleep(1.0)
        self.assertEqual(faultkit.count_lines(p, OK_RX), 0, p.stderr_tail())
        # A burst of writes closer together than the debounce is one
        # change: the last content wins, reloaded once or a few times, not
        # once per write.
        for i in range(30):
            faultkit.replace_file(path, rules_doc('SERVER_ERROR n%d' % i))
            time.sleep(0.01)
        self.wait_answer(p, b'SERVER_ERROR n29\r\n')
        time.sleep(0.5)
        self.assertLess(faultkit.count_lines(p, OK_RX), 5, p.stderr_tail())

    def test_file_removed_then_back(self):
        path = os.path.join(self.dir, 'rules.yaml')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR one'))
        p = self.start(path)
        os.unlink(path)
        faultkit.wait_stderr(p, r'cannot read it')
        self.assertEqual(answer(p.port), b'SERVER_ERROR one\r\n')
        with open(path, 'w') as f:
            f.write(rules_doc('SERVER_ERROR two'))
        self.wait_answer(p, b'SERVER_ERROR two\r\n')

    def test_needs_a_file(self):
        p = harness.Mcfault(self.mc.port, ['--watch-config'])
        out = __import__('subprocess').run(
            p.command(), capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 2)
        self.assertIn(b'--watch-config needs a rule file', out.stderr)


if __name__ == '__main__':
    unittest.main()

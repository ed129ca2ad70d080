# Starts an mcfault process beside a test suite: free loopback ports for the
# proxy and the admin API, ready once the API answers, stopped with SIGTERM.

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from .client import ConnectionFailed, Mcfault, Timeout

__all__ = ['McfaultProcess', 'free_port', 'parse_hostport']

# A port found free may be taken before mcfault binds it; start() then tries
# again with new ports this many times.
_START_ATTEMPTS = 3
# How often start() asks the admin API whether it is up.
_POLL_S = 0.05


def free_port(host: str = '127.0.0.1') -> int:
    """A TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def parse_hostport(s: str,
                   default_port: Optional[int] = None) -> Tuple[str, int]:
    """'127.0.0.1:11211', '[::1]:11211' or 'host' (with default_port) ->
    (host, port)."""
    if s.startswith('['):
        host, _, rest = s[1:].partition(']')
        port = rest[1:] if rest.startswith(':') else ''
    elif s.count(':') == 1:
        host, _, port = s.partition(':')
    else:
        host, port = s, ''
    if not port:
        if default_port is None:
            raise ValueError('%r has no port' % s)
        return host, default_port
    return host, int(port)


class McfaultProcess:
    """An mcfault listening on 127.0.0.1 (free ports) in front of upstream
    ("HOST:PORT" of a running memcached), with the admin API on.

        with McfaultProcess("/usr/bin/mcfault", "127.0.0.1:11211") as p:
            p.client.health()       # the admin API
            p.listen          # ("127.0.0.1", port): for the memcached client

    config: a rule file (-c), needed by reload and by reset to bring rules
    back. args: more command-line arguments. Its output goes to a temporary
    file (stderr_text())."""

    def __init__(self, binary: str, upstream: str,
                 config: Optional[str] = None, args: Sequence[str] = (),
                 host: str = '127.0.0.1',
                 env: Optional[Dict[str, str]] = None) -> None:
        self.binary = binary
        self.upstream = upstream
        self.config = config
        self.args = list(args)
        self.host = host
        self.extra_env = dict(env or {})
        self.listen: Tuple[str, int] = (host, 0)
        self.admin: Tuple[str, int] = (host, 0)
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.returncode: Optional[int] = None
        self._log_path: Optional[str] = None
        self._log_text: Optional[str] = None

    @property
    def admin_url(self) -> str:
        return 'http://%s:%d' % self.admin

    @property
    def client(self) -> Mcfault:
        return Mcfault(self.admin_url)

    def command(self) -> List[str]:
        cmd = [self.binary, '-l', '%s:%d' % self.listen, '-u', self.upstream,
               '--admin', '%s:%d' % self.admin]
        if self.config is not None:
            cmd += ['-c', self.config]
        return cmd + self.args

    def start(self, timeout: float = 15.0) -> 'McfaultProcess':
        """Starts mcfault and returns once its admin API answers. Raises
        RuntimeError (with mcfault's output) when it exits or does not
        answer within timeout."""
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError('mcfault binary not found or not executable: '
                               '%s' % self.binary)
        env = dict(os.environ)
        # What this object is given is what runs: mcfault would otherwise
        # take a rule file from the environment.
        for k in ('MCFAULT_CONFIG', 'MCFAULT_LISTEN', 'MCFAULT_UPSTREAM'):
            env.pop(k, None)
        env.update(self.extra_env)
        for attempt in range(_START_ATTEMPTS):
            self.listen = (self.host, free_port(self.host))
            self.admin = (self.host, free_port(self.host))
            fd, self._log_path = tempfile.mkstemp(prefix='mcfault-',
                                                  suffix='.log')
            self._log_text = None
            try:
                self.proc = subprocess.Popen(self.command(),
                                             stdin=subprocess.DEVNULL,
                                             stdout=fd, stderr=fd, env=env)
            finally:
                os.close(fd)
            if self._wait_ready(timeout):
                return self
            out = self.stderr_text()
            self.stop()
            if 'in use' in out and attempt + 1 < _START_ATTEMPTS:
                continue  # a port was taken meanwhile: new ports
            raise RuntimeError('mcfault did not start (%s): %s\n%s'
                               % (' '.join(self.command()),
                                  'exit status %s' % self.returncode,
                                  out[-4000:]))
        raise AssertionError('unreachable')

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        probe = Mcfault(self.admin_url, timeout=1.0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                probe.health()
                return True
            except (ConnectionFailed, Timeout):
                time.sleep(_POLL_S)
        return False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        """What mcfault wrote to stdout and stderr so far."""
        if self._log_text is not None:
            return self._log_text
        if self._log_path is None:
            return ''
        try:
            with open(self._log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM, then SIGKILL after timeout; returns the exit status
        (negative: the signal). Idempotent."""
        if self.proc is None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.returncode = self.proc.returncode
        self._log_text = None
        self._log_text = self.stderr_text()
        if self._log_path is not None:
            try:
                os.unlink(self._log_path)
            except OSError:
                pass
            self._log_path = None
        self.proc = None
        return self.returncode

    def __enter__(self) -> 'McfaultProcess':
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

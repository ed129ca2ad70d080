# Fixtures of the client's own tests: a real memcached and a real mcfault
# (MCFAULT_BIN, default ../../build/mcfault from clients/python) on free
# loopback ports, one of each for the session, plus factories for tests
# that need a process of their own (a rule file to rewrite, a dead
# upstream).

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Set

import pytest
from pymemcache.client.base import Client as MemcacheClient

from mcfault import Mcfault
from mcfault.process import McfaultProcess, free_port
from mcfault.pytest_plugin import reset_or_fallback

CLIENT_DIR = Path(__file__).resolve().parent.parent
MCFAULT_BIN = os.environ.get('MCFAULT_BIN') or str(
    (CLIENT_DIR / '..' / '..' / 'build' / 'mcfault').resolve())
MEMCACHED_BIN = os.environ.get('MEMCACHED_BIN', '/usr/bin/memcached')
HOST = '127.0.0.1'
# Printed by ASan/UBSan (MCFAULT_BIN is often a sanitizer build): any of
# them in mcfault's output fails the test that stopped it.
SANITIZER_MARKERS = ('Sanitizer', 'runtime error')

# The session mcfault's rule file: one rule, narrow enough that no test
# trips over it, that reset() and reload() bring back.
FILE_RULES = '''\
rules:
  - name: file-rule
    command: set
    key: "file:*"
    action: error
    message: SERVER_ERROR from the rule file
'''


class Memcached:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def address(self) -> str:
        return '%s:%d' % (HOST, self.port)

    def start(self) -> 'Memcached':
        cmd = [MEMCACHED_BIN, '-l', HOST, '-p', str(self.port), '-U', '0',
               '-t', '2', '-m', '64']
        if os.geteuid() == 0:
            cmd += ['-u', 'nobody']  # memcached refuses to run as root
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('memcached exited with %s'
                                   % self.proc.returncode)
            try:
                socket.create_connection((HOST, self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError('memcached did not start on %d' % self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def stop_and_check(p: McfaultProcess) -> None:
    """Stops p and fails unless it exited 0 with no sanitizer report."""
    rc = p.stop()
    out = p.stderr_text()
    bad = [m for m in SANITIZER_MARKERS if m in out]
    if rc != 0 or bad:
        pytest.fail('mcfault %s: exit status %s%s\n%s'
                    % (' '.join(p.command()), rc,
                       ', output has ' + ', '.join(bad) if bad else '',
                       out[-6000:]), pytrace=False)


@pytest.fixture(scope='session')
def mcfault_bin() -> str:
    if not os.access(MCFAULT_BIN, os.X_OK):
        pytest.exit('no mcfault binary at %s: build it or set MCFAULT_BIN'
                    % MCFAULT_BIN, returncode=2)
    return MCFAULT_BIN


@pytest.fixture(scope='session')
def memcached() -> Iterator[Memcached]:
    m = Memcached().start()
    yield m
    m.stop()


@pytest.fixture(scope='session')
def rule_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp('rules') / 'rules.yaml'
    p.write_text(FILE_RULES)
    return p


@pytest.fixture(scope='session')
def server(mcfault_bin: str, memcached: Memcached,
           rule_file: Path) -> Iterator[McfaultProcess]:
    """The session's mcfault, with the rule file FILE_RULES."""
    p = McfaultProcess(mcfault_bin, memcached.address, config=str(rule_file))
    p.start()
    yield p
    stop_and_check(p)


@pytest.fixture
def mc(server: McfaultProcess) -> Iterator[Mcfault]:
    """A client of the session's mcfault, reset after the test."""
    client = server.client
    yield client
    reset_or_fallback(client)


@pytest.fixture
def cache(server: McfaultProcess) -> Iterator[MemcacheClient]:
    """A real memcached client (pymemcache) talking through the proxy."""
    c = MemcacheClient(server.listen, connect_timeout=3, timeout=3,
                       default_noreply=False)
    yield c
    c.close()


@pytest.fixture
def direct(memcached: Memcached) -> Iterator[MemcacheClient]:
    """pymemcache straight to memcached, past mcfault."""
    c = MemcacheClient((HOST, memcached.port), connect_timeout=3, timeout=3,
                       default_noreply=False)
    yield c
    c.close()


@pytest.fixture
def start_mcfault(
        mcfault_bin: str,
        memcached: Memcached) -> Iterator[Callable[..., McfaultProcess]]:
    """A factory: start_mcfault(upstream=..., config=...) starts an mcfault
    of the test's own, stopped and checked at its end."""
    started: List[McfaultProcess] = []

    def start(upstream: Optional[str] = None,
              config: Optional[str] = None) -> McfaultProcess:
        p = McfaultProcess(mcfault_bin, upstream or memcached.address,
                           config=config)
        started.append(p)
        return p.start()

    yield start
    for p in started:
        stop_and_check(p)


# --------------------------------------------------------------------------
# Which of the endpoints added in issue 10 the binary has. Until they land,
# their tests skip (saying so); a wrong method on a path that exists answers
# 405, on one that does not 404.


def _exists(server: McfaultProcess, method: str, path: str) -> bool:
    c = http.client.HTTPConnection(*server.admin, timeout=5)
    try:
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        if r.status == 405 and method == 'PATCH':
            return 'POST' in (r.getheader('Allow') or '')
        return not (r.status == 404 and b'no such endpoint' in body)
    finally:
        c.close()


@pytest.fixture(scope='session')
def api(server: McfaultProcess) -> Set[str]:
    probes = {
        'add_rule': ('PATCH', '/rules'),  # Allow lists POST
        'rule_by_name': ('GET', '/rules/no-such-rule-probe'),
        'reset': ('GET', '/reset'),
        'upstream_command': ('GET', '/upstream/command'),
        'upstream_stats': ('GET', '/upstream/stats'),
        'proxy_switch': ('GET', '/proxies/probe/disable'),  # 405: POST
    }
    return {name for name, (m, p) in probes.items()
            if _exists(server, m, p)}


@pytest.fixture
def need(api: Set[str]) -> Callable[..., None]:
    def check(*names: str) -> None:
        missing = [n for n in names if n not in api]
        if missing:
            pytest.skip('MCFAULT_BIN has no %s endpoint yet (issue 10)'
                        % ', '.join(missing))
    return check


# --------------------------------------------------------------------------
# Stub servers for transport errors


class SilentServer:
    """Accepts connections and never answers (a hung admin API or a hung
    memcached)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: List[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except OSError:
                continue

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    s = SilentServer()
    yield s
    s.close()


class CannedServer:
    """Answers every request with one canned HTTP reply."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with c:
                c.settimeout(2)
                data = b''
                try:
                    while b'\r\n\r\n' not in data:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    c.sendall(self.reply)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def canned() -> Iterator[Callable[[bytes], CannedServer]]:
    made: List[CannedServer] = []

    def make(reply: bytes) -> CannedServer:
        s = CannedServer(reply)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()

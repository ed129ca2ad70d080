# pytest plugin: one mcfault for the whole session (a running one, or one it
# starts), a client fixture that resets mcfault after every test, and a
# marker that puts faults in force for one test.
#
# Registered through the pytest11 entry point when the package is installed;
# without installing: pytest -p mcfault.pytest_plugin (mcfault on sys.path).

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional, Set, Tuple

import pytest

from .client import ApiError, Mcfault, McfaultError, NotFound, RuleChange
from .process import McfaultProcess, parse_hostport

__all__ = ['McfaultServer', 'reset_or_fallback']

_HELP = '''mcfault is not configured. Either point at a running mcfault:
  --mcfault-admin URL (or MCFAULT_ADMIN), e.g. http://127.0.0.1:8080
or let the plugin start one in front of a running memcached:
  --mcfault-bin PATH --mcfault-upstream HOST:PORT
  (or MCFAULT_BIN and MCFAULT_UPSTREAM;
  --mcfault-config FILE / MCFAULT_CONFIG for a rule file)'''


@dataclass
class McfaultServer:
    """The session's mcfault. client: its admin API; proxy: (host, port)
    to point the memcached client at; process: the McfaultProcess when the
    plugin started it, None when it connected to a running one."""

    client: Mcfault
    admin_url: str
    proxy: Tuple[str, int]
    process: Optional[McfaultProcess] = None


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup('mcfault', 'mcfault fault-injection proxy')
    g.addoption('--mcfault-admin', metavar='URL',
                help='admin API of a running mcfault (env MCFAULT_ADMIN); '
                     'wins over --mcfault-bin')
    g.addoption('--mcfault-proxy', metavar='HOST:PORT',
                help='where its proxy is reached, when not what /health '
                     'says (env MCFAULT_PROXY)')
    g.addoption('--mcfault-bin', metavar='PATH',
                help='start this mcfault binary for the session '
                     '(env MCFAULT_BIN); needs --mcfault-upstream')
    g.addoption('--mcfault-upstream', metavar='HOST:PORT',
                help='the memcached a started mcfault forwards to '
                     '(env MCFAULT_UPSTREAM)')
    g.addoption('--mcfault-config', metavar='FILE',
                help='rule file for a started mcfault, what reset() goes '
                     'back to (env MCFAULT_CONFIG)')


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        'markers',
        'mcfault(*rules): rules (dicts in the rule file schema) in force for '
        'this test only; implies the mcfault fixture')


def _opt(config: pytest.Config, name: str, env: str) -> Optional[str]:
    v = config.getoption(name)
    return v if v else (os.environ.get(env) or None)


_warned: Set[str] = set()


def reset_or_fallback(client: Mcfault) -> RuleChange:
    """POST /reset. An mcfault from before /reset existed answers 404 "no
    such endpoint": then the rule file is reloaded (or, without one, the
    rules cleared); its counters are not zeroed."""
    try:
        return client.reset()
    except NotFound as e:
        if not e.message.startswith('no such endpoint'):
            raise
    if client.url not in _warned:
        _warned.add(client.url)
        warnings.warn('mcfault at %s has no POST /reset: rules reloaded or '
                      'cleared instead, counters not zeroed' % client.url,
                      stacklevel=2)
    try:
        return client.reload()
    except ApiError as e:
        if e.status != 409:  # 409: no rule file to reload
            raise
    return client.clear_rules()


def _proxy_from_health(client: Mcfault) -> Tuple[str, int]:
    health = client.health()
    if not health.proxies:
        raise pytest.UsageError('mcfault at %s reports no proxy' % client.url)
    host, port = parse_hostport(health.proxies[0].listen)
    if host in ('0.0.0.0', '::', ''):
        # Listening on every address: reach it where the admin API is.
        host = parse_hostport(client.url.split('://', 1)[1].split('/')[0],
                              80)[0]
    return host, port


@pytest.fixture(scope='session')
def mcfault_server(request: pytest.FixtureRequest) -> Iterator[McfaultServer]:
    """The session's mcfault: the running one --mcfault-admin names (reset
    once before the first test), or one started from --mcfault-bin in
    front of --mcfault-upstream (stopped after the last test)."""
    config = request.config
    admin = _opt(config, '--mcfault-admin', 'MCFAULT_ADMIN')
    proxy = _opt(config, '--mcfault-proxy', 'MCFAULT_PROXY')
    binary = _opt(config, '--mcfault-bin', 'MCFAULT_BIN')
    upstream = _opt(config, '--mcfault-upstream', 'MCFAULT_UPSTREAM')
    rule_file = _opt(config, '--mcfault-config', 'MCFAULT_CONFIG')

    if admin:
        client = Mcfault(admin)
        try:
            where = (parse_hostport(proxy) if proxy
                     else _proxy_from_health(client))
            reset_or_fallback(client)
        except McfaultError as e:
            pytest.fail('mcfault at %s: %s' % (admin, e), pytrace=False)
        yield McfaultServer(client, client.url, where)
        return
    if not (binary and upstream):
        pytest.fail(_HELP, pytrace=False)
    proc = McfaultProcess(binary, upstream, config=rule_file)
    try:
        proc.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield McfaultServer(proc.client, proc.admin_url,
                            parse_hostport(proxy) if proxy else proc.listen,
                            proc)
    finally:
        proc.stop()


@pytest.fixture(scope='session')
def mcfault_proxy(mcfault_server: McfaultServer) -> Tuple[str, int]:
    """(host, port) of the proxy: give it to the memcached client."""
    return mcfault_server.proxy


@pytest.fixture
def mcfault(request: pytest.FixtureRequest,
            mcfault_server: McfaultServer) -> Iterator[Mcfault]:
    """The client of the session's mcfault. The rules of a
    @pytest.mark.mcfault(...) marker are in force during the test; after
    it, pass or fail, mcfault is reset (POST /reset): the rule file's rules,
    counters and events zeroed."""
    client = mcfault_server.client
    rules = [r for m in request.node.iter_markers('mcfault') for r in m.args]
    try:
        if rules:
            with client.fault(*rules):
                yield client
        else:
            yield client
    finally:
        reset_or_fallback(client)


@pytest.fixture(autouse=True)
def _mcfault_marker(request: pytest.FixtureRequest) -> None:
    # A test with the marker gets the fixture even when it does not ask.
    if request.node.get_closest_marker('mcfault') is not None:
        request.getfixturevalue('mcfault')

# The proxy switch (POST /proxies/NAME/disable and /enable) and the rules'
# in_force / next_change_ms, against a real mcfault and memcached, with
# pymemcache and raw sockets as the clients that feel it.

from __future__ import annotations

import socket

import pytest
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheUnexpectedCloseError

import mcfault
from mcfault import NotFound, ProxySwitch
from mcfault.process import McfaultProcess


def refused(addr: tuple) -> bool:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(addr)
    except ConnectionRefusedError:
        return True
    finally:
        s.close()
    return False


def closed_by_peer(s: socket.socket) -> bool:
    s.settimeout(3)
    try:
        while s.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_disable_cuts_clients_and_refuses_new_ones(
        mc: mcfault.Mcfault, server: McfaultProcess, cache: MemcacheClient,
        need) -> None:
    need('proxy_switch')
    cache.set('px:1', b'v')
    raw = socket.create_connection(server.listen, timeout=3)
    raw.sendall(b'version\r\n')
    assert raw.recv(100).startswith(b'VERSION ')
    sw = mc.disable_proxy('default')
    # pymemcache's connection and raw (and any another test left closing).
    assert sw.closed >= 2
    assert sw == ProxySwitch(proxy='default', enabled=False,
                             listen='%s:%d' % server.listen, closed=sw.closed)
    assert closed_by_peer(raw)
    raw.close()
    assert refused(server.listen)
    # pymemcache: its connection was closed under it, then refused.
    with pytest.raises((MemcacheUnexpectedCloseError, OSError)):
        cache.get('px:1')
    with pytest.raises(ConnectionRefusedError):
        cache.get('px:1')
    h = mc.health()
    assert h.ok  # health is about the upstream
    assert [(p.name, p.enabled) for p in h.proxies] == [('default', False)]
    assert [(p.enabled, p.connections_now) for p in mc.stats().proxies] == \
        [(False, 0)]
    assert 'mcfault_proxy_enabled{proxy="default"} 0' in mc.metrics()
    # Idempotent.
    assert mc.disable_proxy('default').closed == 0

    sw = mc.enable_proxy('default')
    assert (sw.enabled, sw.listen) == (True, '%s:%d' % server.listen)
    assert mc.enable_proxy('default').enabled
    assert cache.get('px:1') == b'v'  # pymemcache reconnects
    assert mc.health().proxies[0].enabled


def test_reset_switches_proxies_back_on(mc: mcfault.Mcfault,
                                        server: McfaultProcess,
                                        need) -> None:
    need('proxy_switch', 'reset')
    mc.disable_proxy('default')
    assert refused(server.listen)
    mc.reset()
    assert mc.stats().proxies[0].enabled
    socket.create_connection(server.listen, timeout=3).close()


def test_unknown_proxy(mc: mcfault.Mcfault, need) -> None:
    need('proxy_switch')
    with pytest.raises(NotFound) as ei:
        mc.disable_proxy('nope')
    assert ei.value.message == "no proxy named 'nope'"
    with pytest.raises(NotFound):
        mc.enable_proxy('nope')
    with pytest.raises(ValueError):
        mc.disable_proxy('')


def test_rules_in_force(mc: mcfault.Mcfault, need) -> None:
    need('add_rule', 'rule_by_name')
    mc.add_rule({'name': 'plain', 'key': 'nothing', 'action': 'drop'})
    r = mc.get_rule('plain')
    assert (r.in_force, r.next_change_ms) == (True, None)
    mc.disable('plain')
    r = mc.get_rule('plain')
    assert (r.in_force, r.next_change_ms) == (False, None)
    assert [s.in_force for s in mc.stats().proxies[0].rules
            if s.name == 'plain'] == [False]


def test_scheduled_rule_in_force_later(mc: mcfault.Mcfault, need) -> None:
    need('add_rule', 'rule_by_name')
    mc.add_rule({'name': 'later', 'key': 'nothing', 'action': 'drop',
                 'schedule': {'start': '3600s', 'duration': '1s'}})
    r = mc.get_rule('later')
    assert r.in_force is False
    assert r.next_change_ms is not None
    assert 3590000 < r.next_change_ms <= 3600000
    assert r.raw['schedule'] == {'start_us': 3600000000,
                                 'duration_us': 1000000, 'every_us': 0}


def test_to_spec_round_trip_of_the_newer_keys(mc: mcfault.Mcfault,
                                              need) -> None:
    need('add_rule', 'rule_by_name')
    specs = [
        {'name': 'thr', 'command': 'get', 'key': 't:*', 'action': 'throttle',
         'rate': '10KiB/s', 'client': ['127.0.0.1', 'fd00::/8'],
         'connections': '25%', 'min_size': 10, 'max_size': '1MiB'},
        {'name': 'sl', 'key': 's:*', 'action': 'slice', 'size': '1-16',
         'interval': '2ms', 'schedule': {'start': '10s', 'duration': '1s',
                                         'every': '5s'}},
        {'name': 'tr', 'key': 'tr:*', 'action': 'truncate', 'keep': '50%',
         'close': 'reset'},
        {'name': 'trb', 'key': 'trb:*', 'action': 'truncate', 'keep': 100},
        {'name': 'co', 'key': 'c:*', 'action': 'corrupt', 'flips': 3},
        {'name': 'big', 'key': 'b:*', 'action': 'drop', 'min_size': '1KiB'},
        {'name': 'conn', 'command': 'connect', 'action': 'drop',
         'close': 'reset'},
    ]
    mc.add_rule(specs)
    before = {r.name: r for r in mc.rules() if r.name in
              {s['name'] for s in specs}}
    assert before['thr'].raw['rate_bps'] == 10240
    for name in before:
        mc.remove_rule(name)
    mc.add_rule(list(before.values()))
    after = {r.name: r for r in mc.rules() if r.name in before}
    for name, r in before.items():
        # The same rule; its schedule's clock restarted with it.
        assert {k: v for k, v in after[name].raw.items()
                if k != 'next_change_ms'} == \
            {k: v for k, v in r.raw.items() if k != 'next_change_ms'}, name

# The endpoints mcfault has had since the admin API began (health, rules,
# set/clear, enable/disable, reload, stats, metrics, events) against a real
# mcfault and memcached, with pymemcache proving each rule change took
# effect; and the transport errors (refused, timeout, odd replies).

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheServerError

import mcfault
from mcfault import (ApiError, ConnectionFailed, Health, McfaultError,
                     NotFound, Rule, RuleChange, RuleError, Stats, Timeout)
from mcfault.process import McfaultProcess, free_port

OOM = {'name': 'oom', 'command': 'set', 'key': 'oom:*', 'action': 'error',
       'message': 'SERVER_ERROR out of memory storing object'}


def set_fails(cache: MemcacheClient, key: str) -> bool:
    """Whether a set of key through the proxy answers SERVER_ERROR."""
    try:
        cache.set(key, b'v', noreply=False)
    except MemcacheServerError:
        return True
    return False


# -- health -------------------------------------------------------------------


def test_health_reachable(mc: mcfault.Mcfault, server: McfaultProcess,
                          memcached) -> None:
    h = mc.health()
    assert isinstance(h, Health)
    assert h.ok and bool(h)
    [p] = h.proxies
    assert p.name == 'default'
    assert p.listen == '%s:%d' % server.listen
    assert p.upstream == memcached.address
    assert p.upstream_reachable and p.error is None


def test_health_unreachable_is_a_result_not_an_error(start_mcfault) -> None:
    dead = '127.0.0.1:%d' % free_port()
    p = start_mcfault(upstream=dead)
    h = p.client.health()  # a 503
    assert not h.ok and not bool(h)
    assert h.proxies[0].upstream_reachable is False
    assert h.proxies[0].error == 'Connection refused'


# -- rules: read, replace, clear ----------------------------------------------


def test_rules_as_loaded_from_the_file(mc: mcfault.Mcfault) -> None:
    [r] = mc.rules()
    assert isinstance(r, Rule)
    assert (r.name, r.command, r.key, r.action) == (
        'file-rule', ['set'], ['file:*'], 'error')
    assert r.message == 'SERVER_ERROR from the rule file'
    assert r.delay_us is None and r.jitter_us is None
    assert (r.probability, r.after, r.limit) == (1.0, 0, 0)
    assert r.enabled and not r.forward
    assert r.proxy == 'default'
    assert r.raw['name'] == 'file-rule'


def test_set_rules_dict_takes_effect_and_clear_undoes_it(
        mc: mcfault.Mcfault, cache: MemcacheClient) -> None:
    assert not set_fails(cache, 'oom:1')
    change = mc.set_rules({'rules': [OOM]})
    assert change == RuleChange(rules=1)
    assert set_fails(cache, 'oom:1')
    assert not set_fails(cache, 'other:1')  # the key glob holds
    [r] = mc.rules()
    assert (r.name, r.matched, r.fired) == ('oom', 1, 1)
    assert mc.clear_rules().rules == 0
    assert mc.rules() == []
    assert not set_fails(cache, 'oom:1')


def test_set_rules_yaml_text_and_list(mc: mcfault.Mcfault,
                                      cache: MemcacheClient) -> None:
    yaml = ('rules:\n'
            '  - name: hot-miss\n'
            '    key: "hot:*"\n'
            '    action: miss\n'
            '  - name: slow\n'
            '    command: [get]\n'
            '    key: "slow:*"\n'
            '    action: delay\n'
            '    delay: 300ms\n'
            '    jitter: 10ms\n')
    cache.set('hot:1', b'x')
    cache.set('slow:1', b'y')
    assert mc.set_rules(yaml).rules == 2
    assert cache.get('hot:1') is None  # answered as a miss
    t0 = time.monotonic()
    assert cache.get('slow:1') == b'y'
    assert time.monotonic() - t0 >= 0.28
    slow = [r for r in mc.rules() if r.name == 'slow'][0]
    assert (slow.delay_us, slow.jitter_us) == (300000, 10000)
    # A list of rules is sent as {"rules": [...]}; bytes as they are.
    assert mc.set_rules([OOM]).rules == 1
    assert [r.name for r in mc.rules()] == ['oom']
    assert cache.get('hot:1') == b'x'
    assert mc.set_rules(b'rules: []\n').rules == 0


def test_set_rules_invalid_raises_rule_error_and_keeps_rules(
        mc: mcfault.Mcfault, cache: MemcacheClient) -> None:
    mc.set_rules([OOM])
    bad = ('rules:\n'
           '  - name: x\n'
           '    action: delay\n'
           '    delya: 10ms\n')
    with pytest.raises(RuleError) as ei:
        mc.set_rules(bad)
    e = ei.value
    assert e.status == 400
    assert e.message == 'invalid rules'
    # (The list of known keys grows with the rule file's schema.)
    assert len(e.problems) == 2
    assert e.problems[0] == "body:2:5: rule 'x': action delay needs 'delay'"
    assert e.problems[1].startswith(
        "body:4:5: unknown key 'delya' in rule (known: name, command, key, "
        "action, message, delay, jitter, probability, after, limit, "
        "forward, enabled")
    assert 'body:4:5' in str(e)
    assert isinstance(e, ApiError) and isinstance(e, McfaultError)
    assert [r.name for r in mc.rules()] == ['oom']
    assert set_fails(cache, 'oom:2')


def test_set_rules_dict_problem_positions(mc: mcfault.Mcfault) -> None:
    # JSON is sent on one line: positions are columns of that line.
    with pytest.raises(RuleError) as ei:
        mc.set_rules({'rules': [{'name': 'b', 'action': 'explode'}]})
    assert ei.value.status == 400
    [p] = ei.value.problems
    assert p.startswith('body:1:') and "'explode'" in p


def test_unicode_names_survive(mc: mcfault.Mcfault) -> None:
    mc.set_rules([{'name': 'café ☕', 'key': 'ключ:*', 'action': 'miss'}])
    [r] = mc.rules()
    assert (r.name, r.key) == ('café ☕', ['ключ:*'])


def test_unknown_proxy_is_not_found(mc: mcfault.Mcfault) -> None:
    with pytest.raises(NotFound) as ei:
        mc.rules(proxy='nope')
    assert ei.value.status == 404
    assert ei.value.message == "no proxy named 'nope'"
    with pytest.raises(NotFound):
        mc.set_rules([OOM], proxy='nope')
    with pytest.raises(NotFound):
        mc.clear_rules(proxy='nope')
    assert [r.name for r in mc.rules(proxy='default')] == ['file-rule']


# -- enable / disable ---------------------------------------------------------


def test_disable_then_enable(mc: mcfault.Mcfault,
                             cache: MemcacheClient) -> None:
    mc.set_rules([OOM])
    assert mc.disable('oom') == RuleChange(changed=1)
    assert not set_fails(cache, 'oom:3')
    assert mc.rules()[0].enabled is False
    assert mc.enable('oom').changed == 1
    assert set_fails(cache, 'oom:3')
    with pytest.raises(NotFound):
        mc.disable('no-such-rule')
    with pytest.raises(NotFound):
        mc.enable('no-such-rule')


def test_names_are_percent_encoded(mc: mcfault.Mcfault,
                                   cache: MemcacheClient) -> None:
    odd = 'odd/name ?&%#é'
    mc.set_rules([dict(OOM, name=odd)])
    assert mc.disable(odd).changed == 1
    assert not set_fails(cache, 'oom:4')
    assert mc.enable(odd).changed == 1
    assert set_fails(cache, 'oom:4')
    with pytest.raises(ValueError):
        mc.enable('')


# -- reload -------------------------------------------------------------------


def test_reload_brings_the_file_back(mc: mcfault.Mcfault,
                                     cache: MemcacheClient) -> None:
    mc.clear_rules()
    assert not set_fails(cache, 'file:1')
    assert mc.reload().rules == 1
    assert [r.name for r in mc.rules()] == ['file-rule']
    assert set_fails(cache, 'file:1')


def test_reload_bad_file_raises_rule_error(start_mcfault,
                                           tmp_path: Path) -> None:
    f = tmp_path / 'r.yaml'
    f.write_text('rules:\n  - name: a\n    action: drop\n')
    p = start_mcfault(config=str(f))
    mc = p.client
    f.write_text('rules:\n  - name: a\n    action: drop\n    dleay: 1s\n')
    with pytest.raises(RuleError) as ei:
        mc.reload()
    assert ei.value.status == 400
    [problem] = ei.value.problems
    assert problem.startswith('%s:4:5: unknown key' % f)
    assert [r.name for r in mc.rules()] == ['a']


def test_reload_without_rule_file_is_409(start_mcfault) -> None:
    mc = start_mcfault().client
    with pytest.raises(ApiError) as ei:
        mc.reload()
    assert ei.value.status == 409
    assert not isinstance(ei.value, RuleError)  # nothing wrong with rules
    assert 'nothing to reload' in ei.value.message


# -- stats, metrics, events ---------------------------------------------------


def test_stats_move_with_traffic(mc: mcfault.Mcfault,
                                 cache: MemcacheClient) -> None:
    before = mc.stats()
    assert isinstance(before, Stats)
    assert before.version and before.rules == 1
    mc.set_rules([OOM])
    set_fails(cache, 'oom:5')
    cache.get('k')
    after = mc.stats()
    assert after.commands['set'] == before.commands.get('set', 0) + 1
    assert after.commands['get'] == before.commands.get('get', 0) + 1
    assert after.faults['error'] == before.faults.get('error', 0) + 1
    assert after.faults_total == before.faults_total + 1
    assert after.client_bytes_in > before.client_bytes_in
    assert after.reloads_ok == before.reloads_ok + 1
    [p] = after.proxies
    assert p.name == 'default' and p.connections_now >= 1
    assert [(r.name, r.fired) for r in p.rules] == [('oom', 1)]


def test_metrics_text(mc: mcfault.Mcfault, cache: MemcacheClient) -> None:
    mc.set_rules([OOM])
    set_fails(cache, 'oom:6')
    text = mc.metrics()
    assert '# TYPE mcfault_build_info gauge' in text
    assert 'mcfault_rule_fired_total{proxy="default",rule="oom"} 1' in text


def test_events_since(mc: mcfault.Mcfault, cache: MemcacheClient) -> None:
    start = mc.events().last
    mc.set_rules([OOM])
    set_fails(cache, 'oom:a')
    set_fails(cache, 'oom:b')
    ev = mc.events(since=start)
    assert len(ev) == 2 and ev.last == start + 2
    assert [(e.seq, e.rule, e.action, e.command, e.key) for e in ev] == [
        (start + 1, 'oom', 'error', 'set', 'oom:a'),
        (start + 2, 'oom', 'error', 'set', 'oom:b')]
    assert ev[0].proxy == 'default' and ev[0].keys == 1
    assert ev[0].time > 1e9
    assert mc.events(since=ev.last).events == []
    with pytest.raises(ValueError):
        mc.events(since=-1)


def test_event_keys_with_invalid_utf8(mc: mcfault.Mcfault,
                                      cache: MemcacheClient) -> None:
    start = mc.events().last
    mc.set_rules([dict(OOM, key='bin:*')])
    with pytest.raises(MemcacheServerError):
        cache.set(b'bin:\xff', b'v', noreply=False)
    [e] = mc.events(since=start)
    assert e.key == 'bin:\xff'  # the byte 0xff as U+00FF
    assert e.key.encode('latin-1') == b'bin:\xff'


# -- transport errors ---------------------------------------------------------


def test_dead_admin_port_is_connection_failed() -> None:
    mc = mcfault.Mcfault('http://127.0.0.1:%d' % free_port(), timeout=2)
    with pytest.raises(ConnectionFailed) as ei:
        mc.health()
    assert isinstance(ei.value, ConnectionError)
    assert isinstance(ei.value, McfaultError)


def test_silent_admin_is_timeout(silent_server) -> None:
    mc = mcfault.Mcfault('127.0.0.1:%d' % silent_server.port, timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(Timeout) as ei:
        mc.rules()
    assert 0.25 < time.monotonic() - t0 < 3
    assert isinstance(ei.value, TimeoutError)
    assert 'within 0.3s' in str(ei.value)


def test_non_json_replies(canned: Callable) -> None:
    s = canned(b'HTTP/1.1 413 Payload Too Large\r\nContent-Length: 5\r\n'
               b'Connection: close\r\n\r\n<h1/>')
    with pytest.raises(ApiError) as ei:
        mcfault.Mcfault('127.0.0.1:%d' % s.port).set_rules('rules: []')
    assert (ei.value.status, ei.value.message, ei.value.body) == (
        413, 'Payload Too Large', None)
    s = canned(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n'
               b'Connection: close\r\n\r\nhi')
    with pytest.raises(McfaultError, match='not a JSON object'):
        mcfault.Mcfault('127.0.0.1:%d' % s.port).stats()
    s = canned(b'HTTP/1.1 500 Internal\r\nContent-Length: 22\r\n'
               b'Connection: close\r\n\r\n{"error":"out of mem"}')
    with pytest.raises(ApiError) as ei:
        mcfault.Mcfault('127.0.0.1:%d' % s.port).stats()
    assert (ei.value.status, ei.value.message) == (500, 'out of mem')


def test_closed_without_reply_is_connection_failed(canned: Callable) -> None:
    s = canned(b'')
    with pytest.raises(ConnectionFailed):
        mcfault.Mcfault('127.0.0.1:%d' % s.port).health()


def test_url_forms() -> None:
    assert mcfault.Mcfault('127.0.0.1:9').url == 'http://127.0.0.1:9'
    assert mcfault.Mcfault('http://[::1]:9/').url == 'http://[::1]:9'
    with pytest.raises(ValueError):
        mcfault.Mcfault('https://127.0.0.1:9')

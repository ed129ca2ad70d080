# The endpoints added in issue 10 (POST /rules, GET and DELETE /rules/NAME,
# POST /reset, POST /upstream/command, GET /upstream/stats) and the fault()
# context manager built on them, against a real mcfault and memcached, with
# pymemcache proving that each fault took effect and was undone. Each test
# skips, saying so, while MCFAULT_BIN lacks the endpoint it needs.

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pymemcache.client.base import Client as MemcacheClient
from pymemcache.exceptions import MemcacheServerError

import mcfault
from mcfault import (ApiError, ConnectionFailed, NotFound, Rule, RuleChange,
                     RuleError, UpstreamError, UpstreamReply, UpstreamTimeout)
from mcfault.process import free_port

OOM = {'name': 'oom', 'command': 'set', 'key': 'oom:*', 'action': 'error',
       'message': 'SERVER_ERROR out of memory storing object'}
MISS = {'name': 'miss-hot', 'key': 'hot:*', 'action': 'miss'}


def set_fails(cache: MemcacheClient, key: str) -> bool:
    try:
        cache.set(key, b'v')
    except MemcacheServerError:
        return True
    return False


def names(mc: mcfault.Mcfault) -> list:
    return [r.name for r in mc.rules()]


# -- POST /rules --------------------------------------------------------------


def test_add_rule_appends_and_takes_effect(mc, cache, need) -> None:
    need('add_rule')
    assert not set_fails(cache, 'oom:1')
    assert mc.add_rule(OOM) == RuleChange(rules=2, added=1)
    assert names(mc) == ['file-rule', 'oom']  # after the rules in force
    assert set_fails(cache, 'oom:1')
    cache.set('hot:1', b'h')
    assert mc.add_rule([MISS, {'name': 'd', 'key': 'nothing', 'action':
                               'drop'}]).added == 2
    assert cache.get('hot:1') is None
    assert names(mc) == ['file-rule', 'oom', 'miss-hot', 'd']


def test_add_rule_text_and_rules_mapping(mc, need) -> None:
    need('add_rule')
    assert mc.add_rule('- name: y1\n  action: drop\n  key: y\n').added == 1
    assert mc.add_rule(b'{"name": "y2", "action": "drop", "key": "y"}'
                       ).added == 1
    assert mc.add_rule({'rules': [{'name': 'y3', 'action': 'drop',
                                   'key': 'y'}]}).added == 1
    assert names(mc)[-3:] == ['y1', 'y2', 'y3']


def test_add_rule_duplicate_is_409_and_changes_nothing(mc, cache,
                                                        need) -> None:
    need('add_rule')
    mc.add_rule(OOM)
    with pytest.raises(RuleError) as ei:
        mc.add_rule([MISS, OOM])
    e = ei.value
    assert e.status == 409
    assert e.message == 'duplicate rule name'
    assert e.problems == ["rule 'oom' already exists"]
    assert names(mc) == ['file-rule', 'oom']  # miss-hot not added either
    with pytest.raises(RuleError) as ei:
        mc.add_rule([MISS, MISS])  # twice in one body
    assert ei.value.status == 409
    assert names(mc) == ['file-rule', 'oom']


def test_add_rule_invalid_is_400_with_problems(mc, need) -> None:
    need('add_rule')
    with pytest.raises(RuleError) as ei:
        mc.add_rule('- name: ok\n  action: drop\n'
                    '- name: bad\n  action: delay\n  delya: 1s\n')
    e = ei.value
    assert e.status == 400 and e.message == 'invalid rules'
    assert e.problems and all(p.startswith('body:') for p in e.problems)
    assert any("unknown key 'delya'" in p for p in e.problems)
    assert names(mc) == ['file-rule']  # "ok" was not added


def test_add_rule_unknown_proxy(mc, need) -> None:
    need('add_rule')
    with pytest.raises(NotFound):
        mc.add_rule(OOM, proxy='nope')
    assert mc.add_rule(OOM, proxy='default').added == 1


def test_add_rule_rejects_non_rules(mc) -> None:
    with pytest.raises(TypeError):
        mc.add_rule([42])
    with pytest.raises(TypeError):
        mc.add_rule(['- name: a'])


# -- GET and DELETE /rules/NAME -----------------------------------------------


def test_get_rule(mc, need) -> None:
    need('add_rule', 'rule_by_name')
    mc.add_rule(OOM)
    r = mc.get_rule('oom')
    assert isinstance(r, Rule)
    listed = [x for x in mc.rules() if x.name == 'oom'][0]
    assert r == listed  # same fields as GET /rules, proxy included
    assert r.proxy == 'default'
    assert mc.get_rule('oom', proxy='default').name == 'oom'
    with pytest.raises(NotFound) as ei:
        mc.get_rule('no-such')
    assert ei.value.message == "no rule named 'no-such'"
    with pytest.raises(NotFound):
        mc.get_rule('oom', proxy='nope')


def test_remove_rule_undoes_the_fault(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')
    mc.add_rule(OOM)
    assert set_fails(cache, 'oom:2')
    assert mc.remove_rule('oom') == RuleChange(rules=1, removed=1)
    assert not set_fails(cache, 'oom:2')
    with pytest.raises(NotFound):
        mc.remove_rule('oom')


def test_odd_names_round_trip(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')
    odd = 'a/b c?d&e%f#g é'
    mc.add_rule(dict(OOM, name=odd))
    assert mc.get_rule(odd).name == odd
    assert mc.disable(odd).changed == 1
    assert mc.get_rule(odd).enabled is False
    assert mc.remove_rule(odd).removed == 1


def test_to_spec_round_trip(mc, need) -> None:
    need('add_rule', 'rule_by_name')
    spec = {'name': 'every-key', 'command': ['get', 'mg'], 'key': ['a*', 'b?'],
            'action': 'delay', 'delay': '1.5s', 'jitter': '250ms',
            'probability': '25%', 'after': 2, 'limit': 3, 'forward': True,
            'enabled': False}
    mc.add_rule(spec)
    before = mc.get_rule('every-key')
    assert (before.delay_us, before.jitter_us, before.probability) == (
        1500000, 250000, 0.25)
    mc.remove_rule('every-key')
    mc.add_rule(before)  # a Rule is accepted as it is
    after = mc.get_rule('every-key')
    assert after == before


# -- fault() ------------------------------------------------------------------


def test_fault_in_force_for_the_block_only(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')
    assert not set_fails(cache, 'oom:3')
    with mc.fault(OOM) as f:
        assert f.names == ['oom']
        assert set_fails(cache, 'oom:3')
        assert f.rule().fired == 1
    assert not set_fails(cache, 'oom:3')
    assert names(mc) == ['file-rule']


def test_fault_removed_when_the_block_raises(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')
    with pytest.raises(ZeroDivisionError):
        with mc.fault(OOM):
            1 / 0
    assert names(mc) == ['file-rule']
    assert not set_fails(cache, 'oom:4')


def test_fault_several_rules_and_generated_names(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')
    cache.set('hot:2', b'h')
    with mc.fault(OOM, {'key': 'hot:*', 'action': 'miss'}) as f:
        assert f.names[0] == 'oom'
        assert f.names[1].startswith('fault-')
        assert set_fails(cache, 'oom:5')
        assert cache.get('hot:2') is None
        assert [r.fired for r in f.rules()] == [1, 1]
    assert cache.get('hot:2') == b'h'
    with mc.fault([OOM, MISS]) as f:
        assert f.names == ['oom', 'miss-hot']
    assert names(mc) == ['file-rule']


def test_fault_keeps_what_was_there(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')
    mc.add_rule(MISS)
    with mc.fault(OOM):
        with mc.fault({'name': 'inner', 'key': 'x', 'action': 'drop'}):
            assert names(mc) == ['file-rule', 'miss-hot', 'oom', 'inner']
        assert names(mc) == ['file-rule', 'miss-hot', 'oom']
    assert names(mc) == ['file-rule', 'miss-hot']
    # A taken name: nothing is added and the block does not run.
    ran = []
    with pytest.raises(RuleError) as ei:
        with mc.fault(OOM, MISS):
            ran.append(1)
    assert ei.value.status == 409 and ran == []
    assert names(mc) == ['file-rule', 'miss-hot']


def test_fault_tolerates_a_block_that_removed_it(mc, need) -> None:
    need('add_rule', 'rule_by_name')
    with mc.fault(OOM):
        mc.remove_rule('oom')
    with mc.fault(OOM):
        mc.clear_rules()
    assert names(mc) == []


def test_fault_as_decorator(mc, cache, need) -> None:
    need('add_rule', 'rule_by_name')

    @mc.fault(OOM)
    def body() -> bool:
        return set_fails(cache, 'oom:6')

    assert body() is True
    assert body() is True  # usable again
    assert not set_fails(cache, 'oom:6')


def test_fault_cleanup_failure(start_mcfault, need) -> None:
    need('add_rule', 'rule_by_name')
    p = start_mcfault()
    mc = p.client
    # The block's own error wins; the cleanup's is noted on it.
    with pytest.raises(ValueError) as ei:
        with mc.fault(OOM):
            p.stop()
            raise ValueError('the test failed')
    assert any('removing fault rules' in n for n in ei.value.__notes__)
    # No error in the block: the cleanup's own error is raised.
    p.start()
    f = p.client.fault(OOM)
    with pytest.raises(ConnectionFailed):
        with f:
            p.stop()


def test_fault_needs_rules(mc) -> None:
    with pytest.raises(ValueError):
        mc.fault()
    with pytest.raises(TypeError):
        mc.fault('name: a')


# -- POST /reset --------------------------------------------------------------


def test_reset_restores_rules_and_zeroes_counters(mc, cache, need) -> None:
    need('reset')
    mc.set_rules([OOM])
    set_fails(cache, 'oom:7')
    cache.get('k')
    assert mc.stats().faults_total > 0 and mc.events().last > 0
    change = mc.reset()
    assert change.rules == 1
    [r] = mc.rules()
    assert (r.name, r.matched, r.fired, r.enabled) == ('file-rule', 0, 0, True)
    st = mc.stats()
    assert st.faults_total == 0 and sum(st.faults.values()) == 0
    assert st.commands.get('set', 0) == 0
    assert st.proxies[0].rules[0].fired == 0
    ev = mc.events()
    assert (ev.last, ev.events) == (0, [])
    # Sequence numbers restart at 1.
    assert set_fails(cache, 'file:1')
    assert [e.seq for e in mc.events()] == [1]


def test_reset_enables_what_the_file_enables(mc, cache, need) -> None:
    need('reset')
    mc.disable('file-rule')
    assert not set_fails(cache, 'file:2')
    mc.reset()
    assert set_fails(cache, 'file:2')


def test_reset_without_rule_file_leaves_no_rules(start_mcfault, need) -> None:
    need('reset')
    mc = start_mcfault().client
    mc.set_rules([OOM])
    assert mc.reset().rules == 0
    assert mc.rules() == []


def test_reset_bad_rule_file_resets_nothing(start_mcfault, need,
                                            tmp_path: Path) -> None:
    need('reset')
    f = tmp_path / 'r.yaml'
    f.write_text('rules: []\n')
    p = start_mcfault(config=str(f))
    mc = p.client
    mc.set_rules([OOM])
    c = MemcacheClient(p.listen, timeout=3, default_noreply=False)
    assert set_fails(c, 'oom:8')
    c.close()
    f.write_text('rules:\n  - name: z\n    action: explode\n')
    with pytest.raises(RuleError) as ei:
        mc.reset()
    assert ei.value.status == 400
    assert ei.value.problems[0].startswith('%s:3:13:' % f)
    assert names(mc) == ['oom']
    assert mc.get_rule('oom').fired == 1
    assert mc.stats().faults_total == 1


# -- POST /upstream/command ---------------------------------------------------


def test_upstream_command_goes_past_the_rules(mc, cache, direct,
                                              need) -> None:
    need('upstream_command')
    mc.set_rules([dict(OOM, key='*')])
    assert set_fails(cache, 'up:1')
    r = mc.upstream_command('set up:1 0 0 2\r\nhi\r\n')
    assert isinstance(r, UpstreamReply)
    assert (r.reply, r.text) == (b'STORED\r\n', 'STORED\r\n')
    assert r.elapsed_us >= 0
    assert direct.get('up:1') == b'hi'
    assert mc.get_rule('oom').matched == 1  # the upstream set is not
    assert mc.upstream_command(b'get up:1').reply == (
        b'VALUE up:1 0 2\r\nhi\r\nEND\r\n')  # \r\n added
    assert mc.upstream_command('version').text.startswith('VERSION ')


def test_upstream_command_binary_and_noreply(mc, direct, need) -> None:
    need('upstream_command')
    r = mc.upstream_command(b'set bin:1 0 0 2\r\n\xff\xfe\r\n')
    assert r.reply == b'STORED\r\n'
    r = mc.upstream_command('get bin:1')
    assert r.reply == b'VALUE bin:1 0 2\r\n\xff\xfe\r\nEND\r\n'
    assert r.text is None  # not UTF-8
    r = mc.upstream_command('set nr:1 0 0 1 noreply\r\nx\r\n')
    assert (r.reply, r.text) == (b'', '')
    assert direct.get('nr:1') == b'x'


def test_upstream_command_bad_bodies(mc, need) -> None:
    need('upstream_command')
    for body in ('', 'get a\r\nget b\r\n', 'set k 0 0 5\r\nhi\r\n'):
        with pytest.raises(ApiError) as ei:
            mc.upstream_command(body)
        assert ei.value.status == 400, body
        assert not isinstance(ei.value, RuleError)
    with pytest.raises(NotFound):
        mc.upstream_command('version', proxy='nope')


def test_upstream_command_dead_upstream_is_502(start_mcfault, need) -> None:
    need('upstream_command')
    mc = start_mcfault(upstream='127.0.0.1:%d' % free_port()).client
    with pytest.raises(UpstreamError) as ei:
        mc.upstream_command('version')
    assert ei.value.status == 502
    assert not isinstance(ei.value, UpstreamTimeout)
    assert ei.value.message.startswith('upstream: ')


def test_upstream_command_silent_upstream_is_504(start_mcfault, silent_server,
                                                 need) -> None:
    need('upstream_command')
    mc = start_mcfault(upstream='127.0.0.1:%d' % silent_server.port).client
    t0 = time.monotonic()
    with pytest.raises(UpstreamTimeout) as ei:
        mc.upstream_command('version', timeout_ms=300)
    assert ei.value.status == 504
    assert ei.value.message == 'upstream: timeout'
    assert 0.25 < time.monotonic() - t0 < 4


# -- GET /upstream/stats ------------------------------------------------------


def test_upstream_stats(mc, memcached, need) -> None:
    need('upstream_stats')
    st = mc.upstream_stats()
    assert st['pid'] == str(memcached.proc.pid)
    assert all(isinstance(v, str) for v in st.values())
    settings = mc.upstream_stats('settings')
    assert settings['tcpport'] == str(memcached.port)
    assert isinstance(mc.upstream_stats(sub='items', proxy='default'), dict)
    with pytest.raises(ValueError):
        mc.upstream_stats('nonsense')
    with pytest.raises(NotFound):
        mc.upstream_stats(proxy='nope')


def test_upstream_stats_dead_upstream_is_502(start_mcfault, need) -> None:
    need('upstream_stats')
    mc = start_mcfault(upstream='127.0.0.1:%d' % free_port()).client
    with pytest.raises(UpstreamError) as ei:
        mc.upstream_stats()
    assert ei.value.status == 502

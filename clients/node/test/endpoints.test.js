// Every admin endpoint through the client, against an mcfault started with
// a rule file (-c), so that reload and reset have something to go back to.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';

import { McfaultError, NotFoundError, RuleError } from '../src/index.js';
import { need, useMcfault } from './harness.js';
import { withConn } from './memcache.js';

const RULE_FILE = `rules:
  - name: file-miss
    command: get
    key: "file:*"
    action: miss
  - name: file-slow
    command: [get, mg]
    key: "slow:*"
    action: delay
    delay: 5ms
    jitter: 2ms
    probability: 50%
    after: 3
    limit: 7
    forward: true
    enabled: false
`;

const OOM = 'SERVER_ERROR out of memory storing object';

describe('admin endpoints', () => {
    const ctx = useMcfault({ config: RULE_FILE });
    const names = async () =>
        (await ctx.mc.rules()).proxies[0].rules.map((r) => r.name);

    it('health', async () => {
        const h = await ctx.mc.health();
        assert.equal(h.ok, true);
        assert.equal(h.proxies.length, 1);
        const p = h.proxies[0];
        assert.equal(p.name, 'default');
        assert.equal(p.upstream_reachable, true);
        assert.equal(p.enabled, true);
        assert.equal(p.listen, `127.0.0.1:${ctx.mcfault.port}`);
        assert.equal(p.upstream, `127.0.0.1:${ctx.memcached.port}`);
    });

    it('rules: the file rules with every field and counter', async () => {
        const r = await ctx.mc.rules();
        assert.equal(r.proxies.length, 1);
        assert.equal(r.proxies[0].name, 'default');
        const [miss, slow] = r.proxies[0].rules;
        assert.deepEqual(miss, {
            name: 'file-miss', command: ['get'], key: ['file:*'],
            action: 'miss', probability: 1, after: 0, limit: 0,
            forward: false, enabled: true, matched: 0, fired: 0,
            in_force: true, next_change_ms: null,
        });
        assert.deepEqual(slow, {
            name: 'file-slow', command: ['get', 'mg'], key: ['slow:*'],
            action: 'delay', delay_us: 5000, jitter_us: 2000,
            probability: 0.5, after: 3, limit: 7, forward: true,
            enabled: false, matched: 0, fired: 0,
            in_force: false, next_change_ms: null,
        });
        assert.deepEqual(await ctx.mc.rules({ proxy: 'default' }), r);
        await assert.rejects(ctx.mc.rules({ proxy: 'nope' }),
            { name: 'NotFoundError', status: 404 });
    });

    it('setRules: an object, an array, YAML text, bytes', async () => {
        const { mc } = ctx;
        assert.deepEqual(await mc.setRules({ rules: [
            { name: 'a', action: 'miss' }, { name: 'b', action: 'drop' }] }),
        { ok: true, rules: 2 });
        assert.deepEqual(await names(), ['a', 'b']);
        assert.deepEqual(await mc.setRules([{ name: 'c', action: 'hang' }]),
            { ok: true, rules: 1 });
        assert.deepEqual(await names(), ['c']);
        await mc.setRules('rules:\n  - {name: d, action: miss}\n');
        assert.deepEqual(await names(), ['d']);
        await mc.setRules(Buffer.from('{"rules":[{"name":"e",' +
            '"action":"miss"}]}'), { proxy: 'default' });
        assert.deepEqual(await names(), ['e']);
        const all = (await mc.rules()).proxies[0].rules;
        assert.equal(all[0].action, 'miss');
    });

    it('addRule: one, a list, {rules}, YAML; appended in order',
        async (t) => {
            if (!need(t, ctx, 'addRule')) {
                return;
            }
            const { mc } = ctx;
            await mc.clearRules();
            assert.deepEqual(await mc.addRule({ name: 'one', action: 'miss' }),
                { ok: true, rules: 1, added: 1 });
            assert.deepEqual(await mc.addRule([
                { name: 'two', action: 'miss' },
                { name: 'three', action: 'drop', key: 'x:*' }]),
            { ok: true, rules: 3, added: 2 });
            assert.deepEqual(await mc.addRule({ rules: [
                { name: 'four', action: 'hang', key: 'h' }] },
            { proxy: 'default' }), { ok: true, rules: 4, added: 1 });
            assert.deepEqual(await mc.addRule(
                '- name: five\n  action: error\n  message: SERVER_ERROR x\n'),
            { ok: true, rules: 5, added: 1 });
            assert.deepEqual(await names(),
                ['one', 'two', 'three', 'four', 'five']);
            await assert.rejects(mc.addRule({ name: 'six', action: 'miss' },
                { proxy: 'nope' }), { name: 'NotFoundError', status: 404 });
        });

    it('getRule: as in GET /rules plus proxy; names percent-encoded',
        async (t) => {
            if (!need(t, ctx, 'ruleByName')) {
                return;
            }
            const { mc } = ctx;
            const listed = (await mc.rules()).proxies[0].rules[1];
            assert.deepEqual(await mc.getRule('file-slow'),
                { ...listed, proxy: 'default' });
            assert.deepEqual(await mc.getRule('file-slow',
                { proxy: 'default' }), { ...listed, proxy: 'default' });
            const odd = 'odd/name é?&#%';
            await mc.setRules({ rules: [{ name: odd, action: 'miss' }] });
            const r = await mc.getRule(odd);
            assert.equal(r.name, odd);
            assert.deepEqual(await mc.disable(odd), { ok: true, changed: 1 });
            assert.equal((await mc.getRule(odd)).enabled, false);
            assert.deepEqual(await mc.enable(odd), { ok: true, changed: 1 });
            assert.deepEqual(await mc.removeRule(odd),
                { ok: true, removed: 1, rules: 0 });
            await assert.rejects(mc.getRule(odd), NotFoundError);
        });

    it('removeRule: 200 with counts, then 404', async (t) => {
        if (!need(t, ctx, 'ruleByName')) {
            return;
        }
        const { mc } = ctx;
        assert.deepEqual(await mc.removeRule('file-miss'),
            { ok: true, removed: 1, rules: 1 });
        assert.deepEqual(await names(), ['file-slow']);
        const e = await mc.removeRule('file-miss').catch((x) => x);
        assert.ok(e instanceof NotFoundError);
        assert.equal(e.status, 404);
        assert.match(e.reason, /file-miss/);
        assert.deepEqual(await mc.removeRule('file-slow',
            { proxy: 'default' }), { ok: true, removed: 1, rules: 0 });
    });

    it('clearRules', async () => {
        assert.deepEqual(await ctx.mc.clearRules(), { ok: true, rules: 0 });
        assert.deepEqual(await names(), []);
        assert.deepEqual(await ctx.mc.clearRules({ proxy: 'default' }),
            { ok: true, rules: 0 });
    });

    it('enable / disable', async () => {
        const { mc } = ctx;
        assert.deepEqual(await mc.enable('file-slow'),
            { ok: true, changed: 1 });
        assert.equal((await mc.rules()).proxies[0].rules[1].enabled, true);
        assert.deepEqual(await mc.disable('file-slow'),
            { ok: true, changed: 1 });
        assert.equal((await mc.rules()).proxies[0].rules[1].enabled, false);
    });

    it('reload: the file comes back; a bad file is refused', async () => {
        const { mc, mcfault } = ctx;
        await mc.setRules({ rules: [{ name: 'put', action: 'miss' }] });
        assert.deepEqual(await mc.reload(), { ok: true, rules: 2 });
        assert.deepEqual(await names(), ['file-miss', 'file-slow']);
        fs.writeFileSync(mcfault.configPath,
            'rules:\n  - name: bad\n    action: delay\n');
        try {
            const e = await mc.reload().catch((x) => x);
            assert.ok(e instanceof RuleError, String(e));
            assert.equal(e.status, 400);
            assert.equal(e.problems.length, 1);
            assert.ok(e.problems[0].startsWith(`${mcfault.configPath}:2:5: `),
                e.problems[0]);
            assert.deepEqual(await names(), ['file-miss', 'file-slow']);
        } finally {
            fs.writeFileSync(mcfault.configPath, RULE_FILE);
        }
    });

    it('reset: file rules, counters and events as at the start',
        async (t) => {
            if (!need(t, ctx, 'reset')) {
                return;
            }
            const { mc, mcfault } = ctx;
            await withConn(mcfault.port, async (c) => {
                await c.set('file:1', 'v');
                assert.equal(await c.get('file:1'), null);
            });
            await mc.disable('file-miss');
            await mc.setRules({ rules: [{ name: 'put', action: 'miss' }] });
            assert.ok((await mc.events()).last >= 1);
            assert.deepEqual(await mc.reset(), { ok: true, rules: 2 });
            const r = (await mc.rules()).proxies[0].rules;
            assert.deepEqual(r.map((x) => [x.name, x.enabled, x.matched,
                x.fired]), [['file-miss', true, 0, 0],
                ['file-slow', false, 0, 0]]);
            assert.deepEqual(await mc.events(), { last: 0, events: [] });
            const s = await mc.stats();
            assert.equal(s.faults_total, 0);
            assert.deepEqual(s.commands, {});
        });

    it('stats move with traffic', async () => {
        const { mc, mcfault } = ctx;
        const before = await mc.stats();
        assert.equal(typeof before.version, 'string');
        assert.equal(before.rules, 2);
        await withConn(mcfault.port, async (c) => {
            await c.set('k', 'v');
            assert.equal(await c.get('k'), 'v');
            assert.equal(await c.get('file:x'), null);
        });
        const s = await mc.stats();
        assert.equal(s.commands.get, (before.commands.get ?? 0) + 2);
        assert.equal(s.commands.set, (before.commands.set ?? 0) + 1);
        assert.equal(s.faults.miss, before.faults.miss + 1);
        assert.ok(s.connections_total > before.connections_total);
        assert.equal(s.proxies[0].rules[0].name, 'file-miss');
        assert.equal(s.proxies[0].rules[0].fired,
            before.proxies[0].rules[0].fired + 1);
    });

    it('metrics: Prometheus text', async () => {
        const m = await ctx.mc.metrics();
        assert.equal(typeof m, 'string');
        assert.match(m, /^# HELP /m);
        assert.match(m, /^# TYPE mcfault_rules gauge$/m);
        assert.match(m, /^mcfault_rules 2$/m);
        assert.match(m,
            /^mcfault_rule_enabled\{proxy="default",rule="file-slow"\} 0$/m);
    });

    it('events since N', async () => {
        const { mc, mcfault } = ctx;
        const start = (await mc.events()).last;
        await withConn(mcfault.port, async (c) => {
            await c.get('file:1');
            await c.get('file:2');
        });
        const all = await mc.events({ since: start });
        assert.equal(all.last, start + 2);
        assert.deepEqual(all.events.map((e) => [e.seq, e.event.key]),
            [[start + 1, 'file:1'], [start + 2, 'file:2']]);
        const tail = await mc.events({ since: start + 1 });
        assert.deepEqual(tail.events.map((e) => e.seq), [start + 2]);
        assert.deepEqual((await mc.events({ since: all.last })).events, []);
        const e = await mc.events({ since: -1 }).catch((x) => x);
        assert.ok(e instanceof McfaultError);
        assert.ok(!(e instanceof RuleError));
        assert.equal(e.status, 400);
    });

    it('upstreamCommand: past the rules, text and bytes', async (t) => {
        if (!need(t, ctx, 'upstream')) {
            return;
        }
        const { mc, mcfault } = ctx;
        await mc.setRules({ rules: [{ name: 'oom', command: 'set',
            action: 'error', message: OOM }, { name: 'all-miss',
            action: 'miss' }] });
        const set = await mc.upstreamCommand('set up:1 0 0 2\r\nhi\r\n');
        assert.equal(set.ok, true);
        assert.equal(set.reply, 'STORED\r\n');
        assert.equal(Buffer.from(set.reply_base64, 'base64').toString(),
            'STORED\r\n');
        assert.equal(typeof set.elapsed_us, 'number');
        // No final \r\n: mcfault adds it.
        const get = await mc.upstreamCommand('get up:1', { proxy: 'default',
            upstreamTimeoutMs: 2000 });
        assert.equal(get.reply, 'VALUE up:1 0 2\r\nhi\r\nEND\r\n');
        // Through the proxy the rules still apply.
        await withConn(mcfault.port, async (c) => {
            assert.equal(await c.get('up:1'), null);
        });
        const nr = await mc.upstreamCommand('set up:2 0 0 1 noreply\r\nx\r\n');
        assert.equal(nr.reply, '');
        const bin = Buffer.from([0x73, 0xff, 0xfe]);
        await mc.upstreamCommand(Buffer.concat([
            Buffer.from('set up:bin 0 0 3\r\n'), bin, Buffer.from('\r\n')]));
        const g = await mc.upstreamCommand(Buffer.from('get up:bin\r\n'));
        assert.equal(g.reply, null);
        assert.deepEqual(Buffer.from(g.reply_base64, 'base64'),
            Buffer.concat([Buffer.from('VALUE up:bin 0 3\r\n'), bin,
                Buffer.from('\r\nEND\r\n')]));
        const bad = await mc.upstreamCommand('get a\r\nget b\r\n')
            .catch((x) => x);
        assert.ok(bad instanceof McfaultError, String(bad));
        assert.ok(!(bad instanceof RuleError));
        assert.equal(bad.status, 400);
    });

    it('upstreamStats: memcached stats and its subs', async (t) => {
        if (!need(t, ctx, 'upstream')) {
            return;
        }
        const { mc } = ctx;
        const s = await mc.upstreamStats();
        assert.equal(s.ok, true);
        assert.match(s.stats.pid, /^\d+$/);
        assert.equal(typeof s.stats.uptime, 'string');
        const settings = await mc.upstreamStats('settings');
        assert.equal(settings.stats.maxconns, '1024');
        const items = await mc.upstreamStats('items', { proxy: 'default' });
        assert.equal(items.ok, true);
        assert.equal((await mc.upstreamStats({ proxy: 'default' })).ok, true);
        const e = await mc.upstreamStats('bogus').catch((x) => x);
        assert.ok(e instanceof McfaultError);
        assert.equal(e.status, 400);
        await assert.rejects(mc.upstreamStats('items', { proxy: 'nope' }),
            NotFoundError);
    });
});

// Faults set through the client take effect on real memcached traffic and
// are undone: each action seen over a raw memcached connection, rules
// switched off and on, and the scoped helpers (await using, withFault)
// restoring what was there before, on success and on failure.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Fault, Mcfault } from '../src/index.js';
import { need, useMcfault } from './harness.js';
import { withConn } from './memcache.js';

const OOM = 'SERVER_ERROR out of memory storing object';

describe('faults on real traffic', () => {
    const ctx = useMcfault();

    it('error: set on session:* fails until the rule is removed',
        async (t) => {
            if (!need(t, ctx, 'addRule') || !need(t, ctx, 'ruleByName')) {
                return;
            }
            const { mc, mcfault } = ctx;
            const r = await mc.addRule({
                name: 'oom', command: 'set', key: 'session:*',
                action: 'error', message: OOM,
            });
            assert.deepEqual(r, { ok: true, rules: 1, added: 1 });
            await withConn(mcfault.port, async (c) => {
                assert.equal(await c.set('session:1', 'x'), `${OOM}\r\n`);
                assert.equal(await c.set('other:1', 'x'), 'STORED\r\n');
                const removed = await mc.removeRule('oom');
                assert.deepEqual(removed, { ok: true, removed: 1, rules: 0 });
                assert.equal(await c.set('session:1', 'x'), 'STORED\r\n');
            });
        });

    it('miss (PUT /rules from YAML): get answers END, then the value',
        async () => {
            const { mc, mcfault } = ctx;
            await withConn(mcfault.port, async (c) => {
                assert.equal(await c.set('user:1', 'alice'), 'STORED\r\n');
                const r = await mc.setRules(
                    'rules:\n  - name: miss-users\n    key: "user:*"\n' +
                    '    action: miss\n');
                assert.deepEqual(r, { ok: true, rules: 1 });
                assert.equal(await c.get('user:1'), null);
                await mc.clearRules();
                assert.equal(await c.get('user:1'), 'alice');
            });
        });

    it('delay: a get takes the delay, then no longer', async () => {
        const { mc, mcfault } = ctx;
        await mc.setRules({
            rules: [{ name: 'slow', command: 'get', action: 'delay',
                delay: '300ms' }],
        });
        await withConn(mcfault.port, async (c) => {
            const slow = await c.request('get k\r\n');
            assert.equal(slow.reply, 'END\r\n');
            assert.ok(slow.ms >= 280, `took ${slow.ms} ms`);
            await mc.clearRules();
            const fast = await c.request('get k\r\n');
            assert.ok(fast.ms < 250, `took ${fast.ms} ms`);
        });
    });

    it('drop closes the connection; hang never answers', async () => {
        const { mc, mcfault } = ctx;
        await mc.setRules([
            { name: 'drop', key: 'drop:*', action: 'drop' },
            { name: 'hang', key: 'hang:*', action: 'hang' },
        ]);
        await withConn(mcfault.port, async (c) => {
            const r = await c.request('get drop:1\r\n');
            assert.equal(r.closed, true);
            assert.equal(r.reply, '');
        });
        await withConn(mcfault.port, async (c) => {
            const r = await c.request('get hang:1\r\n', { timeoutMs: 300 });
            assert.equal(r.timedOut, true);
            assert.equal(r.reply, '');
        });
        await mc.clearRules();
        await withConn(mcfault.port, async (c) => {
            assert.equal(await c.get('drop:1'), null);
            assert.equal(await c.get('hang:1'), null);
        });
    });

    it('disable switches a rule off, enable back on', async () => {
        const { mc, mcfault } = ctx;
        await mc.setRules({ rules: [{ name: 'oom', command: 'set',
            action: 'error', message: OOM }] });
        await withConn(mcfault.port, async (c) => {
            assert.deepEqual(await mc.disable('oom'), { ok: true, changed: 1 });
            assert.equal(await c.set('k', 'v'), 'STORED\r\n');
            assert.deepEqual(await mc.enable('oom'), { ok: true, changed: 1 });
            assert.equal(await c.set('k', 'v'), `${OOM}\r\n`);
        });
        const rule = (await mc.rules()).proxies[0].rules[0];
        assert.equal(rule.fired, 1);
        assert.equal(rule.matched, 1);
    });

    it('the fault shows in /events and /stats', async () => {
        const { mc, mcfault } = ctx;
        const before = (await mc.events()).last;
        await mc.setRules({ rules: [{ name: 'oom', command: 'set',
            key: 'ev:*', action: 'error', message: OOM }] });
        await withConn(mcfault.port, (c) => c.set('ev:1', 'v'));
        const ev = await mc.events({ since: before });
        assert.equal(ev.events.length, 1);
        assert.equal(ev.last, before + 1);
        assert.equal(ev.events[0].seq, before + 1);
        const e = ev.events[0].event;
        assert.equal(e.rule, 'oom');
        assert.equal(e.action, 'error');
        assert.equal(e.command, 'set');
        assert.equal(e.key, 'ev:1');
        const stats = await mc.stats();
        assert.ok(stats.faults.error >= 1);
        assert.equal(stats.proxies[0].rules[0].fired, 1);
    });
});

describe('scoped faults', () => {
    const ctx = useMcfault();

    // The rule names in force, in order.
    async function names(mc) {
        return (await mc.rules()).proxies[0].rules.map((r) => r.name);
    }

    it('await-using form: Symbol.asyncDispose removes exactly its rules',
        async (t) => {
            if (!need(t, ctx, 'addRule') || !need(t, ctx, 'ruleByName')) {
                return;
            }
            const { mc, mcfault } = ctx;
            await mc.setRules({ rules: [{ name: 'keep', key: 'keep:*',
                action: 'miss' }] });
            const f = await mc.fault({ name: 'oom', command: 'set',
                action: 'error', message: OOM });
            assert.ok(f instanceof Fault);
            assert.deepEqual(f.names, ['oom']);
            assert.equal(typeof f[Symbol.asyncDispose], 'function');
            assert.deepEqual(await names(mc), ['keep', 'oom']);
            await withConn(mcfault.port, async (c) => {
                assert.equal(await c.set('k', 'v'), `${OOM}\r\n`);
                // What `await using` calls as the block ends.
                await f[Symbol.asyncDispose]();
                assert.equal(await c.set('k', 'v'), 'STORED\r\n');
            });
            assert.deepEqual(await names(mc), ['keep']);
            await f.restore(); // a second time does nothing
            assert.deepEqual(await names(mc), ['keep']);
        });

    it('the `await using` statement itself, where the runtime has it',
        async (t) => {
            if (!need(t, ctx, 'addRule') || !need(t, ctx, 'ruleByName')) {
                return;
            }
            let block;
            try {
                const AsyncFunction = (async () => {}).constructor;
                block = new AsyncFunction('mc', 'check', `
                    {
                        await using f = await mc.fault({ key: 'u:*',
                            action: 'miss' });
                        await check(f);
                    }`);
            } catch {
                t.skip(`node ${process.version} has no \`await using\``);
                return;
            }
            const { mc } = ctx;
            let seen;
            await block(mc, async (f) => {
                seen = f.names;
                assert.deepEqual(await names(mc), f.names);
            });
            assert.match(seen[0], /^fault-\d+-\d+$/);
            assert.deepEqual(await names(mc), []);
        });

    it('withFault: the fault holds inside and is undone after',
        async (t) => {
            if (!need(t, ctx, 'addRule') || !need(t, ctx, 'ruleByName')) {
                return;
            }
            const { mc, mcfault } = ctx;
            await withConn(mcfault.port, async (c) => {
                await c.set('user:1', 'alice');
                const v = await mc.withFault(
                    [{ key: 'user:*', action: 'miss' },
                        { command: 'set', action: 'error', message: OOM }],
                    async (f) => {
                        assert.equal(f.names.length, 2);
                        assert.notEqual(f.names[0], f.names[1]);
                        assert.equal(await c.get('user:1'), null);
                        assert.equal(await c.set('x', 'y'), `${OOM}\r\n`);
                        return 42;
                    });
                assert.equal(v, 42);
                assert.equal(await c.get('user:1'), 'alice');
                assert.equal(await c.set('x', 'y'), 'STORED\r\n');
            });
            assert.deepEqual(await names(mc), []);
        });

    it('withFault restores when the block throws, and rethrows',
        async (t) => {
            if (!need(t, ctx, 'addRule') || !need(t, ctx, 'ruleByName')) {
                return;
            }
            const { mc } = ctx;
            await mc.setRules({ rules: [{ name: 'keep', action: 'miss',
                key: 'keep:*' }] });
            const boom = new Error('boom');
            await assert.rejects(
                mc.withFault({ rules: [{ name: 'tmp', action: 'drop',
                    key: 'x' }] }, async () => {
                    assert.deepEqual(await names(mc), ['keep', 'tmp']);
                    throw boom;
                }),
                (e) => e === boom);
            assert.deepEqual(await names(mc), ['keep']);
        });

    it('a rule already removed inside the block is skipped', async (t) => {
        if (!need(t, ctx, 'addRule') || !need(t, ctx, 'ruleByName')) {
            return;
        }
        const { mc } = ctx;
        await mc.withFault({ name: 'gone', action: 'miss' }, async () => {
            await mc.clearRules();
        });
        assert.deepEqual(await names(mc), []);
    });

    it('a refused fault raises and leaves nothing behind', async (t) => {
        if (!need(t, ctx, 'addRule')) {
            return;
        }
        const { mc } = ctx;
        let ran = false;
        await assert.rejects(mc.withFault(
            [{ name: 'a', action: 'miss' }, { name: 'b', action: 'sleep' }],
            () => {
                ran = true;
            }), { name: 'RuleError', status: 400 });
        assert.equal(ran, false);
        assert.deepEqual(await names(mc), []);
    });

    it('fault() refuses text it cannot name', async () => {
        const mc = new Mcfault({ url: ctx.mcfault.url });
        await assert.rejects(mc.fault('rules: []'), TypeError);
        await assert.rejects(mc.fault([]), TypeError);
        await assert.rejects(mc.withFault({ action: 'miss' }), TypeError);
    });
});

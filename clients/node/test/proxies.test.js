// ?proxy=NAME through the client: an mcfault with two proxies (a
// proxies: rule file) in front of one memcached, each with a rule named
// "shared"; per-call and default proxy options reach only that proxy.

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { Mcfault, NotFoundError } from '../src/index.js';
import {
    features, freePort, startMcfault, startMemcached,
} from './harness.js';
import { withConn } from './memcache.js';

describe('two proxies', () => {
    let memcached;
    let mcfault;
    let mc;
    let has;
    const port = {};

    before(async () => {
        memcached = await startMemcached();
        port.sessions = await freePort();
        port.catalog = await freePort();
        const up = `127.0.0.1:${memcached.port}`;
        mcfault = await startMcfault({
            listens: [port.sessions, port.catalog],
            config: `proxies:
  - name: sessions
    listen: 127.0.0.1:${port.sessions}
    upstream: ${up}
    rules:
      - {name: shared, action: miss, key: "s:*"}
  - name: catalog
    listen: 127.0.0.1:${port.catalog}
    upstream: ${up}
    rules:
      - {name: shared, action: miss, key: "c:*"}
`,
        });
        mc = new Mcfault({ url: mcfault.url });
        has = await features(mc);
    });
    beforeEach(() => (has.reset ? mc.reset() : mc.reload()));
    after(async () => {
        try {
            await mcfault?.stop();
        } finally {
            await memcached?.stop();
        }
    });

    const names = async (proxy) => (await mc.rules({ proxy })).proxies
        .map((p) => `${p.name}:${p.rules.map((r) => r.name).join(',')}`);

    it('rules, clearRules and setRules per proxy', async () => {
        assert.deepEqual(await names(), ['sessions:shared', 'catalog:shared']);
        assert.deepEqual(await names('catalog'), ['catalog:shared']);
        assert.deepEqual(await mc.clearRules({ proxy: 'catalog' }),
            { ok: true, rules: 1 });
        assert.deepEqual(await names(), ['sessions:shared', 'catalog:']);
        await mc.setRules({ rules: [{ name: 'a', action: 'drop' }] },
            { proxy: 'catalog' });
        assert.deepEqual(await names(), ['sessions:shared', 'catalog:a']);
        // A client whose default is one proxy.
        const cat = new Mcfault({ url: mcfault.url, proxy: 'catalog' });
        assert.deepEqual((await cat.rules()).proxies.map((p) => p.name),
            ['catalog']);
    });

    it('enable/disable switch the rule in every proxy', async () => {
        assert.deepEqual(await mc.disable('shared'), { ok: true, changed: 2 });
        assert.deepEqual(await mc.enable('shared'), { ok: true, changed: 2 });
    });

    it('getRule and removeRule per proxy', async (t) => {
        if (!has.ruleByName) {
            t.skip('no GET/DELETE /rules/NAME');
            return;
        }
        assert.equal((await mc.getRule('shared')).proxy, 'sessions');
        const cat = await mc.getRule('shared', { proxy: 'catalog' });
        assert.equal(cat.proxy, 'catalog');
        assert.deepEqual(cat.key, ['c:*']);
        assert.deepEqual(await mc.removeRule('shared', { proxy: 'sessions' }),
            { ok: true, removed: 1, rules: 1 });
        await assert.rejects(mc.getRule('shared', { proxy: 'sessions' }),
            NotFoundError);
        assert.deepEqual(await names(), ['sessions:', 'catalog:shared']);
        await mc.reset();
        assert.deepEqual(await mc.removeRule('shared'),
            { ok: true, removed: 2, rules: 0 });
    });

    it('a scoped fault on one proxy leaves the other alone', async (t) => {
        if (!has.addRule || !has.ruleByName) {
            t.skip('no POST /rules');
            return;
        }
        const oom = 'SERVER_ERROR out of memory storing object';
        await mc.withFault({ name: 'shared2', command: 'set',
            action: 'error', message: oom }, async (f) => {
            assert.equal(f.proxy, 'catalog');
            assert.deepEqual(await names(),
                ['sessions:shared', 'catalog:shared,shared2']);
            await withConn(port.catalog, async (c) => {
                assert.equal(await c.set('k', 'v'), `${oom}\r\n`);
            });
            await withConn(port.sessions, async (c) => {
                assert.equal(await c.set('k', 'v'), 'STORED\r\n');
            });
        }, { proxy: 'catalog' });
        assert.deepEqual(await names(), ['sessions:shared', 'catalog:shared']);
        await withConn(port.catalog, async (c) => {
            assert.equal(await c.set('k', 'v'), 'STORED\r\n');
        });
        // Without a proxy, POST /rules refuses to guess.
        await assert.rejects(mc.fault({ action: 'miss' }),
            { name: 'RuleError', status: 400 });
        assert.deepEqual(await names(), ['sessions:shared', 'catalog:shared']);
    });

    it('upstream endpoints per proxy', async (t) => {
        if (!has.upstream) {
            t.skip('no /upstream endpoints');
            return;
        }
        const r = await mc.upstreamCommand('version', { proxy: 'catalog' });
        assert.match(r.reply, /^VERSION /);
        const s = await mc.upstreamStats('settings', { proxy: 'sessions' });
        assert.equal(s.ok, true);
        await assert.rejects(mc.upstreamCommand('version'),
            { name: 'McfaultError', status: 400 });
    });
});

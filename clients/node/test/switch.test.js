// The proxy switch (disableProxy, enableProxy) and the rules' in_force /
// next_change_ms through the client: a real mcfault, raw memcached sockets
// as the clients that are cut and refused.

import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';

import { NotFoundError } from '../src/index.js';
import { useMcfault } from './harness.js';
import { Memcache, withConn } from './memcache.js';

// Resolves to the error code of a connect to port ('ECONNREFUSED'), or
// null when it connected.
function connectError(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port });
        s.once('connect', () => {
            s.destroy();
            resolve(null);
        });
        s.once('error', (e) => resolve(e.code));
    });
}

describe('proxy switch', () => {
    const ctx = useMcfault({ config: 'rules: []\n' });

    it('disableProxy cuts the clients and refuses new ones; ' +
        'enableProxy brings it back on the same port', async () => {
        const { mc } = ctx;
        const port = ctx.mcfault.port;
        const open = await Memcache.connect(port);
        try {
            assert.equal(await open.set('px:1', 'v'), 'STORED\r\n');
            const sw = await mc.disableProxy('default');
            assert.equal(sw.ok, true);
            assert.equal(sw.proxy, 'default');
            assert.equal(sw.enabled, false);
            assert.equal(sw.listen, `127.0.0.1:${port}`);
            assert.ok(sw.closed >= 1, JSON.stringify(sw));
            const r = await open.request('get px:1\r\n');
            assert.equal(r.closed, true, JSON.stringify(r));
        } finally {
            open.close();
        }
        assert.equal(await connectError(port), 'ECONNREFUSED');
        const h = await mc.health();
        assert.equal(h.ok, true); // about the upstream
        assert.equal(h.proxies[0].enabled, false);
        const st = await mc.stats();
        assert.equal(st.proxies[0].enabled, false);
        assert.equal(st.proxies[0].connections_now, 0);
        assert.equal((await mc.disableProxy('default')).closed, 0);

        const on = await mc.enableProxy('default');
        assert.deepEqual(on, { ok: true, proxy: 'default', enabled: true,
            listen: `127.0.0.1:${port}` });
        assert.equal((await mc.enableProxy('default')).enabled, true);
        await withConn(port, async (c) => {
            assert.equal(await c.get('px:1'), 'v');
        });
        assert.equal((await mc.health()).proxies[0].enabled, true);
    });

    it('reset switches every proxy back on', async () => {
        const { mc } = ctx;
        await mc.disableProxy('default');
        assert.equal(await connectError(ctx.mcfault.port), 'ECONNREFUSED');
        await mc.reset();
        assert.equal(await connectError(ctx.mcfault.port), null);
        assert.equal((await mc.stats()).proxies[0].enabled, true);
    });

    it('an unknown proxy is NotFoundError, an empty name a TypeError',
        async () => {
            await assert.rejects(ctx.mc.disableProxy('nope'), NotFoundError);
            await assert.rejects(ctx.mc.enableProxy('nope'),
                { name: 'NotFoundError', status: 404 });
            await assert.rejects(ctx.mc.disableProxy(''), TypeError);
        });

    it('rules say whether they are in force and until when', async () => {
        const { mc } = ctx;
        await mc.addRule({ name: 'plain', key: 'nothing', action: 'drop' });
        let r = await mc.getRule('plain');
        assert.equal(r.in_force, true);
        assert.equal(r.next_change_ms, null);
        await mc.disable('plain');
        r = await mc.getRule('plain');
        assert.equal(r.in_force, false);
        assert.equal(r.next_change_ms, null);
        assert.equal((await mc.stats()).proxies[0].rules[0].in_force, false);
        await mc.addRule('name: later\nkey: nothing\naction: drop\n' +
            'schedule: {start: 3600s, duration: 1s}\n');
        r = await mc.getRule('later');
        assert.equal(r.in_force, false);
        assert.ok(r.next_change_ms > 3590000 && r.next_change_ms <= 3600000,
            String(r.next_change_ms));
        assert.deepEqual(r.schedule,
            { start_us: 3600000000, duration_us: 1000000, every_us: 0 });
    });
});

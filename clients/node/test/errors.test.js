// The typed errors against real servers: a refused rule change carries its
// status and problems, a duplicate name is a 409, an unknown rule a 404, a
// dead admin port a ConnectionError, a silent one a TimeoutError, and a
// dead memcached an UpstreamError.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import {
    ConnectionError, Mcfault, McfaultError, NotFoundError, RuleError,
    TimeoutError, UpstreamError,
} from '../src/index.js';
import { freePort, need, startMcfault, useMcfault } from './harness.js';

const BAD_YAML = `rules:
  - name: x
    action: delay
    delya: 10ms
`;

describe('errors from a running mcfault', () => {
    const ctx = useMcfault();
    const names = async () =>
        (await ctx.mc.rules()).proxies[0].rules.map((r) => r.name);

    it('a bad document: RuleError 400 with body:LINE:COL problems, ' +
        'rules kept', async () => {
        const { mc } = ctx;
        await mc.setRules({ rules: [{ name: 'keep', action: 'miss' }] });
        const e = await mc.setRules(BAD_YAML).catch((x) => x);
        assert.ok(e instanceof RuleError, String(e));
        assert.ok(e instanceof McfaultError);
        assert.equal(e.name, 'RuleError');
        assert.equal(e.status, 400);
        assert.equal(e.reason, 'invalid rules');
        assert.equal(e.method, 'PUT');
        assert.equal(e.path, '/rules');
        // (The list of known keys grows with the rule file's schema.)
        assert.equal(e.problems.length, 2);
        assert.equal(e.problems[0],
            "body:2:5: rule 'x': action delay needs 'delay'");
        assert.ok(e.problems[1].startsWith(
            "body:4:5: unknown key 'delya' in rule (known: name, command, " +
            'key, action, message, delay, jitter, probability, after, ' +
            'limit, forward, enabled'), e.problems[1]);
        assert.equal(e.body.error, 'invalid rules');
        assert.match(e.message,
            /^PUT \/rules: 400 invalid rules:\n {2}body:2:5/);
        assert.deepEqual(await names(), ['keep']);
    });

    it('an empty document is a RuleError too', async () => {
        const e = await ctx.mc.setRules('').catch((x) => x);
        assert.ok(e instanceof RuleError, String(e));
        assert.equal(e.status, 400);
        assert.deepEqual(e.problems, []);
    });

    it('addRule with a bad rule: RuleError 400, nothing added',
        async (t) => {
            if (!need(t, ctx, 'addRule')) {
                return;
            }
            const { mc } = ctx;
            const e = await mc.addRule([{ name: 'ok', action: 'miss' },
                { name: 'bad', action: 'error' }]).catch((x) => x);
            assert.ok(e instanceof RuleError, String(e));
            assert.equal(e.status, 400);
            assert.ok(e.problems.length >= 1);
            for (const p of e.problems) {
                assert.match(p, /^body:\d+:\d+: /);
            }
            assert.deepEqual(await names(), []);
        });

    it('a duplicate name: RuleError 409, nothing added', async (t) => {
        if (!need(t, ctx, 'addRule')) {
            return;
        }
        const { mc } = ctx;
        await mc.addRule({ name: 'x', action: 'miss' });
        const e = await mc.addRule([{ name: 'y', action: 'miss' },
            { name: 'x', action: 'drop' }]).catch((x) => x);
        assert.ok(e instanceof RuleError, String(e));
        assert.equal(e.status, 409);
        assert.equal(e.reason, 'duplicate rule name');
        assert.deepEqual(e.problems, ["rule 'x' already exists"]);
        const twice = await mc.addRule([{ name: 'z', action: 'miss' },
            { name: 'z', action: 'miss' }]).catch((x) => x);
        assert.ok(twice instanceof RuleError, String(twice));
        assert.equal(twice.status, 409);
        assert.deepEqual(await names(), ['x']);
    });

    it('an unknown rule: NotFoundError 404', async (t) => {
        const { mc } = ctx;
        for (const call of [() => mc.enable('nope'),
            () => mc.disable('nope')]) {
            const e = await call().catch((x) => x);
            assert.ok(e instanceof NotFoundError, String(e));
            assert.equal(e.status, 404);
        }
        if (!need(t, ctx, 'ruleByName')) {
            return;
        }
        for (const call of [() => mc.getRule('nope'),
            () => mc.removeRule('nope')]) {
            const e = await call().catch((x) => x);
            assert.ok(e instanceof NotFoundError, String(e));
            assert.equal(e.status, 404);
            assert.equal(e.reason, "no rule named 'nope'");
        }
    });

    it('reload without a rule file: RuleError 409', async () => {
        const e = await ctx.mc.reload().catch((x) => x);
        assert.ok(e instanceof RuleError, String(e));
        assert.equal(e.status, 409);
        assert.match(e.reason, /no config file/);
    });

    it('a bad name never reaches the server', async () => {
        await assert.rejects(ctx.mc.getRule(''), TypeError);
        await assert.rejects(ctx.mc.enable(undefined), TypeError);
        await assert.rejects(ctx.mc.setRules(42), TypeError);
        await assert.rejects(ctx.mc.upstreamCommand({}), TypeError);
    });
});

describe('connection errors and timeouts', () => {
    let silent;
    let silentPort;
    const held = [];

    before(async () => {
        // Accepts and never answers.
        silent = net.createServer((s) => held.push(s));
        await new Promise((r) => silent.listen(0, '127.0.0.1', r));
        silentPort = silent.address().port;
    });
    after(async () => {
        for (const s of held) {
            s.destroy();
        }
        await new Promise((r) => silent.close(r));
    });

    it('a dead admin port: ConnectionError', async () => {
        const port = await freePort();
        const mc = new Mcfault({ url: `127.0.0.1:${port}` });
        const e = await mc.health().catch((x) => x);
        assert.ok(e instanceof ConnectionError, String(e));
        assert.ok(e instanceof McfaultError);
        assert.equal(e.status, undefined);
        assert.match(e.message, /ECONNREFUSED/);
        assert.ok(e.cause);
    });

    it('no reply within timeoutMs: TimeoutError', async () => {
        const mc = new Mcfault({ url: `http://127.0.0.1:${silentPort}`,
            timeoutMs: 200 });
        const t0 = performance.now();
        const e = await mc.stats().catch((x) => x);
        const ms = performance.now() - t0;
        assert.ok(e instanceof TimeoutError, String(e));
        assert.match(e.message, /no reply within 200 ms/);
        assert.ok(ms >= 150 && ms < 3000, `${ms} ms`);
        // A per-call timeout wins over the client's.
        const e2 = await mc.rules({ timeoutMs: 50 }).catch((x) => x);
        assert.ok(e2 instanceof TimeoutError, String(e2));
        assert.match(e2.message, /50 ms/);
    });

    it('a caller abort is passed through, not a TimeoutError', async () => {
        const mc = new Mcfault({ url: `http://127.0.0.1:${silentPort}` });
        const ac = new AbortController();
        setTimeout(() => ac.abort(), 50);
        const e = await mc.stats({ signal: ac.signal }).catch((x) => x);
        assert.ok(!(e instanceof McfaultError), String(e));
        assert.equal(e.name, 'AbortError');
    });
});

describe('a dead memcached', () => {
    let mcfault;
    let mc;

    before(async () => {
        mcfault = await startMcfault({ upstreamPort: await freePort() });
        mc = new Mcfault({ url: mcfault.url });
    });
    after(() => mcfault?.stop());

    it('health resolves with ok false (a 503)', async () => {
        const h = await mc.health();
        assert.equal(h.ok, false);
        assert.equal(h.proxies[0].upstream_reachable, false);
        assert.equal(h.proxies[0].error, 'Connection refused');
    });

    it('the upstream endpoints: UpstreamError 502', async (t) => {
        const probe = await mc.upstreamStats().catch((x) => x);
        if (probe.status === 404) {
            t.skip('this mcfault lacks the upstream endpoints');
            return;
        }
        for (const e of [probe, await mc.upstreamCommand('version')
            .catch((x) => x)]) {
            assert.ok(e instanceof UpstreamError, String(e));
            assert.equal(e.status, 502);
            assert.match(e.reason, /^upstream: /);
        }
    });
});

describe('a memcached that never answers', () => {
    let silent;
    let mcfault;
    let mc;
    const held = [];

    before(async () => {
        silent = net.createServer((s) => held.push(s));
        await new Promise((r) => silent.listen(0, '127.0.0.1', r));
        mcfault = await startMcfault({ upstreamPort: silent.address().port });
        mc = new Mcfault({ url: mcfault.url, timeoutMs: 1000 });
    });
    after(async () => {
        try {
            await mcfault?.stop();
        } finally {
            for (const s of held) {
                s.destroy();
            }
            await new Promise((r) => silent.close(r));
        }
    });

    it('upstreamCommand: UpstreamError 504 after upstreamTimeoutMs',
        async (t) => {
            const probe = await mc.upstreamStats({ timeoutMs: 200 })
                .catch((x) => x);
            if (probe.status === 404) {
                t.skip('this mcfault lacks the upstream endpoints');
                return;
            }
            const t0 = performance.now();
            const e = await mc.upstreamCommand('version',
                { upstreamTimeoutMs: 300 }).catch((x) => x);
            const ms = performance.now() - t0;
            assert.ok(e instanceof UpstreamError, String(e));
            assert.equal(e.status, 504);
            assert.equal(e.reason, 'upstream: timeout');
            assert.ok(ms >= 250, `${ms} ms`);
            // Longer than the client's 1 s: the call waits for the 504.
            const e2 = await mc.upstreamCommand('version',
                { upstreamTimeoutMs: 1500 }).catch((x) => x);
            assert.ok(e2 instanceof UpstreamError, String(e2));
            assert.equal(e2.status, 504);
        });
});

// The client alone, with a recording fetch in place of the network: each
// method's method, path, query, body and content type as the contract
// (docs/admin-api.md and the issue-10 additions) has them, how replies map
// to results and typed errors, and the scoped helpers' bookkeeping.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import Default, {
    ConnectionError, DEFAULT_TIMEOUT_MS, DEFAULT_URL, Fault, Mcfault,
    McfaultError, NotFoundError, RuleError, TimeoutError, UpstreamError,
} from '../src/index.js';

// A fetch that records each request and answers from replies (status,
// body) in turn; the last one repeats.
function recorder(...replies) {
    const calls = [];
    const fetch = async (url, init) => {
        const u = new URL(url);
        calls.push({
            method: init.method,
            path: u.pathname,
            rawPath: url.slice(url.indexOf(u.host) + u.host.length)
                .split('?')[0],
            query: Object.fromEntries(u.searchParams),
            search: u.search,
            type: init.headers['content-type'],
            body: init.body,
            signal: init.signal,
        });
        const [status, body] = replies.length > 1
            ? replies.shift()
            : replies[0] ?? [200, { ok: true }];
        return new Response(typeof body === 'string' ? body
            : JSON.stringify(body), { status });
    };
    return { calls, fetch };
}

function client(opts = {}, ...replies) {
    const r = recorder(...replies);
    return { mc: new Mcfault({ ...opts, fetch: r.fetch }), calls: r.calls };
}

describe('requests', () => {
    it('defaults and the url forms', () => {
        const mc = new Mcfault();
        assert.equal(mc.url, DEFAULT_URL);
        assert.equal(mc.url, 'http://127.0.0.1:8080');
        assert.equal(mc.timeoutMs, DEFAULT_TIMEOUT_MS);
        assert.equal(new Mcfault({ url: '127.0.0.1:9' }).url,
            'http://127.0.0.1:9');
        assert.equal(new Mcfault({ url: 'http://h:1/' }).url, 'http://h:1');
        assert.equal(Default, Mcfault);
        assert.throws(() => new Mcfault({ timeoutMs: 0 }), TypeError);
    });

    it('every method maps onto its endpoint', async () => {
        const { mc, calls } = client({ url: 'http://x:1' });
        await mc.health();
        await mc.rules();
        await mc.setRules({ rules: [] });
        await mc.addRule({ action: 'miss' });
        await mc.getRule('a');
        await mc.removeRule('a');
        await mc.clearRules();
        await mc.enable('a');
        await mc.disable('a');
        await mc.reload();
        await mc.reset();
        await mc.stats();
        await mc.metrics();
        await mc.events();
        await mc.upstreamCommand('version');
        await mc.upstreamStats();
        assert.deepEqual(calls.map((c) => `${c.method} ${c.path}${c.search}`), [
            'GET /health', 'GET /rules', 'PUT /rules', 'POST /rules',
            'GET /rules/a', 'DELETE /rules/a', 'DELETE /rules',
            'POST /rules/a/enable', 'POST /rules/a/disable', 'POST /reload',
            'POST /reset', 'GET /stats', 'GET /metrics', 'GET /events',
            'POST /upstream/command', 'GET /upstream/stats',
        ]);
    });

    it('rule documents: objects as JSON, text and bytes as they are',
        async () => {
            const { mc, calls } = client();
            await mc.setRules({ rules: [{ name: 'a', action: 'miss' }] });
            await mc.setRules([{ name: 'b', action: 'drop' }]);
            await mc.setRules('rules: []\n');
            await mc.setRules(Buffer.from('rules: []\n'));
            await mc.addRule({ name: 'c', action: 'miss' });
            await mc.addRule([{ name: 'd', action: 'miss' }]);
            await mc.addRule({ rules: [{ name: 'e', action: 'miss' }] });
            await mc.addRule('- {name: f, action: miss}\n');
            const J = 'application/json';
            assert.deepEqual(calls.map((c) => [c.type,
                typeof c.body === 'string'
                    ? c.body : Buffer.from(c.body).toString()]), [
                [J, '{"rules":[{"name":"a","action":"miss"}]}'],
                [J, '{"rules":[{"name":"b","action":"drop"}]}'],
                ['application/yaml', 'rules: []\n'],
                ['application/yaml', 'rules: []\n'],
                ['application/json', '{"name":"c","action":"miss"}'],
                ['application/json', '[{"name":"d","action":"miss"}]'],
                [J, '{"rules":[{"name":"e","action":"miss"}]}'],
                ['application/yaml', '- {name: f, action: miss}\n'],
            ]);
            for (const bad of [undefined, null, 3, true]) {
                await assert.rejects(mc.setRules(bad), TypeError);
                await assert.rejects(mc.addRule(bad), TypeError);
            }
        });

    it('names are percent-encoded as one path segment', async () => {
        const { mc, calls } = client();
        const name = 'odd/name é?&#% +';
        await mc.getRule(name);
        await mc.removeRule(name);
        await mc.enable(name);
        await mc.disable(name);
        const enc = 'odd%2Fname%20%C3%A9%3F%26%23%25%20%2B';
        assert.deepEqual(calls.map((c) => c.rawPath), [
            `/rules/${enc}`, `/rules/${enc}`, `/rules/${enc}/enable`,
            `/rules/${enc}/disable`]);
        for (const bad of ['', undefined, 7]) {
            await assert.rejects(mc.getRule(bad), TypeError);
            await assert.rejects(mc.removeRule(bad), TypeError);
        }
    });

    it('?proxy= where the API takes it: per call, or the default',
        async () => {
            const { mc, calls } = client({ proxy: 'sessions' });
            await mc.rules();
            await mc.setRules({ rules: [] });
            await mc.addRule({ action: 'miss' });
            await mc.getRule('a');
            await mc.removeRule('a');
            await mc.clearRules();
            await mc.upstreamCommand('version');
            await mc.upstreamStats('items');
            await mc.rules({ proxy: 'catalog' });
            await mc.enable('a');
            await mc.reload();
            await mc.stats();
            assert.deepEqual(calls.map((c) => c.query.proxy), [
                'sessions', 'sessions', 'sessions', 'sessions', 'sessions',
                'sessions', 'sessions', 'sessions', 'catalog', undefined,
                undefined, undefined]);
            const { mc: plain, calls: c2 } = client();
            await plain.rules();
            await plain.clearRules({ proxy: 'a b&c' });
            assert.deepEqual(c2.map((c) => c.search), ['', '?proxy=a%20b%26c']);
        });

    it('events since, upstream stats sub, upstream timeout_ms', async () => {
        const { mc, calls } = client();
        await mc.events({ since: 41 });
        await mc.events({});
        await mc.upstreamStats('slabs');
        await mc.upstreamStats('conns', { proxy: 'p' });
        await mc.upstreamStats({ proxy: 'q' });
        await mc.upstreamCommand('get k', { upstreamTimeoutMs: 250 });
        await mc.upstreamCommand(Buffer.from('version\r\n'));
        await mc.upstreamStats('items', { upstreamTimeoutMs: 70 });
        assert.deepEqual(calls.map((c) => c.search), [
            '?since=41', '', '?sub=slabs', '?sub=conns&proxy=p', '?proxy=q',
            '?timeout_ms=250', '', '?sub=items&timeout_ms=70']);
        assert.equal(calls[5].body, 'get k');
        assert.equal(calls[5].type, 'application/octet-stream');
        assert.deepEqual(Buffer.from(calls[6].body),
            Buffer.from('version\r\n'));
        await assert.rejects(mc.upstreamCommand(5), TypeError);
    });

    it('metrics is text; the rest parsed JSON', async () => {
        const { mc } = client({}, [200, '# HELP x\nx 1\n']);
        assert.equal(await mc.metrics(), '# HELP x\nx 1\n');
        const { mc: m2 } = client({}, [200, { last: 3, events: [] }]);
        assert.deepEqual(await m2.events({ since: 2 }),
            { last: 3, events: [] });
    });

    it('health resolves on 503', async () => {
        const body = { proxies: [{ name: 'default', upstream_reachable: false,
            error: 'Connection refused' }], ok: false };
        const { mc } = client({}, [503, body]);
        assert.deepEqual(await mc.health(), body);
    });
});

describe('errors', () => {
    it('400 on a rule change: RuleError with status and problems',
        async () => {
            const body = { error: 'invalid rules', problems: ['body:1:1: x',
                'body:2:3: y'] };
            for (const call of [(mc) => mc.setRules('x'),
                (mc) => mc.addRule('x'), (mc) => mc.reload(),
                (mc) => mc.reset()]) {
                const { mc } = client({}, [400, body]);
                const e = await call(mc).catch((x) => x);
                assert.ok(e instanceof RuleError);
                assert.ok(e instanceof McfaultError);
                assert.ok(e instanceof Error);
                assert.equal(e.name, 'RuleError');
                assert.equal(e.status, 400);
                assert.equal(e.reason, 'invalid rules');
                assert.deepEqual(e.problems, body.problems);
                assert.deepEqual(e.body, body);
                assert.match(e.message,
                    /: 400 invalid rules:\n {2}body:1:1: x\n {2}body:2:3: y$/);
            }
        });

    it('409: RuleError', async () => {
        const { mc } = client({}, [409, { error: 'duplicate rule name',
            problems: ["rule 'x' already exists"] }]);
        const e = await mc.addRule({ name: 'x', action: 'miss' })
            .catch((x) => x);
        assert.ok(e instanceof RuleError);
        assert.equal(e.status, 409);
        assert.deepEqual(e.problems, ["rule 'x' already exists"]);
        assert.equal(e.method, 'POST');
        assert.equal(e.path, '/rules');
    });

    it('404: NotFoundError', async () => {
        const { mc } = client({}, [404, { error: "no rule named 'x'" }]);
        for (const call of [() => mc.getRule('x'), () => mc.removeRule('x'),
            () => mc.enable('x'), () => mc.rules({ proxy: 'x' })]) {
            const e = await call().catch((x) => x);
            assert.ok(e instanceof NotFoundError);
            assert.equal(e.status, 404);
            assert.deepEqual(e.problems, []);
        }
    });

    it('502/504: UpstreamError; other statuses McfaultError', async () => {
        const { mc } = client({}, [502, { error: 'upstream: closed' }],
            [504, { error: 'upstream: timeout' }],
            [400, { error: "'since' must be a non-negative integer" }],
            [413, '<html>Payload Too Large</html>'],
            [500, { error: 'out of memory' }]);
        const e1 = await mc.upstreamCommand('get k').catch((x) => x);
        assert.ok(e1 instanceof UpstreamError);
        assert.equal(e1.reason, 'upstream: closed');
        const e2 = await mc.upstreamStats().catch((x) => x);
        assert.ok(e2 instanceof UpstreamError);
        assert.equal(e2.status, 504);
        const e3 = await mc.events({ since: 'x' }).catch((x) => x);
        assert.equal(e3.constructor, McfaultError);
        assert.equal(e3.status, 400);
        const e4 = await mc.setRules('x').catch((x) => x);
        assert.equal(e4.constructor, McfaultError);
        assert.equal(e4.status, 413);
        assert.equal(e4.body, '<html>Payload Too Large</html>');
        assert.match(e4.message, /413 <html>/);
        const e5 = await mc.stats().catch((x) => x);
        assert.equal(e5.constructor, McfaultError);
        assert.equal(e5.status, 500);
    });

    it('a failed fetch: ConnectionError; a slow one: TimeoutError',
        async () => {
            const refused = new TypeError('fetch failed', { cause:
                Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'),
                    { code: 'ECONNREFUSED' }) });
            const mc = new Mcfault({ fetch: async () => {
                throw refused;
            } });
            const e = await mc.stats().catch((x) => x);
            assert.ok(e instanceof ConnectionError);
            assert.equal(e.cause, refused);
            assert.match(e.message,
                /^GET \/stats: connect ECONNREFUSED 127\.0\.0\.1:1 /);

            const never = (url, init) => new Promise((_, reject) => {
                init.signal.addEventListener('abort',
                    () => reject(init.signal.reason));
            });
            const slow = new Mcfault({ fetch: never, timeoutMs: 30 });
            // AbortSignal.timeout's timer does not hold the event loop
            // open (a real fetch's socket does); node 18 would end here.
            const hold = setTimeout(() => {}, 10000);
            const t = await slow.rules().catch((x) => x);
            clearTimeout(hold);
            assert.ok(t instanceof TimeoutError);
            assert.equal(t.status, undefined);
        });

    it('the /upstream calls wait past their upstream timeout', async () => {
        const { mc, calls } = client({ timeoutMs: 1000 });
        const timeouts = [];
        const orig = AbortSignal.timeout;
        AbortSignal.timeout = (ms) => {
            timeouts.push(ms);
            return orig.call(AbortSignal, ms);
        };
        try {
            await mc.upstreamCommand('version');
            await mc.upstreamCommand('version', { upstreamTimeoutMs: 200 });
            await mc.upstreamCommand('version', { upstreamTimeoutMs: 9000 });
            await mc.upstreamCommand('version', { timeoutMs: 300 });
            await mc.upstreamStats({ upstreamTimeoutMs: 20000 });
            await mc.upstreamStats('items');
        } finally {
            AbortSignal.timeout = orig;
        }
        assert.deepEqual(timeouts, [6000, 1200, 10000, 300, 21000, 6000]);
        assert.equal(calls.length, 6);
    });
});

describe('scoped faults (bookkeeping)', () => {
    it('names unnamed rules, removes exactly its own, once', async () => {
        const { mc, calls } = client({ proxy: 'p' });
        const f = await mc.fault([{ action: 'miss' },
            { name: 'mine', action: 'drop' }]);
        assert.ok(f instanceof Fault);
        assert.match(f.names[0], /^fault-\d+-\d+$/);
        assert.equal(f.names[1], 'mine');
        assert.equal(f.proxy, 'p');
        assert.deepEqual(JSON.parse(calls[0].body).map((r) => r.name),
            f.names);
        await f[Symbol.asyncDispose]();
        await f.restore();
        assert.deepEqual(calls.map((c) => `${c.method} ${c.path}${c.search}`), [
            'POST /rules?proxy=p',
            `DELETE /rules/${f.names[0]}?proxy=p`,
            'DELETE /rules/mine?proxy=p']);
    });

    it('the caller\'s rule objects are not changed', async () => {
        const { mc } = client();
        const rule = { action: 'miss' };
        await mc.fault(rule);
        assert.deepEqual(rule, { action: 'miss' });
    });

    it('restore skips 404s and reports other failures', async () => {
        const { mc, calls } = client({}, [200, { ok: true, added: 3 }],
            [404, { error: 'gone' }], [500, { error: 'boom' }],
            [200, { ok: true }]);
        const f = await mc.fault([{ name: 'a', action: 'miss' },
            { name: 'b', action: 'miss' }, { name: 'c', action: 'miss' }]);
        const e = await f.restore().catch((x) => x);
        assert.ok(e instanceof McfaultError);
        assert.equal(e.status, 500);
        assert.deepEqual(calls.map((c) => c.path), ['/rules', '/rules/a',
            '/rules/b', '/rules/c']);
    });

    it('withFault returns the block\'s value; its error wins', async () => {
        const { mc, calls } = client();
        assert.equal(await mc.withFault({ name: 'a', action: 'miss' },
            async (f) => f.names.join()), 'a');
        const boom = new Error('boom');
        const { mc: m2, calls: c2 } = client({}, [200, { ok: true }],
            [500, { error: 'cannot remove' }]);
        await assert.rejects(m2.withFault({ name: 'b', action: 'miss' },
            () => {
                throw boom;
            }), (e) => e === boom);
        assert.deepEqual(calls.map((c) => c.method), ['POST', 'DELETE']);
        assert.deepEqual(c2.map((c) => c.method), ['POST', 'DELETE']);
    });

    it('Symbol.asyncDispose is defined', () => {
        assert.equal(typeof Symbol.asyncDispose, 'symbol');
        assert.equal(typeof Fault.prototype[Symbol.asyncDispose], 'function');
    });
});

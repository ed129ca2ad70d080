// The dashboard (GET / on the admin port) in a real browser: Debian's
// Chromium, headless, driven by puppeteer-core. A real memcached and mcfault
// with 300 rules; traffic over raw sockets. The page must show the proxy's
// health and the rules' counters, switch a rule off from its row (and the
// traffic stop being faulted), list the fired faults, draw both plots, stay
// responsive with a few thousand events (the DOM holding a bounded number of
// rows), switch the proxy off and on, load nothing from elsewhere, and
// leave a screenshot.
// Run by tests/browser/run.sh, which installs puppeteer-core; exit code 0
// when every check passed.

'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const puppeteer = require(process.env.PUPPETEER_CORE || 'puppeteer-core');

const HOST = '127.0.0.1';
const MCFAULT_BIN = path.resolve(process.env.MCFAULT_BIN || 'build/mcfault');
const MEMCACHED_BIN = process.env.MEMCACHED_BIN || '/usr/bin/memcached';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT = process.env.DASHBOARD_SCREENSHOT || '';
const VIEWPORT = { width: 1280, height: 900 };
const RULES = 300; // rules in the file: the page must handle hundreds
const FLOOD = 3600; // faults fired in a burst: more than the server's ring
const DOM_ROWS_MAX = 120; // event rows the page may hold in its DOM
// No task may block the page longer than this while faults pour in (they
// take a few ms on an idle machine; these bounds leave room for a busy
// one, where a task's wall time includes waiting for a CPU), nor at load
// (300 rows laid out at once).
const LONG_TASK_MAX_MS = 500;
const LOAD_TASK_MAX_MS = 2000;
const TEST_TIMEOUT_MS = 180000;
const SANITIZER_MARKERS = ['Sanitizer', 'runtime error'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
process.on('exit', () => {
    for (const c of children) {
        if (c.exitCode === null) {
            c.kill('SIGKILL');
        }
    }
});

let stepNo = 0;
const t0 = Date.now();
async function step(what, fn) {
    const n = ++stepNo;
    const t = Date.now();
    try {
        await fn();
    } catch (e) {
        console.log(`not ok ${n} - ${what}`);
        throw e;
    }
    console.log(`ok ${n} - ${what} (${Date.now() - t} ms)`);
}

async function until(what, fn, timeoutMs = 10000, everyMs = 100) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        try {
            const v = await fn();
            if (v) {
                return v;
            }
        } catch (e) {
            last = e;
        }
        if (Date.now() > end) {
            throw new Error(`timed out waiting for ${what}` +
                (last ? `: ${last.message}` : ''));
        }
        await sleep(everyMs);
    }
}

// ---------------------------------------------------------------------
// Processes

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.once('error', reject);
        s.listen(0, HOST, () => {
            const p = s.address().port;
            s.close(() => resolve(p));
        });
    });
}

function accepts(port) {
    return new Promise((resolve) => {
        const s = net.connect({ host: HOST, port });
        s.once('connect', () => {
            s.destroy();
            resolve(true);
        });
        s.once('error', () => resolve(false));
    });
}

function start(bin, args) {
    const p = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderrText = '';
    p.stderr.on('data', (d) => {
        p.stderrText += d;
    });
    children.push(p);
    return p;
}

async function waitPort(port, proc, what) {
    await until(`${what} on port ${port}`, async () => {
        if (proc.exitCode !== null) {
            throw new Error(`${what} exited (${proc.exitCode}): ` +
                proc.stderrText.slice(-2000));
        }
        return accepts(port);
    }, 15000, 50);
}

function rulesYaml() {
    // Two rules the test drives, then 298 that never fire (some disabled,
    // some waiting for matches, some delays), and a few on the background
    // traffic so that the feed and the counters move.
    const lines = ['rules:',
        '  - name: oom-hot',
        '    command: set',
        '    key: "hot:*"',
        '    action: error',
        '    message: SERVER_ERROR out of memory storing object',
        '  - name: flood',
        '    command: set',
        '    key: "flood:*"',
        '    action: error',
        '    message: SERVER_ERROR flood',
        '  - {name: bg-miss, command: get, key: "bg:*", action: miss, ' +
        'probability: 5%}',
        '  - {name: bg-slow, command: get, key: "bg:*", action: delay, ' +
        'delay: 2ms, jitter: 1ms, probability: 5%}'];
    const actions = ['error', 'miss', 'delay', 'drop', 'hang'];
    for (let i = lines.filter((l) => l.startsWith('  - ')).length;
        i < RULES; i++) {
        const a = actions[i % actions.length];
        let r = `  - {name: filler-${String(i).padStart(3, '0')}, ` +
            `command: [get, ${a === 'miss' ? 'gets' : 'set'}], ` +
            `key: "filler:${i}:*", action: ${a}`;
        if (a === 'error') {
            r += ', message: SERVER_ERROR filler';
        } else if (a === 'delay') {
            r += ', delay: 5ms';
        }
        if (i % 7 === 0) {
            r += ', enabled: false';
        }
        if (i % 11 === 0) {
            r += ', after: 3, limit: 10';
        }
        lines.push(r + '}');
    }
    return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------
// The admin API and memcached, spoken directly

function apiReq(port, method, pathName) {
    return new Promise((resolve, reject) => {
        const req = http.request({ host: HOST, port, method, path: pathName,
            timeout: 10000 }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
                body += d;
            });
            res.on('end', () => resolve({ status: res.statusCode,
                headers: res.headers, body }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
    });
}

async function apiJson(port, method, pathName) {
    const r = await apiReq(port, method, pathName);
    return { status: r.status, doc: JSON.parse(r.body) };
}

// One memcached text connection; send() writes bytes and resolves with the
// reply once it holds `replies` complete replies (a line, or up to END).
class McConn {
    constructor(port) {
        this.port = port;
        this.buf = '';
        this.waiting = null;
    }

    open() {
        return new Promise((resolve, reject) => {
            this.sock = net.connect({ host: HOST, port: this.port });
            this.sock.setEncoding('latin1');
            this.sock.once('connect', resolve);
            this.sock.once('error', reject);
            this.sock.on('data', (d) => {
                this.buf += d;
                this.check();
            });
        });
    }

    check() {
        const w = this.waiting;
        if (!w) {
            return;
        }
        // Replies here are single lines, or VALUE blocks ending in END.
        const out = [];
        let at = 0;
        while (out.length < w.n) {
            const eol = this.buf.indexOf('\r\n', at);
            if (eol < 0) {
                return;
            }
            let line = this.buf.slice(at, eol);
            at = eol + 2;
            if (line.startsWith('VALUE ')) {
                const end = this.buf.indexOf('END\r\n', at);
                if (end < 0) {
                    return;
                }
                line = 'HIT';
                at = end + 5;
            }
            out.push(line);
        }
        this.buf = this.buf.slice(at);
        this.waiting = null;
        clearTimeout(w.timer);
        w.resolve(out);
    }

    send(data, n) {
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(
                `no ${n} replies within 10s (have ${JSON.stringify(
                    this.buf.slice(0, 200))})`)), 10000);
            this.waiting = { n, resolve, timer };
            this.sock.write(data, 'latin1');
            this.check();
        });
    }

    close() {
        this.sock.destroy();
    }
}

const setCmd = (key, v = 'v') => `set ${key} 0 0 ${v.length}\r\n${v}\r\n`;

// Background traffic: gets and sets on bg:* at about 150 commands/s, so the
// plots have something to draw; returns a stop function.
function backgroundTraffic(port) {
    let running = true;
    const done = (async () => {
        const c = new McConn(port);
        await c.open();
        let i = 0;
        while (running) {
            const k = `bg:${i++ % 50}`;
            await c.send(setCmd(k) + `get ${k}\r\nget ${k}\r\n`, 3);
            await sleep(20);
        }
        c.close();
    })();
    done.catch(() => {}); // reported by the stop function
    return () => {
        running = false;
        return done;
    };
}

// ---------------------------------------------------------------------

async function main() {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcfault-browser-'));
    process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
    const mcPort = await freePort();
    const pxPort = await freePort();
    const adminPort = await freePort();
    const base = `http://${HOST}:${adminPort}`;
    const rulesPath = path.join(tmp, 'rules.yaml');
    fs.writeFileSync(rulesPath, rulesYaml());

    const memcached = start(MEMCACHED_BIN, ['-l', HOST, '-p', String(mcPort),
        '-U', '0', '-t', '2', '-m', '64'].concat(
        process.getuid && process.getuid() === 0 ? ['-u', 'nobody'] : []));
    await waitPort(mcPort, memcached, 'memcached');
    const mcfault = start(MCFAULT_BIN, ['-l', `${HOST}:${pxPort}`,
        '-u', `${HOST}:${mcPort}`, '-c', rulesPath, '--admin',
        String(adminPort)]);
    await waitPort(adminPort, mcfault, 'mcfault admin API');
    await waitPort(pxPort, mcfault, 'mcfault proxy');

    const conn = new McConn(pxPort);
    await conn.open();
    const direct = new McConn(mcPort);
    await direct.open();
    let stopBg = null;
    let browser = null;
    let page = null;
    let failed = null;

    try {
        await step('GET / serves one self-contained HTML page', async () => {
            const r = await apiReq(adminPort, 'GET', '/');
            assert.equal(r.status, 200);
            assert.equal(r.headers['content-type'],
                'text/html; charset=utf-8');
            assert.match(r.headers['content-security-policy'],
                /default-src 'none'/);
            assert.match(r.headers['content-security-policy'],
                /connect-src 'self'/);
            assert.ok(r.body.startsWith('<!doctype html>'));
            // Nothing to fetch from elsewhere: no URL with a scheme or a
            // protocol-relative one in any src/href.
            assert.doesNotMatch(r.body,
                /(src|href)\s*=\s*["']?(https?:)?\/\//i);
            const h = await apiReq(adminPort, 'HEAD', '/');
            assert.equal(h.status, 200);
            assert.equal(h.body, '');
        });

        await step('faults fire before the page is open', async () => {
            for (let i = 0; i < 20; i++) {
                const [rep] = await conn.send(setCmd(`hot:${i}`), 1);
                assert.equal(rep, 'SERVER_ERROR out of memory storing object');
            }
            const { doc } = await apiJson(adminPort, 'GET', '/rules/oom-hot');
            assert.equal(doc.fired, 20);
            stopBg = backgroundTraffic(pxPort);
        });

        const userDataDir = path.join(tmp, 'chromium-profile');
        browser = await puppeteer.launch({
            executablePath: CHROMIUM,
            headless: true, // puppeteer passes --headless=new
            userDataDir,
            defaultViewport: { ...VIEWPORT, deviceScaleFactor: 1 },
            args: ['--headless=new', '--no-sandbox', '--disable-gpu',
                '--disable-dev-shm-usage', '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update', '--disable-sync',
                '--lang=en-US'],
            protocolTimeout: 60000,
        });
        page = await browser.newPage();
        const problems = [];
        const requests = [];
        page.on('pageerror', (e) => problems.push('page error: ' + e.message));
        page.on('console', (m) => {
            if (m.type() === 'error') {
                problems.push('console error: ' + m.text());
            }
        });
        page.on('request', (r) => requests.push(r.url()));
        page.on('requestfailed', (r) => {
            // A poll cut short by the page's own timeout is no error here.
            if (!/net::ERR_ABORTED/.test(r.failure()?.errorText || '')) {
                problems.push(`request failed: ${r.url()} ` +
                    r.failure()?.errorText);
            }
        });
        // Long tasks (>50 ms blocking the page's main thread), recorded from
        // the first moment.
        await page.evaluateOnNewDocument(() => {
            window.__longTasks = [];
            new PerformanceObserver((l) => {
                for (const e of l.getEntries()) {
                    window.__longTasks.push(e.duration);
                }
            }).observe({ type: 'longtask', buffered: true });
        });

        await step('the page loads and shows the proxy healthy', async () => {
            const res = await page.goto(base + '/', { waitUntil: 'load' });
            assert.equal(res.status(), 200);
            await page.waitForFunction(() => {
                const p = document.querySelector(
                    '.proxy[data-proxy="default"]');
                return p && p.querySelector('.dot.ok') &&
                    p.querySelector('.health').textContent ===
                    'upstream reachable';
            }, { timeout: 15000 });
            const text = await page.$eval('.proxy[data-proxy="default"]',
                (e) => e.textContent);
            assert.ok(text.includes(`${HOST}:${pxPort} → ${HOST}:${mcPort}`),
                text);
            assert.equal(await page.$eval('#link', (e) => e.textContent),
                'live');
        });

        const rowText = (name) => page.$eval(
            `#rules-body tr[data-rule="${name}"]`, (tr) => ({
                matched: tr.querySelector('.c-matched').textContent,
                fired: tr.querySelector('.c-fired').textContent,
                state: tr.querySelector('.c-state').textContent,
                checked: tr.querySelector('input.switch').checked,
            }));

        await step(`all ${RULES} rules are listed with their counters`,
            async () => {
                await page.waitForFunction((n) =>
                    document.querySelectorAll('#rules-body tr').length === n,
                { timeout: 10000 }, RULES);
                const r = await rowText('oom-hot');
                assert.deepEqual(r, { matched: '20', fired: '20',
                    state: 'in force', checked: true });
                const off = await rowText('filler-014');
                assert.equal(off.state, 'disabled');
                assert.equal(off.checked, false);
                assert.match(await page.$eval('#rules-count',
                    (e) => e.textContent), /^300 rules · \d+ enabled$/);
                // Counters are updated in place: rows are not rebuilt.
                await page.$eval('#rules-body tr[data-rule="oom-hot"]',
                    (tr) => { tr.__probe = 1; });
                const loadTask = await page.evaluate(() =>
                    Math.max(0, ...window.__longTasks));
                console.log(`# longest page task while loading: ` +
                    `${Math.round(loadTask)} ms`);
                assert.ok(loadTask < LOAD_TASK_MAX_MS,
                    `a task blocked the page for ${loadTask} ms at load`);
            });

        await step('the counters follow the traffic', async () => {
            for (let i = 20; i < 25; i++) {
                await conn.send(setCmd(`hot:${i}`), 1);
            }
            await page.waitForFunction(() => document.querySelector(
                '#rules-body tr[data-rule="oom-hot"] .c-fired')
                .textContent === '25', { timeout: 5000 });
        });

        await step('the switch turns the fault rule off; traffic is no ' +
            'longer faulted', async () => {
            await page.click('#rules-body tr[data-rule="oom-hot"] ' +
                'input.switch');
            await page.waitForFunction(() => {
                const tr = document.querySelector(
                    '#rules-body tr[data-rule="oom-hot"]');
                return tr.querySelector('.c-state').textContent ===
                    'disabled' &&
                    !tr.querySelector('input.switch').disabled;
            }, { timeout: 10000 });
            const { doc } = await apiJson(adminPort, 'GET', '/rules/oom-hot');
            assert.equal(doc.enabled, false);
            assert.equal(doc.fired, 25);
            for (let i = 100; i < 140; i++) {
                const [rep] = await conn.send(setCmd(`hot:${i}`, `x${i}`), 1);
                assert.equal(rep, 'STORED', `set hot:${i}`);
            }
            // memcached has them: they went through.
            const [hit] = await direct.send('get hot:139\r\n', 1);
            assert.equal(hit, 'HIT');
            await sleep(2500); // two polls
            const r = await rowText('oom-hot');
            assert.deepEqual(r, { matched: '25', fired: '25',
                state: 'disabled', checked: false });
            assert.equal(await page.$eval(
                '#rules-body tr[data-rule="oom-hot"]', (tr) => tr.__probe), 1);
        });

        await step('a switch far down the table works too', async () => {
            const name = 'filler-287'; // enabled: false in the file
            assert.equal((await rowText(name)).checked, false);
            await page.click(`#rules-body tr[data-rule="${name}"] ` +
                'input.switch');
            await until(`${name} enabled`, async () =>
                (await apiJson(adminPort, 'GET', `/rules/${name}`))
                    .doc.enabled === true);
            await page.waitForFunction((n) => document.querySelector(
                `#rules-body tr[data-rule="${n}"] .c-state`)
                .textContent === 'in force', { timeout: 5000 }, name);
        });

        await step('the feed lists the fired faults', async () => {
            await page.waitForFunction(() => [...document.querySelectorAll(
                '#events-rows .ev:not([hidden])')]
                .some((e) => e.children[1].textContent === 'oom-hot'),
            { timeout: 10000 });
            const ev = await page.evaluate(() => {
                const e = [...document.querySelectorAll(
                    '#events-rows .ev:not([hidden])')]
                    .find((x) => x.children[1].textContent === 'oom-hot');
                return [...e.children].map((c) => c.textContent);
            });
            assert.equal(ev[2], 'error');
            assert.equal(ev[3], 'set');
            assert.match(ev[4], /^hot:\d+$/);
            const got = await page.evaluate(() => mcfaultDashboard.events
                .filter((e) => e.rule === 'oom-hot').length);
            assert.equal(got, 25);
        });

        await step('both plots drew lines', async () => {
            await page.waitForFunction(() =>
                mcfaultDashboard.points.filter((p) => !p.gap &&
                    Object.keys(p.lat).length > 0).length >= 6,
            { timeout: 15000 });
            // The one-minute window: a few seconds of data are wider.
            await page.select('#plot-win', '60');
            await sleep(300);
            const px = await page.evaluate(() => {
                // Pixels of a line's color: the axes and grid are others.
                const count = (id, cssVar) => {
                    const c = document.getElementById(id);
                    const probe = document.createElement('canvas')
                        .getContext('2d');
                    probe.fillStyle = getComputedStyle(
                        document.documentElement).getPropertyValue(cssVar)
                        .trim();
                    const want = probe.fillStyle; // #rrggbb
                    const rgb = [1, 3, 5].map((i) =>
                        parseInt(want.slice(i, i + 2), 16));
                    const d = c.getContext('2d').getImageData(0, 0,
                        c.width, c.height).data;
                    let n = 0;
                    for (let i = 0; i < d.length; i += 4) {
                        if (d[i + 3] > 200 && rgb.every((v, k) =>
                            Math.abs(d[i + k] - v) < 40)) {
                            n++;
                        }
                    }
                    return n;
                };
                return { rate: count('rate-plot', '--c1'),
                    p50: count('lat-plot', '--c3'),
                    p99: count('lat-plot', '--c4') };
            });
            // Five segments of about 9 px each (a second is 1/60 of the
            // plot's width), 1.6 px thick.
            assert.ok(px.rate > 30, `rate line pixels: ${px.rate}`);
            assert.ok(px.p50 > 30, `p50 line pixels: ${px.p50}`);
            assert.ok(px.p99 > 30, `p99 line pixels: ${px.p99}`);
            const now = await page.$eval('#rate-now', (e) => e.textContent);
            assert.match(now, /cmd\/s/);
            const lat = await page.$eval('#lat-now', (e) => e.textContent);
            assert.match(lat, /^p50 .* · p99 /);
        });

        await step(`${FLOOD} faults in a burst: the page keeps up and ` +
            'stays responsive', async () => {
            const before = await page.evaluate(() => ({
                received: mcfaultDashboard.received,
                missed: mcfaultDashboard.missed }));
            // Long tasks from here on (the test's own pixel counting
            // above was one).
            await page.evaluate(() => {
                window.__longTasks = [];
            });
            const flood = new McConn(pxPort);
            await flood.open();
            const batch = 300;
            for (let i = 0; i < FLOOD; i += batch) {
                let req = '';
                for (let j = i; j < i + batch; j++) {
                    req += setCmd(`flood:${j}`);
                }
                const reps = await flood.send(req, batch);
                assert.ok(reps.every((r) => r === 'SERVER_ERROR flood'));
                await sleep(100);
            }
            flood.close();
            const got = await until('the page to have every flood event',
                () => page.evaluate((want) => {
                    const d = mcfaultDashboard;
                    return d.received + d.missed >= want &&
                        { received: d.received, missed: d.missed,
                            kept: d.events.length };
                }, before.received + before.missed + FLOOD), 20000, 200);
            console.log(`# events: ${got.received} received, ` +
                `${got.missed} missed (the server keeps 1,024), ` +
                `${got.kept} kept`);
            assert.ok(got.received - before.received >= 1024);
            // Responsive: the next frame comes at once (measured in the
            // page, so that the test's own round trip does not count).
            const frameMs = await page.evaluate(() => new Promise((r) => {
                const t = performance.now();
                requestAnimationFrame(() => r(performance.now() - t));
            }));
            console.log(`# next frame after ${Math.round(frameMs)} ms`);
            assert.ok(frameMs < 200, `a frame took ${frameMs} ms`);
            const dom = await page.evaluate(() => ({
                rows: document.querySelectorAll('#events-rows .ev').length,
                nodes: document.getElementsByTagName('*').length }));
            assert.ok(dom.rows <= DOM_ROWS_MAX, `${dom.rows} event rows`);
            console.log(`# DOM: ${dom.rows} event rows, ${dom.nodes} ` +
                'elements in all');
            // Scrolled deep into the feed, the rows in view are drawn.
            const deep = await page.evaluate(async () => {
                const sc = document.getElementById('events-scroll');
                sc.scrollTop = 2000 * 20;
                await new Promise((r) => requestAnimationFrame(() =>
                    requestAnimationFrame(r)));
                const top = sc.getBoundingClientRect().top;
                const vis = [...document.querySelectorAll(
                    '#events-rows .ev:not([hidden])')].filter((e) => {
                    const b = e.getBoundingClientRect();
                    return b.top >= top && b.bottom <= top + sc.clientHeight;
                });
                const res = { n: vis.length,
                    text: vis.length ? vis[0].textContent : '' };
                sc.scrollTop = 0;
                return res;
            });
            assert.ok(deep.n >= 10, `rows in view deep in the feed: ${deep.n}`);
            assert.match(deep.text, /flood/);
            const longest = await page.evaluate(() =>
                Math.max(0, ...window.__longTasks));
            console.log(`# longest page task during the flood: ` +
                `${Math.round(longest)} ms`);

            assert.ok(longest < LONG_TASK_MAX_MS,
                `a task blocked the page for ${longest} ms`);
        });

        await step('the event filter narrows the feed', async () => {
            await page.type('#event-filter', 'oom-hot');
            const rows = await page.$$eval('#events-rows .ev:not([hidden])',
                (e) => e.map((x) => x.children[1].textContent));
            assert.ok(rows.length === 25, `rows: ${rows.length}`);
            assert.ok(rows.every((r) => r === 'oom-hot'));
            await page.$eval('#event-filter', (e) => {
                e.value = '';
                e.dispatchEvent(new Event('input'));
            });
        });

        await step('nothing was loaded from elsewhere; no page errors',
            async () => {
                const foreign = requests.filter((u) =>
                    !u.startsWith(base + '/'));
                assert.deepEqual(foreign, []);
                const paths = new Set(requests.map((u) =>
                    new URL(u).pathname));
                for (const p of ['/', '/stats', '/rules', '/health',
                    '/events', '/rules/oom-hot/disable']) {
                    assert.ok(paths.has(p), `no request to ${p}`);
                }
                assert.deepEqual(problems, []);
            });

        if (SCREENSHOT) {
            await step(`screenshot to ${SCREENSHOT}`, async () => {
                // The top of the table, the newest faults, no focus ring.
                await page.evaluate(() => {
                    document.activeElement.blur();
                    document.getElementById('rules-scroll').scrollTop = 0;
                    document.getElementById('events-scroll').scrollTop = 0;
                });
                await sleep(1500); // the last poll drawn
                fs.mkdirSync(path.dirname(path.resolve(SCREENSHOT)),
                    { recursive: true });
                await page.screenshot({ path: SCREENSHOT, type: 'png' });
                const size = fs.statSync(SCREENSHOT).size;
                console.log(`# ${SCREENSHOT}: ${VIEWPORT.width}x` +
                    `${VIEWPORT.height}, ${size} bytes`);
            });
        }
        await step('the proxy turns unhealthy when memcached stops',
            async () => {
                await stopBg();
                stopBg = null;
                memcached.kill('SIGTERM');
                await page.waitForFunction(() => {
                    const p = document.querySelector(
                        '.proxy[data-proxy="default"]');
                    return p.querySelector('.dot.bad') &&
                        p.querySelector('.health').textContent ===
                        'upstream unreachable: Connection refused';
                }, { timeout: 15000 });
            });

        await step('the proxy switch refuses clients, then lets them in',
            async () => {
                const sw = '.proxy[data-proxy="default"] input.switch';
                assert.equal(await accepts(pxPort), true);
                await page.click(sw);
                await page.waitForFunction(() => document.querySelector(
                    '.proxy[data-proxy="default"] .health').textContent ===
                    'switched off: clients refused', { timeout: 10000 });
                const off = await apiJson(adminPort, 'GET', '/health');
                assert.equal(off.doc.proxies[0].enabled, false);
                assert.equal(await accepts(pxPort), false);
                await page.click(sw);
                await until('the proxy back on', async () =>
                    (await apiJson(adminPort, 'GET', '/health'))
                        .doc.proxies[0].enabled === true);
                assert.equal(await accepts(pxPort), true);
            });
    } catch (e) {
        failed = e;
        if (page) {
            const shot = (SCREENSHOT || 'dashboard.png')
                .replace(/(\.png)?$/, '-failed.png');
            await page.screenshot({ path: shot }).then(() =>
                console.log(`# the page when it failed: ${shot}`), () => {});
        }
    } finally {
        if (browser) {
            await browser.close().catch(() => {});
        }
        if (stopBg) {
            await stopBg().catch((e) => {
                failed = failed || e;
            });
        }
        conn.close();
        direct.close();
    }

    await step('mcfault exits cleanly, nothing from the sanitizers',
        async () => {
            mcfault.kill('SIGTERM');
            const code = await new Promise((r) => mcfault.exitCode !== null ?
                r(mcfault.exitCode) : mcfault.once('exit', (c) => r(c)));
            memcached.kill('SIGTERM');
            for (const m of SANITIZER_MARKERS) {
                assert.ok(!mcfault.stderrText.includes(m),
                    mcfault.stderrText.slice(-4000));
            }
            assert.equal(code, 0, mcfault.stderrText.slice(-2000));
        }).catch((e) => {
        failed = failed || e;
    });
    if (failed) {
        throw failed;
    }
}

const timer = setTimeout(() => {
    console.log(`not ok - the test did not finish within ` +
        `${TEST_TIMEOUT_MS / 1000} s`);
    process.exit(1);
}, TEST_TIMEOUT_MS);

main().then(() => {
    clearTimeout(timer);
    console.log(`# dashboard: ${stepNo} checks passed in ` +
        `${((Date.now() - t0) / 1000).toFixed(1)} s`);
    process.exit(0);
}, (e) => {
    clearTimeout(timer);
    console.log(`# FAILED: ${e.stack || e}`);
    process.exit(1);
});

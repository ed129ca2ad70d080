// Test fixtures: a real memcached and a real mcfault on free loopback
// ports, one pair per test file (useMcfault), reset between tests.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Mcfault } from '../src/index.js';

const HOST = '127.0.0.1';
const CLIENT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)),
    '..');
export const MCFAULT_BIN = path.resolve(process.env.MCFAULT_BIN ??
    path.join(CLIENT_DIR, '../../build/mcfault'));
export const MEMCACHED_BIN = process.env.MEMCACHED_BIN ?? '/usr/bin/memcached';
// Markers sanitizers print; any in mcfault's stderr fails the suite.
const SANITIZER_MARKERS = ['Sanitizer', 'runtime error'];
const START_TIMEOUT_MS = 15000;

const handedOut = new Set();

// Every child started here, killed when this process exits, however it
// exits, so that a cancelled run leaves no memcached or mcfault behind.
const children = new Set();
process.on('exit', () => {
    for (const c of children) {
        c.proc.kill('SIGKILL');
    }
});

/** A TCP port on 127.0.0.1 nothing listens on now, never the same one
 * twice in this process. */
export async function freePort() {
    for (let i = 0; i < 100; i++) {
        const port = await new Promise((resolve, reject) => {
            const s = net.createServer();
            s.once('error', reject);
            s.listen(0, HOST, () => {
                const p = s.address().port;
                s.close(() => resolve(p));
            });
        });
        if (!handedOut.has(port)) {
            handedOut.add(port);
            return port;
        }
    }
    throw new Error('no free port');
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A child process whose stderr is kept; stop() ends it (SIGTERM, then
 * SIGKILL) and resolves to its exit code and stderr. */
class Child {
    constructor(what, bin, args, env) {
        this.what = what;
        this.stderr = '';
        this.exit = null;
        this.proc = spawn(bin, args, {
            stdio: ['ignore', 'ignore', 'pipe'],
            env: { ...process.env, ...env },
        });
        children.add(this);
        this.exited = new Promise((resolve) => {
            this.proc.once('exit', (code, signal) => {
                children.delete(this);
                this.exit = { code, signal };
                resolve(this.exit);
            });
            this.proc.once('error', (e) => {
                children.delete(this);
                this.stderr += String(e);
                this.exit = { code: -1, signal: null };
                resolve(this.exit);
            });
        });
        this.proc.stderr.setEncoding('utf8');
        this.proc.stderr.on('data', (d) => {
            this.stderr += d;
        });
    }

    async waitPort(port) {
        const deadline = Date.now() + START_TIMEOUT_MS;
        while (Date.now() < deadline) {
            if (this.exit !== null) {
                throw new Error(`${this.what} exited (${JSON.stringify(
                    this.exit)}) before accepting on ${port}:\n${this.stderr}`);
            }
            if (await accepts(port)) {
                return;
            }
            await sleep(20);
        }
        throw new Error(`${this.what} did not accept on ${port}`);
    }

    async stop() {
        if (this.exit === null) {
            this.proc.kill('SIGTERM');
            const t = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
            await this.exited;
            clearTimeout(t);
        }
        return { ...this.exit, stderr: this.stderr };
    }
}

/** memcached on a free port; { port, stop() }. */
export async function startMemcached() {
    const port = await freePort();
    const args = ['-l', HOST, '-p', String(port), '-U', '0', '-t', '2',
        '-m', '64'];
    // memcached refuses to run as root unless told which user to become.
    if (process.getuid?.() === 0) {
        args.push('-u', 'nobody');
    }
    const child = new Child('memcached', MEMCACHED_BIN, args);
    await child.waitPort(port);
    return { port, stop: () => child.stop() };
}

/**
 * mcfault in front of upstreamPort, with the admin API on a free port;
 * config: rule file text (written to a temporary file, passed as -c);
 * listens: the proxy ports to wait for when the file has a proxies: list
 * (then no -l/-u). { port, adminPort, url, configPath, stop() }; stop()
 * raises when mcfault's stderr carries a sanitizer report.
 */
export async function startMcfault({ upstreamPort, config, listens,
    args = [] } = {}) {
    if (!fs.existsSync(MCFAULT_BIN)) {
        throw new Error(`mcfault binary not found: ${MCFAULT_BIN} ` +
            '(set MCFAULT_BIN)');
    }
    const port = listens === undefined ? await freePort() : undefined;
    const adminPort = await freePort();
    const argv = ['--admin', `${HOST}:${adminPort}`, ...args];
    if (listens === undefined) {
        argv.push('-l', `${HOST}:${port}`, '-u', `${HOST}:${upstreamPort}`);
    }
    let dir;
    let configPath;
    if (config !== undefined) {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcfault-node-'));
        configPath = path.join(dir, 'rules.yaml');
        fs.writeFileSync(configPath, config);
        argv.push('-c', configPath);
    }
    const child = new Child('mcfault', MCFAULT_BIN, argv, {
        ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1',
        UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1',
    });
    await child.waitPort(adminPort);
    for (const p of listens ?? [port]) {
        await child.waitPort(p);
    }
    return {
        port,
        adminPort,
        url: `http://${HOST}:${adminPort}`,
        configPath,
        async stop() {
            const r = await child.stop();
            if (dir !== undefined) {
                fs.rmSync(dir, { recursive: true, force: true });
            }
            if (SANITIZER_MARKERS.some((m) => r.stderr.includes(m))) {
                throw new Error(`mcfault sanitizer report:\n${r.stderr}`);
            }
            return r;
        },
    };
}

/**
 * Which of the issue-10 endpoints this mcfault has (an older binary
 * answers 404 "no such endpoint" or 405 for them).
 */
export async function features(mc) {
    const absent = (e) => e.status === 405 ||
        (e.status === 404 && /no such endpoint/.test(e.reason));
    const probe = async (fn) => {
        try {
            await fn();
            return true;
        } catch (e) {
            return !absent(e);
        }
    };
    return {
        addRule: await probe(() => mc.addRule('rules: []\n')),
        ruleByName: await probe(() => mc.getRule('no-such-rule-probe')),
        reset: await probe(() => mc.reset()),
        upstream: await probe(() => mc.upstreamStats()),
    };
}

/** Skips test context t unless the binary has feature f. */
export function need(t, ctx, f) {
    if (!ctx.features[f]) {
        t.skip(`${MCFAULT_BIN} lacks the ${f} endpoint(s)`);
        return false;
    }
    return true;
}

/**
 * The suite fixture: one memcached and one mcfault for the whole file
 * (config: a rule file), a client on it, and a clean slate before each
 * test (POST /reset; on a binary without it, POST /reload or DELETE
 * /rules).
 */
export function useMcfault({ config } = {}) {
    const ctx = {};
    before(async () => {
        ctx.memcached = await startMemcached();
        ctx.mcfault = await startMcfault({
            upstreamPort: ctx.memcached.port, config,
        });
        ctx.mc = new Mcfault({ url: ctx.mcfault.url, timeoutMs: 5000 });
        ctx.features = await features(ctx.mc);
    });
    beforeEach(async () => {
        if (ctx.features.reset) {
            await ctx.mc.reset();
        } else if (config !== undefined) {
            await ctx.mc.reload(); // the file's rules; counters go on
        } else {
            await ctx.mc.clearRules();
        }
    });
    after(async () => {
        try {
            await ctx.mcfault?.stop();
        } finally {
            await ctx.memcached?.stop();
        }
    });
    return ctx;
}

export { sleep };

// A client for mcfault's HTTP admin API (docs/admin-api.md): one method per
// endpoint, typed errors, a timeout on every call, and a scoped fault for
// tests. Node 18+, no dependencies (the global fetch and AbortSignal).

// `await using` looks up Symbol.asyncDispose; Node 18.18+ and 20.4+ define
// it as Symbol.for('nodejs.asyncDispose'), and so do we where it is absent,
// so that a handle made here disposes under any runtime that has the syntax.
if (typeof Symbol.asyncDispose !== 'symbol') {
    Object.defineProperty(Symbol, 'asyncDispose', {
        value: Symbol.for('nodejs.asyncDispose'),
    });
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';
// Every call is given this long, from sending the request to the last
// byte of the reply; the admin API answers at once except GET /health
// (1 s probes) and POST /upstream/command (timeout_ms, 5 s by default).
export const DEFAULT_TIMEOUT_MS = 5000;
// POST /upstream/command waits up to timeout_ms for memcached; the HTTP
// call is given that much plus this, so that a slow memcached reads as
// the server's 504 rather than as a client-side timeout.
const UPSTREAM_MARGIN_MS = 1000;

// ------------------------------------------------------------------------
// Errors

/**
 * Every error a call raises. status is the HTTP status (undefined when no
 * reply came), reason the server's "error" string, problems the list of
 * "NAME:LINE:COL: message" lines of a refused rule change (else []), body
 * the parsed reply.
 */
export class McfaultError extends Error {
    constructor(message, { status, reason, problems, body, method, path,
        cause } = {}) {
        super(message, cause === undefined ? undefined : { cause });
        this.name = new.target.name;
        this.status = status;
        this.reason = reason ?? message;
        this.problems = problems ?? [];
        this.body = body;
        this.method = method;
        this.path = path;
    }
}

/** A refused rule change: 400 (invalid rules) or 409 (duplicate name, or
 * POST /reload without a rule file). Nothing was changed. */
export class RuleError extends McfaultError {}

/** 404: no rule (or proxy, or endpoint) of that name. */
export class NotFoundError extends McfaultError {}

/** 502 or 504: mcfault could not reach memcached, or it did not answer
 * in time (the /upstream endpoints). */
export class UpstreamError extends McfaultError {}

/** No HTTP reply: the admin port refused or reset the connection. */
export class ConnectionError extends McfaultError {}

/** No complete reply within the call's timeout. */
export class TimeoutError extends McfaultError {}

// ------------------------------------------------------------------------
// Helpers

// A rule (or proxy: what) name as one path segment: every byte but
// unreserved ones escaped, '/' included (mcfault decodes the segment).
function segment(name, what = 'rule') {
    if (typeof name !== 'string' || name === '') {
        throw new TypeError(`a ${what} name must be a non-empty string`);
    }
    return encodeURIComponent(name);
}

// ?a=b&c=d from the defined entries; values escaped as in a path (no '+'
// for space: evhttp decodes both, other servers may not).
function queryString(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
        if (v !== undefined && v !== null) {
            parts.push(`${k}=${encodeURIComponent(String(v))}`);
        }
    }
    return parts.length > 0 ? `?${parts.join('&')}` : '';
}

// A rule document as a body: a string or bytes go as they are (YAML or
// JSON text), anything else as JSON.
function documentBody(doc, what) {
    if (typeof doc === 'string') {
        return { body: doc, type: 'application/yaml' };
    }
    if (doc instanceof Uint8Array) {
        return { body: doc, type: 'application/yaml' };
    }
    if (doc !== null && typeof doc === 'object') {
        return { body: JSON.stringify(doc), type: 'application/json' };
    }
    throw new TypeError(`${what} takes an object, an array or YAML text`);
}

// An AbortSignal that fires when any of signals does (AbortSignal.any is
// Node 20.3+).
function anySignal(signals) {
    if (typeof AbortSignal.any === 'function') {
        return AbortSignal.any(signals);
    }
    const ac = new AbortController();
    for (const s of signals) {
        if (s.aborted) {
            ac.abort(s.reason);
            break;
        }
        s.addEventListener('abort', () => ac.abort(s.reason), { once: true });
    }
    return ac.signal;
}

// Why fetch failed, from undici's cause chain ("connect ECONNREFUSED ...").
function describeFailure(err) {
    let e = err;
    for (let i = 0; i < 4 && e?.cause; i++) {
        e = e.cause;
    }
    return e?.message || err?.message || String(err);
}

let faultSeq = 0;

// The rules a scoped fault adds, each with a name (one is made up for a
// rule that has none, so that exactly these can be removed afterwards).
function faultRules(rules) {
    let list;
    if (Array.isArray(rules)) {
        list = rules;
    } else if (rules !== null && typeof rules === 'object' &&
        Array.isArray(rules.rules)) {
        list = rules.rules;
    } else if (rules !== null && typeof rules === 'object') {
        list = [rules];
    } else {
        throw new TypeError('fault() takes a rule object, an array of them ' +
            'or {rules: [...]} (it must know their names to remove them)');
    }
    if (list.length === 0) {
        throw new TypeError('fault() needs at least one rule');
    }
    return list.map((r) => {
        if (r === null || typeof r !== 'object' || Array.isArray(r)) {
            throw new TypeError('each rule must be an object');
        }
        if (r.name !== undefined && r.name !== null) {
            return r;
        }
        faultSeq += 1;
        return { ...r, name: `fault-${process.pid}-${faultSeq}` };
    });
}

// ------------------------------------------------------------------------
// Scoped fault

/**
 * Rules added by Mcfault#fault(). restore() (also [Symbol.asyncDispose],
 * for `await using`) removes exactly those rules by name; rules already
 * gone are skipped, and a second call does nothing.
 */
export class Fault {
    #client;
    #restoring = null;

    constructor(client, names, proxy, result) {
        this.#client = client;
        this.names = Object.freeze([...names]);
        this.proxy = proxy;
        this.result = result;
    }

    /** Removes the rules this fault added; resolves when they are gone. */
    restore() {
        if (this.#restoring === null) {
            this.#restoring = this.#remove();
        }
        return this.#restoring;
    }

    async #remove() {
        const errors = [];
        for (const name of this.names) {
            try {
                await this.#client.removeRule(name, { proxy: this.proxy });
            } catch (e) {
                if (!(e instanceof NotFoundError)) {
                    errors.push(e);
                }
            }
        }
        if (errors.length === 1) {
            throw errors[0];
        }
        if (errors.length > 1) {
            throw new AggregateError(errors,
                `could not remove ${errors.length} fault rules`);
        }
    }

    [Symbol.asyncDispose]() {
        return this.restore();
    }
}

// ------------------------------------------------------------------------
// Client

/**
 * A client of one mcfault admin API.
 *
 *   const mc = new Mcfault({ url: 'http://127.0.0.1:8080', timeoutMs: 5000 });
 *
 * options: url (default http://127.0.0.1:8080; "host:port" is taken as
 * http), timeoutMs (every call, default 5000), proxy (the default for the
 * calls that take ?proxy=), fetch (a fetch to use instead of the global
 * one). Every method also takes { timeoutMs, signal } and, where the API
 * takes ?proxy=, { proxy }. Results are the parsed JSON replies, field
 * names as the server writes them.
 */
export class Mcfault {
    #fetch;

    constructor({ url = DEFAULT_URL, timeoutMs = DEFAULT_TIMEOUT_MS, proxy,
        fetch: fetchFn } = {}) {
        let base = String(url);
        if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(base)) {
            base = `http://${base}`;
        }
        this.url = base.replace(/\/+$/, '');
        if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
            throw new TypeError('timeoutMs must be a positive number');
        }
        this.timeoutMs = timeoutMs;
        this.proxy = proxy;
        this.#fetch = fetchFn ?? globalThis.fetch;
        if (typeof this.#fetch !== 'function') {
            throw new TypeError('no global fetch: Node 18 or later is needed');
        }
    }

    // One HTTP exchange. Resolves to the parsed JSON reply (or the text,
    // with text: true) when the status is in ok; raises the typed error
    // for any other status, a failed connection or the timeout.
    // Of the caller's options only timeoutMs and signal are read here.
    async #call(method, path, { timeoutMs, signal } = {}, { query = {}, body,
        type, text = false, ok = [200], ruleChange = false } = {}) {
        const url = this.url + path + queryString(query);
        const ms = timeoutMs ?? this.timeoutMs;
        const timeout = AbortSignal.timeout(ms);
        const headers = { accept: text ? 'text/plain' : 'application/json' };
        if (type !== undefined) {
            headers['content-type'] = type;
        }
        let res;
        let raw;
        try {
            res = await this.#fetch(url, {
                method,
                headers,
                body,
                signal: signal ? anySignal([signal, timeout]) : timeout,
            });
            raw = await res.text();
        } catch (e) {
            if (signal?.aborted) {
                throw e;
            }
            const where = { method, path, cause: e };
            if (timeout.aborted) {
                throw new TimeoutError(
                    `${method} ${path}: no reply within ${ms} ms`, where);
            }
            throw new ConnectionError(
                `${method} ${path}: ${describeFailure(e)} (${this.url})`,
                where);
        }
        let parsed = raw;
        if (!(text && ok.includes(res.status))) {
            try {
                parsed = JSON.parse(raw);
            } catch {
                // An error page not written by mcfault (413 from libevent).
            }
        }
        if (ok.includes(res.status)) {
            return parsed;
        }
        throw this.#error(res.status, parsed, method, path, ruleChange);
    }

    #error(status, body, method, path, ruleChange) {
        const isObj = body !== null && typeof body === 'object';
        const reason = isObj && typeof body.error === 'string'
            ? body.error
            : String(body).trim().slice(0, 200) || `HTTP ${status}`;
        const problems = isObj && Array.isArray(body.problems)
            ? body.problems
            : [];
        let message = `${method} ${path}: ${status} ${reason}`;
        if (problems.length > 0) {
            message += `:\n  ${problems.join('\n  ')}`;
        }
        const fields = { status, reason, problems, body, method, path };
        if (status === 404) {
            return new NotFoundError(message, fields);
        }
        if ((status === 400 || status === 409) &&
            (ruleChange || problems.length > 0)) {
            return new RuleError(message, fields);
        }
        if (status === 502 || status === 504) {
            return new UpstreamError(message, fields);
        }
        return new McfaultError(message, fields);
    }

    #proxy(opts) {
        return opts?.proxy ?? this.proxy;
    }

    /** GET /health: each proxy's upstream reachable? Resolves on 200 and
     * on 503 alike; `ok` says which. */
    async health(opts = {}) {
        return this.#call('GET', '/health', opts, { ok: [200, 503] });
    }

    /** GET /rules: the rules in force with their counters, per proxy. */
    async rules(opts = {}) {
        return this.#call('GET', '/rules', opts, {
            query: { proxy: this.#proxy(opts) },
        });
    }

    /**
     * PUT /rules: replaces the rules. doc is a rule document: an object
     * ({rules: [...]} or {proxies: [...]}), an array of rules (sent as
     * {rules: [...]}), or YAML/JSON text (a string or bytes).
     */
    async setRules(doc, opts = {}) {
        const d = documentBody(Array.isArray(doc) ? { rules: doc } : doc,
            'setRules()');
        return this.#call('PUT', '/rules', opts, {
            query: { proxy: this.#proxy(opts) }, body: d.body, type: d.type,
            ruleChange: true,
        });
    }

    /** POST /rules: appends one rule, an array of rules, {rules: [...]}
     * or YAML/JSON text after the rules in force. */
    async addRule(rules, opts = {}) {
        const d = documentBody(rules, 'addRule()');
        return this.#call('POST', '/rules', opts, {
            query: { proxy: this.#proxy(opts) }, body: d.body, type: d.type,
            ruleChange: true,
        });
    }

    /** GET /rules/NAME: one rule, with the proxy that has it. */
    async getRule(name, opts = {}) {
        return this.#call('GET', `/rules/${segment(name)}`, opts, {
            query: { proxy: this.#proxy(opts) },
        });
    }

    /** DELETE /rules/NAME: removes the rule (from every proxy that has
     * it, or opts.proxy's). */
    async removeRule(name, opts = {}) {
        return this.#call('DELETE', `/rules/${segment(name)}`, opts, {
            query: { proxy: this.#proxy(opts) }, ruleChange: true,
        });
    }

    /** DELETE /rules: removes every rule (of every proxy, or opts.proxy). */
    async clearRules(opts = {}) {
        return this.#call('DELETE', '/rules', opts, {
            query: { proxy: this.#proxy(opts) }, ruleChange: true,
        });
    }

    /** POST /rules/NAME/enable, in every proxy that has the rule. */
    async enable(name, opts = {}) {
        return this.#call('POST', `/rules/${segment(name)}/enable`, opts,
            { ruleChange: true });
    }

    /** POST /rules/NAME/disable, in every proxy that has the rule. */
    async disable(name, opts = {}) {
        return this.#call('POST', `/rules/${segment(name)}/disable`, opts,
            { ruleChange: true });
    }

    /** POST /reload: re-reads the rule file (as SIGHUP). */
    async reload(opts = {}) {
        return this.#call('POST', '/reload', opts, { ruleChange: true });
    }

    /** POST /reset: the rule file's rules, every proxy on, every counter
     * and the event ring as at a fresh start. */
    async reset(opts = {}) {
        return this.#call('POST', '/reset', opts, { ruleChange: true });
    }

    /**
     * POST /proxies/NAME/disable: switches a whole proxy off, as if its
     * memcached went away: every client connection of it is closed at
     * once (`closed` counts them) and new ones are refused until
     * enableProxy() or reset(). Idempotent; NotFoundError for no such
     * proxy.
     */
    async disableProxy(name, opts = {}) {
        return this.#call('POST',
            `/proxies/${segment(name, 'proxy')}/disable`, opts);
    }

    /** POST /proxies/NAME/enable: the proxy listens on the same address
     * and port again. Idempotent; McfaultError with status 409 when the
     * port was taken meanwhile (the proxy stays off). */
    async enableProxy(name, opts = {}) {
        return this.#call('POST',
            `/proxies/${segment(name, 'proxy')}/enable`, opts);
    }

    /** GET /stats: counters. */
    async stats(opts = {}) {
        return this.#call('GET', '/stats', opts);
    }

    /** GET /metrics: the Prometheus text exposition, as a string. */
    async metrics(opts = {}) {
        return this.#call('GET', '/metrics', opts, { text: true });
    }

    /** GET /events?since=N: the faults that fired after sequence N. */
    async events(opts = {}) {
        return this.#call('GET', '/events', opts, {
            query: { since: opts.since },
        });
    }

    /**
     * POST /upstream/command: sends one memcached text command (a string
     * or bytes, with its data block if any) straight to memcached, past
     * the rules. opts.upstreamTimeoutMs is the server's timeout_ms.
     */
    async upstreamCommand(command, opts = {}) {
        if (typeof command !== 'string' && !(command instanceof Uint8Array)) {
            throw new TypeError('upstreamCommand() takes a string or bytes');
        }
        return this.#call('POST', '/upstream/command', this.#upstream(opts), {
            query: { proxy: this.#proxy(opts),
                timeout_ms: opts.upstreamTimeoutMs },
            body: command,
            type: 'application/octet-stream',
        });
    }

    // The /upstream calls wait for memcached up to upstreamTimeoutMs
    // (mcfault's timeout_ms); the HTTP call is given that plus a margin
    // unless the caller set its own timeoutMs.
    #upstream(opts) {
        const wait = (opts.upstreamTimeoutMs ?? DEFAULT_TIMEOUT_MS) +
            UPSTREAM_MARGIN_MS;
        return {
            timeoutMs: opts.timeoutMs ?? Math.max(this.timeoutMs, wait),
            signal: opts.signal,
        };
    }

    /** GET /upstream/stats?sub=: memcached's "stats [sub]" (values are
     * strings). sub: items, slabs, settings, conns or sizes;
     * opts.upstreamTimeoutMs as for upstreamCommand. */
    async upstreamStats(sub, opts = {}) {
        if (sub !== null && typeof sub === 'object') {
            opts = sub;
            sub = undefined;
        }
        return this.#call('GET', '/upstream/stats', this.#upstream(opts), {
            query: { sub, proxy: this.#proxy(opts),
                timeout_ms: opts.upstreamTimeoutMs },
        });
    }

    /**
     * Adds rules (POST /rules) and resolves to a Fault that removes
     * exactly those, by name, when disposed:
     *
     *   await using f = await mc.fault({ action: 'miss', key: 'user:*' });
     *
     * Unnamed rules get a name of the form fault-PID-N.
     */
    async fault(rules, opts = {}) {
        const list = faultRules(rules);
        const result = await this.addRule(list, opts);
        return new Fault(this, list.map((r) => r.name), this.#proxy(opts),
            result);
    }

    /**
     * Runs fn(fault) with the rules added, and removes them when it
     * settles, whether it resolves or throws. Resolves to fn's result.
     * When fn throws, that error is the one raised (a failure to remove
     * the rules then is not reported).
     */
    async withFault(rules, fn, opts = {}) {
        if (typeof fn !== 'function') {
            throw new TypeError('withFault(rules, fn): fn must be a function');
        }
        const f = await this.fault(rules, opts);
        let value;
        try {
            value = await fn(f);
        } catch (e) {
            await f.restore().catch(() => {});
            throw e;
        }
        await f.restore();
        return value;
    }
}

export default Mcfault;

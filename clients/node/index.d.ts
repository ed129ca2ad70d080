// Type declarations for the mcfault admin API client (src/index.js).
// Field names are the server's, as docs/admin-api.md writes them.

// ------------------------------------------------------------------------
// Rules

/** A fault's kind (docs/config.md, "Actions"). */
export type Action = 'error' | 'delay' | 'drop' | 'hang' | 'miss'
    | 'throttle' | 'slice' | 'truncate' | 'corrupt' | 'evict';

/**
 * A rule as sent: the keys of a rule in the rule file (docs/config.md).
 * Durations are strings with a unit ("500ms", "1.5s", "250us", "5m",
 * "1h"); probability a number 0..1 or a percentage string ("25%"); byte
 * counts a number or a string with a unit ("512KiB").
 */
export interface RuleSpec {
    name?: string;
    /** Command globs; ['connect'] alone makes a rule about new connections. */
    command?: string | string[];
    key?: string | string[];
    action: Action;
    /** Required with action 'error': the reply line. */
    message?: string;
    /** Required with action 'delay'. */
    delay?: string;
    jitter?: string;
    probability?: number | string;
    after?: number;
    limit?: number;
    forward?: boolean;
    enabled?: boolean;
    /** drop, truncate: how the connection closes (default 'fin'). */
    close?: 'fin' | 'reset';
    /** Required with action 'throttle': bytes per second ("10KiB/s"). */
    rate?: number | string;
    /** Required with action 'slice': a piece's bytes (16) or a range ("1-16"). */
    size?: number | string;
    /** slice: the pause between two pieces (default "1ms"). */
    interval?: string;
    /** Required with action 'truncate': bytes kept (100) or a share ("50%"). */
    keep?: number | string;
    /** corrupt: bits flipped per value (default 1). */
    flips?: number;
    /** Only connections from these addresses or networks ("10.0.0.0/8"). */
    client?: string | string[];
    /** Only this share of connections, drawn once per connection ("25%"). */
    connections?: number | string;
    /** Only commands whose data block is at least / at most this long. */
    min_size?: number | string;
    max_size?: number | string;
    /** In force only in these windows, counted from the rule's first load. */
    schedule?: { start?: string; duration?: string; every?: string };
}

/** A proxy entry of the several-proxies document form. */
export interface ProxySpec {
    name?: string;
    listen: string;
    upstream: string;
    rules?: RuleSpec[];
}

/** A rule document (the rule file's schema) as an object. */
export type RuleDocument =
    | {
        rules?: RuleSpec[];
        listen?: string;
        upstream?: string;
        seed?: number;
        admin?: string;
        max_connections?: number;
    }
    | {
        proxies: ProxySpec[];
        seed?: number;
        admin?: string;
        max_connections?: number;
    };

/** YAML or JSON text, as a string or bytes. */
export type RuleText = string | Uint8Array;

/** A rule as GET /rules reports it, with its counters. */
export interface Rule {
    name: string;
    command: string[];
    key: string[];
    action: Action;
    /** Present for action 'error'. */
    message?: string;
    /** Present for action 'delay'. */
    delay_us?: number;
    /** Present for action 'delay'. */
    jitter_us?: number;
    probability: number;
    after: number;
    limit: number;
    forward: boolean;
    enabled: boolean;
    /** Commands whose globs matched. */
    matched: number;
    /** Faults the rule caused. */
    fired: number;
    /** Enabled and, with a schedule, on now. */
    in_force: boolean;
    /** Milliseconds until in_force changes by itself; null: never. */
    next_change_ms: number | null;
    /** drop, truncate: how the connection closes. */
    close?: 'fin' | 'reset';
    /** throttle: bytes per second. */
    rate_bps?: number;
    /** slice: the pieces' sizes, and the pause between them. */
    size?: { min: number; max: number };
    interval_us?: number;
    /** truncate: bytes kept, or a share ("50%"). */
    keep?: number | string;
    /** corrupt: bits flipped per value. */
    flips?: number;
    /** The client networks it is limited to ("10.0.0.0/8"). */
    client?: string[];
    /** The share of connections it applies to (below 1). */
    connections?: number;
    /** The data-block sizes it applies to; max_size null: no bound. */
    min_size?: number;
    max_size?: number | null;
    /** When it is in force, from its first load. */
    schedule?: { start_us: number; duration_us: number; every_us: number };
}

/** GET /rules/NAME: the rule, and the proxy that has it. */
export interface NamedRule extends Rule {
    proxy: string;
}

// ------------------------------------------------------------------------
// Results

export interface HealthProxy {
    name: string;
    listen: string;
    upstream: string;
    /** false while switched off (disableProxy). */
    enabled: boolean;
    upstream_reachable: boolean;
    /** Why the upstream is unreachable ("Connection refused", ...). */
    error?: string;
}

/** GET /health (200 and 503 alike). */
export interface HealthResult {
    ok: boolean;
    proxies: HealthProxy[];
}

/** GET /rules. */
export interface RulesResult {
    proxies: Array<{ name: string; rules: Rule[] }>;
}

/** PUT /rules, DELETE /rules, POST /reload, POST /reset. */
export interface RulesChanged {
    ok: true;
    /** Rules in force over every proxy. */
    rules: number;
}

/** POST /rules. */
export interface RulesAdded extends RulesChanged {
    added: number;
}

/** DELETE /rules/NAME. */
export interface RuleRemoved extends RulesChanged {
    /** From how many proxies. */
    removed: number;
}

/** POST /rules/NAME/enable|disable. */
export interface RuleToggled {
    ok: true;
    /** In how many proxies. */
    changed: number;
}

export interface StatsRule {
    name: string;
    enabled: boolean;
    matched: number;
    fired: number;
    /** Enabled and, with a schedule, on now. */
    in_force: boolean;
}

/** POST /proxies/NAME/disable|enable: the proxy's state afterwards. */
export interface ProxySwitch {
    ok: true;
    proxy: string;
    enabled: boolean;
    listen: string;
    /** disable: the client connections closed. */
    closed?: number;
}

/** GET /stats. */
export interface StatsResult {
    version: string;
    uptime_seconds: number;
    rules: number;
    connections_total: number;
    connections_now: number;
    client_bytes_in: number;
    client_bytes_out: number;
    upstream_bytes_out: number;
    upstream_bytes_in: number;
    upstream_errors: number;
    faults_total: number;
    reloads_ok: number;
    reloads_failed: number;
    /** Commands parsed, by name; names never seen are left out. */
    commands: Record<string, number>;
    faults: Record<Action, number>;
    proxies: Array<{
        name: string;
        /** false while switched off (disableProxy). */
        enabled: boolean;
        connections_now: number;
        connections_total: number;
        rules: StatsRule[];
    }>;
}

/** One fault that fired (as --event-log writes it). */
export interface FaultEvent {
    /** Seconds since the epoch, to the microsecond. */
    time: number;
    proxy: string;
    conn: number;
    rule: string;
    action: Action;
    forward: boolean;
    command: string;
    key: string;
    keys: number;
}

/** GET /events. */
export interface EventsResult {
    /** The newest sequence number handed out: pass it as since next. */
    last: number;
    events: Array<{ seq: number; event: FaultEvent }>;
}

/** POST /upstream/command. */
export interface UpstreamCommandResult {
    ok: true;
    /** The reply as text, or null when it is not valid UTF-8. */
    reply: string | null;
    /** The reply's bytes, always. */
    reply_base64: string;
    elapsed_us: number;
}

/** memcached's "stats" sub-commands GET /upstream/stats takes. */
export type UpstreamStatsSub = 'items' | 'slabs' | 'settings' | 'conns' |
    'sizes';

/** GET /upstream/stats. */
export interface UpstreamStatsResult {
    ok: true;
    /** As memcached sends them: every value a string. */
    stats: Record<string, string>;
}

// ------------------------------------------------------------------------
// Options

export interface McfaultOptions {
    /** The admin API; default "http://127.0.0.1:8080"; "host:port" is
     * taken as http. */
    url?: string;
    /** Every call's timeout, request to last byte; default 5000. */
    timeoutMs?: number;
    /** The default proxy for the calls that take ?proxy=. */
    proxy?: string;
    /** A fetch to use instead of the global one (the global fetch fits). */
    fetch?: FetchLike;
}

/** What the client needs of fetch. */
export type FetchLike = (url: string, init: {
    method: string;
    headers: Record<string, string>;
    body?: string | Uint8Array;
    signal: AbortSignal;
}) => Promise<{ status: number; text(): Promise<string> }>;

/** Taken by every call. */
export interface CallOptions {
    /** This call's timeout instead of the client's. */
    timeoutMs?: number;
    /** Aborts the call; the abort error is passed through as it is. */
    signal?: AbortSignal;
}

/** Taken by the calls whose endpoint takes ?proxy=NAME. */
export interface ProxyOptions extends CallOptions {
    proxy?: string;
}

export interface EventsOptions extends CallOptions {
    /** Only the events after this sequence number; default 0: all. */
    since?: number;
}

/** Taken by upstreamCommand and upstreamStats. */
export interface UpstreamOptions extends ProxyOptions {
    /** How long mcfault waits for memcached (?timeout_ms=, 1 to 600000;
     * default 5000). Unless timeoutMs is given, the call's own timeout is
     * at least this plus one second, so a silent memcached reads as the
     * server's 504 (UpstreamError). */
    upstreamTimeoutMs?: number;
}

// ------------------------------------------------------------------------
// Errors

export interface McfaultErrorFields {
    status?: number;
    reason?: string;
    problems?: string[];
    body?: unknown;
    method?: string;
    path?: string;
    cause?: unknown;
}

/** Every error a call raises. */
export class McfaultError extends Error {
    constructor(message: string, fields?: McfaultErrorFields);
    /** The HTTP status; undefined when no reply came. */
    readonly status: number | undefined;
    /** The server's "error" string (the message alone when none). */
    readonly reason: string;
    /** "NAME:LINE:COL: message" for each problem of a refused rule change;
     * [] otherwise. */
    readonly problems: string[];
    /** The reply: parsed JSON, or its text when it was not JSON. */
    readonly body: unknown;
    readonly method: string | undefined;
    readonly path: string | undefined;
}

/** 400 or 409 on a rule change (invalid rules, a duplicate name, reload
 * without a rule file): nothing was changed. */
export class RuleError extends McfaultError {}

/** 404: no rule, proxy or endpoint of that name. */
export class NotFoundError extends McfaultError {}

/** 502 or 504 from the /upstream endpoints. */
export class UpstreamError extends McfaultError {}

/** No HTTP reply: connection refused or reset. `cause` has fetch's error. */
export class ConnectionError extends McfaultError {}

/** No complete reply within the timeout. */
export class TimeoutError extends McfaultError {}

// ------------------------------------------------------------------------
// Client

export const DEFAULT_URL: string;
export const DEFAULT_TIMEOUT_MS: number;

/** What fault() and withFault() take: rule objects, which it can name. */
export type FaultRules = RuleSpec | RuleSpec[] | { rules: RuleSpec[] };

/**
 * Rules added by Mcfault#fault(); disposing removes exactly those.
 * (`await using` needs TypeScript 5.2+ with lib "esnext.disposable", or
 * @types/node 20.4+, for Symbol.asyncDispose.)
 */
export class Fault {
    private constructor();
    /** The names of the rules added (made up as fault-PID-N for rules
     * that had none). */
    readonly names: readonly string[];
    /** The proxy they were added to, if one was named. */
    readonly proxy: string | undefined;
    /** POST /rules's reply. */
    readonly result: RulesAdded;
    /** Removes the rules; those already gone are skipped; idempotent. */
    restore(): Promise<void>;
    [Symbol.asyncDispose](): Promise<void>;
}

export class Mcfault {
    constructor(options?: McfaultOptions);
    readonly url: string;
    readonly timeoutMs: number;
    readonly proxy: string | undefined;

    /** GET /health. Resolves on 503 too: see `ok`. */
    health(options?: CallOptions): Promise<HealthResult>;
    /** GET /rules. */
    rules(options?: ProxyOptions): Promise<RulesResult>;
    /** PUT /rules: replaces the rules. An array is sent as {rules: [...]}. */
    setRules(doc: RuleDocument | RuleSpec[] | RuleText,
        options?: ProxyOptions): Promise<RulesChanged>;
    /** POST /rules: appends one rule or several. */
    addRule(rules: RuleSpec | RuleSpec[] | { rules: RuleSpec[] } | RuleText,
        options?: ProxyOptions): Promise<RulesAdded>;
    /** GET /rules/NAME. */
    getRule(name: string, options?: ProxyOptions): Promise<NamedRule>;
    /** DELETE /rules/NAME. */
    removeRule(name: string, options?: ProxyOptions): Promise<RuleRemoved>;
    /** DELETE /rules. */
    clearRules(options?: ProxyOptions): Promise<RulesChanged>;
    /** POST /rules/NAME/enable. */
    enable(name: string, options?: CallOptions): Promise<RuleToggled>;
    /** POST /rules/NAME/disable. */
    disable(name: string, options?: CallOptions): Promise<RuleToggled>;
    /** POST /reload: re-reads the rule file. */
    reload(options?: CallOptions): Promise<RulesChanged>;
    /** POST /reset: the rule file's rules, every proxy on, counters and
     * events zeroed. */
    reset(options?: CallOptions): Promise<RulesChanged>;
    /** POST /proxies/NAME/disable: clients cut, new ones refused. */
    disableProxy(name: string, options?: CallOptions): Promise<ProxySwitch>;
    /** POST /proxies/NAME/enable: listening on the same port again. */
    enableProxy(name: string, options?: CallOptions): Promise<ProxySwitch>;
    /** GET /stats. */
    stats(options?: CallOptions): Promise<StatsResult>;
    /** GET /metrics: Prometheus text. */
    metrics(options?: CallOptions): Promise<string>;
    /** GET /events?since=N. */
    events(options?: EventsOptions): Promise<EventsResult>;
    /** POST /upstream/command: one memcached text command, past the rules. */
    upstreamCommand(command: string | Uint8Array,
        options?: UpstreamOptions): Promise<UpstreamCommandResult>;
    /** GET /upstream/stats?sub=. */
    upstreamStats(sub?: UpstreamStatsSub,
        options?: UpstreamOptions): Promise<UpstreamStatsResult>;
    upstreamStats(options: UpstreamOptions): Promise<UpstreamStatsResult>;

    /** Adds the rules; dispose the result (`await using`) to remove them. */
    fault(rules: FaultRules, options?: ProxyOptions): Promise<Fault>;
    /** Runs fn with the rules added and removes them when it settles. */
    withFault<T>(rules: FaultRules, fn: (fault: Fault) => T | Promise<T>,
        options?: ProxyOptions): Promise<T>;
}

export default Mcfault;

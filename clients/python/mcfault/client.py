# The mcfault admin API client: one method per endpoint of docs/admin-api.md,
# typed results, typed errors, a timeout on every call. Standard library only.

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, Union)

__all__ = [
    'Mcfault', 'Fault',
    'Rule', 'RuleChange', 'Event', 'Events', 'Stats', 'ProxyStats',
    'RuleStats', 'Health', 'ProxyHealth', 'ProxySwitch', 'UpstreamReply',
    'McfaultError', 'ApiError', 'RuleError', 'NotFound', 'UpstreamError',
    'UpstreamTimeout', 'ConnectionFailed', 'Timeout',
    'RuleSpec', 'Document',
]

DEFAULT_URL = 'http://127.0.0.1:8080'
DEFAULT_TIMEOUT = 5.0
# The upstream command's own deadline is the server's (timeout_ms); the HTTP
# call waits this much longer so that the server's 504 arrives first.
_UPSTREAM_SLACK_S = 1.0
_UPSTREAM_DEFAULT_MS = 5000  # the server's default timeout_ms
UPSTREAM_STATS_SUBS = ('items', 'slabs', 'settings', 'conns', 'sizes')

# A rule as the rule file writes it: a mapping of the rule keys
# (name, command, key, action, message, delay, jitter, probability, after,
# limit, forward, enabled, and the newer ones of docs/config.md: close,
# rate, size, interval, keep, flips, client, connections, min_size,
# max_size, schedule), or a Rule read back from the API.
RuleSpec = Union[Mapping[str, Any], 'Rule']
# A rule document: a mapping ({"rules": [...]} or {"proxies": [...]}), a
# list of rules, or YAML/JSON text.
Document = Union[Mapping[str, Any], Sequence[RuleSpec], str, bytes]


# --------------------------------------------------------------------------
# Errors


class McfaultError(Exception):
    """Base of every error this client raises."""


class ApiError(McfaultError):
    """mcfault answered with a 4xx or 5xx status.

    status: the HTTP status; message: the reply's "error" (or the status
    line's reason when the body was not JSON); body: the parsed reply (None
    when it was not JSON)."""

    def __init__(self, status: int, message: str,
                 body: Optional[Dict[str, Any]] = None,
                 method: str = '', path: str = '') -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.body = body
        self.method = method
        self.path = path

    @property
    def problems(self) -> List[str]:
        """The reply's "problems" (empty when it has none)."""
        p = (self.body or {}).get('problems')
        return [str(x) for x in p] if isinstance(p, list) else []

    def __str__(self) -> str:
        s = '%s %s: %d %s' % (self.method, self.path, self.status,
                              self.message)
        if self.problems:
            s += '\n  ' + '\n  '.join(self.problems)
        return s


class RuleError(ApiError):
    """A rule change was refused (400 or 409) and nothing changed: an
    invalid document, a duplicate rule name, a rule file with problems.
    .problems lists each, as "body:LINE:COL: message" (or FILE:...)."""


class NotFound(ApiError):
    """404: no rule, or no proxy, of that name (or an endpoint the running
    mcfault does not have)."""


class UpstreamError(ApiError):
    """502 from /upstream/*: memcached could not be reached or closed."""


class UpstreamTimeout(UpstreamError):
    """504 from /upstream/*: memcached did not answer in time."""


class ConnectionFailed(McfaultError, ConnectionError):
    """The admin API could not be reached (refused, reset, unresolvable)."""


class Timeout(McfaultError, TimeoutError):
    """The admin API did not answer within the call's timeout."""


def _error_for(status: int, message: str, body: Optional[Dict[str, Any]],
               method: str, path: str) -> ApiError:
    if status == 404:
        cls: type[ApiError] = NotFound
    elif status in (400, 409) and body is not None and 'problems' in body:
        cls = RuleError
    elif status == 504:
        cls = UpstreamTimeout
    elif status == 502:
        cls = UpstreamError
    else:
        cls = ApiError
    return cls(status, message, body, method, path)


# --------------------------------------------------------------------------
# Results


def _int(d: Mapping[str, Any], k: str, default: int = 0) -> int:
    v = d.get(k, default)
    return int(v) if v is not None else default


@dataclass
class Rule:
    """A rule in force, as GET /rules and GET /rules/NAME show it.

    delay_us and jitter_us are set for action "delay", message for
    "error". proxy names the proxy that holds it. in_force: enabled and,
    with a schedule, on now; next_change_ms: milliseconds until in_force
    next changes by itself (None: never). raw is the JSON object as
    received: the other actions' parameters and the targeting fields
    (close, rate_bps, size, keep, schedule, client, ...) are there."""

    name: str
    action: str
    command: List[str] = field(default_factory=lambda: ['*'])
    key: List[str] = field(default_factory=lambda: ['*'])
    message: Optional[str] = None
    delay_us: Optional[int] = None
    jitter_us: Optional[int] = None
    probability: float = 1.0
    after: int = 0
    limit: int = 0
    forward: bool = False
    enabled: bool = True
    matched: int = 0
    fired: int = 0
    proxy: Optional[str] = None
    in_force: bool = True
    next_change_ms: Optional[int] = None
    raw: Dict[str, Any] = field(default_factory=dict, repr=False,
                                compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any],
                  proxy: Optional[str] = None) -> 'Rule':
        def globs(v: Any) -> List[str]:
            if v is None:
                return ['*']
            return [v] if isinstance(v, str) else [str(x) for x in v]

        return cls(
            name=str(d.get('name', '')),
            action=str(d.get('action', '')),
            command=globs(d.get('command')),
            key=globs(d.get('key')),
            message=d.get('message'),
            delay_us=d.get('delay_us'),
            jitter_us=d.get('jitter_us'),
            probability=float(d.get('probability', 1)),
            after=_int(d, 'after'),
            limit=_int(d, 'limit'),
            forward=bool(d.get('forward', False)),
            enabled=bool(d.get('enabled', True)),
            matched=_int(d, 'matched'),
            fired=_int(d, 'fired'),
            proxy=d.get('proxy', proxy),
            # An mcfault from before schedules: in force when enabled.
            in_force=bool(d.get('in_force', d.get('enabled', True))),
            next_change_ms=(int(d['next_change_ms'])
                            if d.get('next_change_ms') is not None
                            else None),
            raw=dict(d),
        )

    def to_spec(self) -> Dict[str, Any]:
        """The rule in the rule file's schema (what POST /rules takes):
        add_rule(rule.to_spec()) puts back a rule that was removed.
        Counters are not part of it; the newer actions' parameters and
        the targeting keys (schedule, client, ...) are, from raw."""
        spec: Dict[str, Any] = {
            'name': self.name, 'command': list(self.command),
            'action': self.action,
        }
        if [c.lower() for c in self.command] != ['connect']:
            spec['key'] = list(self.key)  # a connect rule takes no key
        if self.message is not None:
            spec['message'] = self.message
        if self.delay_us is not None:
            spec['delay'] = '%dus' % self.delay_us
        if self.jitter_us:
            spec['jitter'] = '%dus' % self.jitter_us
        spec.update(probability=self.probability, after=self.after,
                    limit=self.limit, enabled=self.enabled)
        if self.forward:
            spec['forward'] = True
        spec.update(_spec_extras(self.raw))
        return spec


def _spec_extras(raw: Mapping[str, Any]) -> Dict[str, Any]:
    """The rule file's keys for what GET /rules reports beyond the classic
    fields (docs/admin-api.md): close, rate_bps, size, interval_us, keep,
    flips, client, connections, min_size, max_size, schedule."""
    spec: Dict[str, Any] = {}
    if raw.get('close') is not None:
        spec['close'] = raw['close']
    if raw.get('rate_bps') is not None:
        spec['rate'] = '%d/s' % int(raw['rate_bps'])
    size = raw.get('size')
    if isinstance(size, Mapping):
        spec['size'] = '%d-%d' % (int(size['min']), int(size['max']))
    if raw.get('interval_us') is not None:
        spec['interval'] = '%dus' % int(raw['interval_us'])
    if raw.get('keep') is not None:
        spec['keep'] = raw['keep']  # bytes, or "50%"
    if raw.get('flips') is not None:
        spec['flips'] = int(raw['flips'])
    if raw.get('client') is not None:
        spec['client'] = list(raw['client'])
    if raw.get('connections') is not None:
        spec['connections'] = raw['connections']
    if raw.get('min_size') is not None:
        spec['min_size'] = int(raw['min_size'])
    if raw.get('max_size') is not None:
        spec['max_size'] = int(raw['max_size'])
    sched = raw.get('schedule')
    if isinstance(sched, Mapping):
        spec['schedule'] = {k: '%dus' % int(sched.get(k + '_us', 0))
                            for k in ('start', 'duration', 'every')}
    return spec


@dataclass
class RuleChange:
    """The reply to a rule change. rules: the rules in force over every
    proxy afterwards (0 when the reply does not say); added, removed,
    changed: what the call did, where the endpoint reports it."""

    rules: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> 'RuleChange':
        return cls(rules=_int(d, 'rules'), added=_int(d, 'added'),
                   removed=_int(d, 'removed'), changed=_int(d, 'changed'))


@dataclass
class Event:
    """A fault that fired (GET /events). key is the first key: memcached
    keys are bytes, and a byte that is not part of well-formed UTF-8
    arrives as the character of the same code point (b'k\\xff' as 'k\\xff',
    i.e. 'kÿ'). raw is the "event" object as received."""

    seq: int
    time: float
    proxy: str
    rule: str
    action: str
    command: str
    key: str
    keys: int = 0
    conn: int = 0
    forward: bool = False
    raw: Dict[str, Any] = field(default_factory=dict, repr=False,
                                compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> 'Event':
        e = d.get('event') or {}
        return cls(seq=_int(d, 'seq'), time=float(e.get('time', 0.0)),
                   proxy=str(e.get('proxy', '')), rule=str(e.get('rule', '')),
                   action=str(e.get('action', '')),
                   command=str(e.get('command', '')),
                   key=str(e.get('key', '')), keys=_int(e, 'keys'),
                   conn=_int(e, 'conn'), forward=bool(e.get('forward')),
                   raw=dict(e))


@dataclass
class Events:
    """GET /events: the events after `since`, oldest first, and last, the
    newest sequence number handed out (pass it as since next time).
    Iterating it iterates the events."""

    last: int
    events: List[Event]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i: int) -> Event:
        return self.events[i]


@dataclass
class RuleStats:
    name: str
    enabled: bool
    matched: int
    fired: int
    in_force: bool = True


@dataclass
class ProxyStats:
    name: str
    connections_now: int
    connections_total: int
    rules: List[RuleStats]
    enabled: bool = True  # False while switched off (disable_proxy)


@dataclass
class Stats:
    """GET /stats (docs/admin-api.md has each field's meaning); raw is the
    reply as received."""

    version: str
    uptime_seconds: int
    rules: int
    connections_total: int
    connections_now: int
    client_bytes_in: int
    client_bytes_out: int
    upstream_bytes_out: int
    upstream_bytes_in: int
    upstream_errors: int
    faults_total: int
    reloads_ok: int
    reloads_failed: int
    commands: Dict[str, int]
    faults: Dict[str, int]
    proxies: List[ProxyStats]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False,
                                compare=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> 'Stats':
        ints = ('uptime_seconds', 'rules', 'connections_total',
                'connections_now', 'client_bytes_in', 'client_bytes_out',
                'upstream_bytes_out', 'upstream_bytes_in', 'upstream_errors',
                'faults_total', 'reloads_ok', 'reloads_failed')
        proxies = [ProxyStats(
            name=str(p.get('name', '')),
            connections_now=_int(p, 'connections_now'),
            connections_total=_int(p, 'connections_total'),
            rules=[RuleStats(str(r.get('name', '')),
                             bool(r.get('enabled', True)),
                             _int(r, 'matched'), _int(r, 'fired'),
                             bool(r.get('in_force',
                                        r.get('enabled', True))))
                   for r in p.get('rules', [])],
            enabled=bool(p.get('enabled', True)))
            for p in d.get('proxies', [])]
        return cls(version=str(d.get('version', '')),
                   commands={str(k): int(v)
                             for k, v in d.get('commands', {}).items()},
                   faults={str(k): int(v)
                           for k, v in d.get('faults', {}).items()},
                   proxies=proxies, raw=dict(d),
                   **{k: _int(d, k) for k in ints})


@dataclass
class ProxyHealth:
    name: str
    listen: str
    upstream: str
    upstream_reachable: bool
    error: Optional[str] = None
    enabled: bool = True  # False while switched off (disable_proxy)


@dataclass
class Health:
    """GET /health: ok when every proxy reached its memcached (HTTP 200);
    a 503 is not an error here, it is ok=False."""

    ok: bool
    proxies: List[ProxyHealth]

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class ProxySwitch:
    """POST /proxies/NAME/disable or /enable: the proxy's state
    afterwards. closed: the client connections a disable closed."""

    proxy: str
    enabled: bool
    listen: str
    closed: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> 'ProxySwitch':
        return cls(proxy=str(d.get('proxy', '')),
                   enabled=bool(d.get('enabled')),
                   listen=str(d.get('listen', '')), closed=_int(d, 'closed'))


@dataclass
class UpstreamReply:
    """POST /upstream/command: memcached's reply, framed. reply is the
    bytes; text the same as str when they are valid UTF-8, else None."""

    reply: bytes
    elapsed_us: int
    text: Optional[str]


# --------------------------------------------------------------------------
# The client


def _rule_spec(r: RuleSpec) -> Dict[str, Any]:
    if isinstance(r, Rule):
        return r.to_spec()
    if isinstance(r, Mapping):
        return dict(r)
    raise TypeError('a rule is a mapping or a Rule, not %s'
                    % type(r).__name__)


def _rule_list(
        rules: Union[RuleSpec, Iterable[RuleSpec]]) -> List[Dict[str, Any]]:
    if isinstance(rules, (Mapping, Rule)):
        return [_rule_spec(rules)]
    if isinstance(rules, (str, bytes)):
        raise TypeError('here a rule is a mapping or a Rule; YAML text '
                        'goes whole to add_rule() or set_rules()')
    return [_rule_spec(r) for r in rules]


class Mcfault:
    """A client of one mcfault admin API.

    url: where --admin listens ("http://127.0.0.1:8080"; "127.0.0.1:8080"
    works too). timeout: seconds for connecting and for each read, on
    every call (upstream_command waits longer when its timeout_ms asks
    for it). Each call opens its own connection, so one client may be
    shared between threads."""

    def __init__(self, url: str = DEFAULT_URL,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        if '://' not in url:
            url = 'http://' + url
        u = urllib.parse.urlsplit(url)
        if u.scheme != 'http':
            raise ValueError('mcfault admin URL must be http://, got %r' % url)
        if not u.hostname:
            raise ValueError('mcfault admin URL has no host: %r' % url)
        self.url = url.rstrip('/')
        self.timeout = timeout
        self._host = u.hostname
        self._port = u.port or 80
        self._base = u.path.rstrip('/')

    def __repr__(self) -> str:
        return 'Mcfault(url=%r, timeout=%r)' % (self.url, self.timeout)

    # -- transport ---------------------------------------------------------

    def _raw(self, method: str, path: str,
             query: Optional[Mapping[str, Any]] = None,
             body: Optional[bytes] = None, content_type: Optional[str] = None,
             timeout: Optional[float] = None) -> Tuple[int, str, bytes]:
        """One request on a new connection: (status, reason, body)."""
        q = {k: v for k, v in (query or {}).items() if v is not None}
        target = self._base + path
        if q:
            target += '?' + urllib.parse.urlencode(q)
        headers = {'Accept': 'application/json'}
        if content_type is not None:
            headers['Content-Type'] = content_type
        t = self.timeout if timeout is None else timeout
        conn = http.client.HTTPConnection(self._host, self._port, timeout=t)
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.read()
        except (socket.timeout, TimeoutError) as e:
            raise Timeout('%s %s: no answer from %s within %gs'
                          % (method, target, self.url, t)) from e
        except (OSError, http.client.HTTPException) as e:
            # Refused, reset, unresolvable, or closed before a reply.
            raise ConnectionFailed('%s %s: cannot reach %s: %s'
                                   % (method, target, self.url, e)) from e
        finally:
            conn.close()

    def _call(self, method: str, path: str,
              query: Optional[Mapping[str, Any]] = None,
              body: Optional[bytes] = None, content_type: Optional[str] = None,
              timeout: Optional[float] = None,
              ok: Tuple[int, ...] = (200,)) -> Dict[str, Any]:
        """A request whose reply is JSON; raises the typed error for an
        error status not in ok."""
        status, reason, data = self._raw(method, path, query, body,
                                         content_type, timeout)
        doc: Optional[Dict[str, Any]]
        try:
            parsed = json.loads(data.decode('utf-8')) if data else None
            doc = parsed if isinstance(parsed, dict) else None
        except ValueError:
            doc = None
        if status in ok:
            if doc is None:
                raise McfaultError('%s %s: %d with a reply that is not a '
                                   'JSON object: %r'
                                   % (method, path, status, data[:200]))
            return doc
        message = str(doc.get('error', reason)) if doc else reason
        raise _error_for(status, message, doc, method, path)

    @staticmethod
    def _document(doc: Document) -> Tuple[bytes, str]:
        if isinstance(doc, bytes):
            return doc, 'application/yaml'
        if isinstance(doc, str):
            return doc.encode('utf-8'), 'application/yaml'
        if not isinstance(doc, Mapping):
            doc = {'rules': _rule_list(doc)}
        # Non-ASCII as UTF-8, not \u escapes: the server reads JSON as YAML,
        # and YAML does not join surrogate pairs.
        return (json.dumps(doc, ensure_ascii=False).encode('utf-8'),
                'application/json')

    @staticmethod
    def _name(name: str, what: str = 'rule') -> str:
        if not name:
            raise ValueError('a %s name cannot be empty' % what)
        return urllib.parse.quote(name, safe='')

    # -- rules -------------------------------------------------------------

    def rules(self, proxy: Optional[str] = None) -> List[Rule]:
        """GET /rules: the rules in force, in priority order, with their
        counters; every proxy's (each Rule's .proxy says whose) or the
        named proxy's. NotFound when proxy names none."""
        d = self._call('GET', '/rules', {'proxy': proxy})
        return [Rule.from_json(r, p.get('name'))
                for p in d.get('proxies', []) for r in p.get('rules', [])]

    def get_rule(self, name: str, proxy: Optional[str] = None) -> Rule:
        """GET /rules/NAME: one rule with its counters. NotFound when there
        is no rule of that name."""
        d = self._call('GET', '/rules/' + self._name(name), {'proxy': proxy})
        return Rule.from_json(d)

    def set_rules(self, doc: Document,
                  proxy: Optional[str] = None) -> RuleChange:
        """PUT /rules: replace the rules with a document: a mapping in the
        rule file's schema ({"rules": [...]}, sent as JSON), a list of rules
        (sent as {"rules": [...]}), or YAML/JSON text as it is. RuleError
        (with .problems) when it is refused: then nothing changed."""
        body, ctype = self._document(doc)
        return RuleChange.from_json(self._call('PUT', '/rules',
                                               {'proxy': proxy}, body, ctype))

    def add_rule(self, rule: Union[RuleSpec, Iterable[RuleSpec], str, bytes],
                 proxy: Optional[str] = None) -> RuleChange:
        """POST /rules: append one rule or several (a list,
        {"rules": [...]}, or YAML/JSON text) after the rules in force.
        RuleError with status 409 when a name is taken, 400 when a rule is
        invalid; either way nothing changed."""
        if isinstance(rule, (str, bytes)):
            body, ctype = self._document(rule)
        elif isinstance(rule, Mapping) and 'rules' in rule:
            body, ctype = self._document(rule)  # already {"rules": [...]}
        else:
            body, ctype = self._document({'rules': _rule_list(rule)})
        return RuleChange.from_json(self._call('POST', '/rules',
                                               {'proxy': proxy}, body, ctype))

    def remove_rule(self, name: str,
                    proxy: Optional[str] = None) -> RuleChange:
        """DELETE /rules/NAME: remove the rule of that name from every proxy
        (or the named one). NotFound when there is none."""
        return RuleChange.from_json(self._call(
            'DELETE', '/rules/' + self._name(name), {'proxy': proxy}))

    def clear_rules(self, proxy: Optional[str] = None) -> RuleChange:
        """DELETE /rules: remove every rule (of every proxy, or the named
        one's)."""
        return RuleChange.from_json(self._call('DELETE', '/rules',
                                               {'proxy': proxy}))

    def enable(self, name: str) -> RuleChange:
        """POST /rules/NAME/enable in every proxy that has it (.changed says
        in how many). NotFound when none has."""
        return RuleChange.from_json(self._call(
            'POST', '/rules/%s/enable' % self._name(name)))

    def disable(self, name: str) -> RuleChange:
        """POST /rules/NAME/disable: the rule stays, with its counters, and
        never matches until enabled."""
        return RuleChange.from_json(self._call(
            'POST', '/rules/%s/disable' % self._name(name)))

    def reload(self) -> RuleChange:
        """POST /reload: re-read the rule file (as SIGHUP). RuleError when
        the file has problems (the old rules stay); ApiError 409 when
        mcfault runs without -c."""
        return RuleChange.from_json(self._call('POST', '/reload'))

    def reset(self) -> RuleChange:
        """POST /reset: back to a fresh start without a restart: the rule
        file's rules (none without -c), every proxy switched on, every
        counter and the event ring zeroed. RuleError when the rule file has
        problems (nothing reset)."""
        return RuleChange.from_json(self._call('POST', '/reset'))

    def fault(self, *rules: Union[RuleSpec, Iterable[RuleSpec]],
              proxy: Optional[str] = None) -> 'Fault':
        """A context manager that adds rules for the length of a block and
        then removes exactly those, by name, even when the block raises:

            with mc.fault({"name": "oom", "command": "set",
                           "action": "error",
                           "message": "SERVER_ERROR out of memory"}):
                ...

        Takes rules as arguments or one list. A rule without a name gets a
        unique one ("fault-1a2b3c4d"). The rules are added in one call, so
        either all are in force or none (RuleError). Also usable as a
        decorator."""
        specs: List[Dict[str, Any]] = []
        for r in rules:
            specs.extend(_rule_list(r))
        if not specs:
            raise ValueError('fault() needs at least one rule')
        for s in specs:
            if not s.get('name'):
                s['name'] = 'fault-' + uuid.uuid4().hex[:8]
        return Fault(self, specs, proxy)

    # -- proxies -----------------------------------------------------------

    def disable_proxy(self, name: str) -> ProxySwitch:
        """POST /proxies/NAME/disable: switch a whole proxy off, as if its
        memcached went away: every client connection of it is closed at
        once (.closed counts them) and new ones are refused until
        enable_proxy (or reset). Idempotent. NotFound when there is no
        proxy of that name."""
        return ProxySwitch.from_json(self._call(
            'POST', '/proxies/%s/disable' % self._name(name, 'proxy')))

    def enable_proxy(self, name: str) -> ProxySwitch:
        """POST /proxies/NAME/enable: the proxy listens again, on the same
        address and port. Idempotent. ApiError 409 when the port was
        taken meanwhile (the proxy stays off); NotFound for no such
        proxy."""
        return ProxySwitch.from_json(self._call(
            'POST', '/proxies/%s/enable' % self._name(name, 'proxy')))

    # -- observing ---------------------------------------------------------

    def health(self) -> Health:
        """GET /health: can each proxy reach its memcached? Takes up to a
        second when one cannot."""
        d = self._call('GET', '/health', ok=(200, 503))
        return Health(ok=bool(d.get('ok')), proxies=[
            ProxyHealth(name=str(p.get('name', '')),
                        listen=str(p.get('listen', '')),
                        upstream=str(p.get('upstream', '')),
                        upstream_reachable=bool(p.get('upstream_reachable')),
                        error=p.get('error'),
                        enabled=bool(p.get('enabled', True)))
            for p in d.get('proxies', [])])

    def stats(self) -> Stats:
        """GET /stats: counters since the start (or the last reset)."""
        return Stats.from_json(self._call('GET', '/stats'))

    def metrics(self) -> str:
        """GET /metrics: the Prometheus text exposition."""
        status, reason, data = self._raw('GET', '/metrics')
        if status != 200:
            raise _error_for(status, reason, None, 'GET', '/metrics')
        return data.decode('utf-8')

    def events(self, since: int = 0) -> Events:
        """GET /events?since=N: the faults that fired after sequence number
        since (0: all that are remembered, at most 1,024)."""
        if since < 0:
            raise ValueError('since must be >= 0')
        d = self._call('GET', '/events', {'since': since})
        return Events(last=_int(d, 'last'),
                      events=[Event.from_json(e) for e in d.get('events', [])])

    # -- memcached behind the proxy ---------------------------------------

    def upstream_command(self, command: Union[str, bytes],
                         proxy: Optional[str] = None,
                         timeout_ms: Optional[int] = None) -> UpstreamReply:
        """POST /upstream/command: send one memcached text command (with its
        data block: "set k 0 0 2\\r\\nhi\\r\\n") straight to memcached, past
        the rules, and return its reply. UpstreamError (502) when memcached
        cannot be reached, UpstreamTimeout (504) after timeout_ms (server
        default 5000), ApiError 400 for a malformed command."""
        body = command.encode('utf-8') if isinstance(command, str) else command
        server_ms = _UPSTREAM_DEFAULT_MS if timeout_ms is None else timeout_ms
        wait = max(self.timeout, server_ms / 1000.0 + _UPSTREAM_SLACK_S)
        d = self._call('POST', '/upstream/command',
                       {'proxy': proxy, 'timeout_ms': timeout_ms}, body,
                       'text/plain', timeout=wait)
        b64 = d.get('reply_base64')
        if isinstance(b64, str):
            reply = base64.b64decode(b64)
        else:
            reply = str(d.get('reply') or '').encode('utf-8')
        text = d.get('reply')
        return UpstreamReply(reply=reply, elapsed_us=_int(d, 'elapsed_us'),
                             text=text if isinstance(text, str) else None)

    def upstream_stats(self, sub: Optional[str] = None,
                       proxy: Optional[str] = None) -> Dict[str, str]:
        """GET /upstream/stats: memcached's "stats" (or "stats SUB", SUB one
        of items, slabs, settings, conns, sizes) as strings."""
        if sub is not None and sub not in UPSTREAM_STATS_SUBS:
            raise ValueError('sub must be one of %s'
                             % ', '.join(UPSTREAM_STATS_SUBS))
        d = self._call('GET', '/upstream/stats', {'sub': sub, 'proxy': proxy})
        return {str(k): str(v) for k, v in d.get('stats', {}).items()}


class Fault(contextlib.ContextDecorator):
    """What Mcfault.fault returns: on entry the rules are added (POST
    /rules), on exit removed by name. names lists them; rules() reads them
    back with their counters while the block runs."""

    def __init__(self, client: Mcfault, specs: List[Dict[str, Any]],
                 proxy: Optional[str]) -> None:
        self.client = client
        self.specs = specs
        self.proxy = proxy
        self.names = [str(s['name']) for s in specs]

    def rules(self) -> List[Rule]:
        return [self.client.get_rule(n, self.proxy) for n in self.names]

    def rule(self, name: Optional[str] = None) -> Rule:
        """The rule of that name (default: the first) with its counters."""
        return self.client.get_rule(name or self.names[0], self.proxy)

    def __enter__(self) -> 'Fault':
        self.client.add_rule(self.specs, proxy=self.proxy)
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException],
                 tb: Any) -> None:
        failure: Optional[McfaultError] = None
        for n in self.names:
            try:
                self.client.remove_rule(n, proxy=self.proxy)
            except NotFound:
                pass  # the block removed it (or reset) already
            except McfaultError as e:
                failure = failure or e
        if failure is None:
            return
        if exc is not None:
            # Do not hide the block's own error behind the cleanup's.
            exc.add_note('mcfault: removing fault rules %s failed: %s'
                         % (self.names, failure))
            return
        raise failure

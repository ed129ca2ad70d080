// Client for mcfault's admin HTTP API (docs/admin-api.md): one method per
// endpoint, each taking a context, bounded by the client's timeout, and
// returning a typed result or a typed error (errors.go).

// Package mcfault drives mcfault, the fault-injection proxy for memcached,
// through its admin HTTP API, so that a test can switch a fault on for
// itself and off again:
//
//	client := mcfault.New("http://127.0.0.1:8080")
//	mcfault.WithFault(t, client, mcfault.Rule{Key: []string{"session:*"}, Action: mcfault.ActionMiss})
//
// Every method maps onto one endpoint of the API and takes a
// context.Context. The package uses the standard library only.
package mcfault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds each call when New is given no WithTimeout. It is
// longer than mcfault's own 5 s upstream timeout (POST /upstream/command),
// so that mcfault's answer arrives before the client gives up.
const DefaultTimeout = 10 * time.Second

// maxReplyBytes caps the reply body read into memory: /metrics and
// /events with many rules are the largest replies, well under this.
const maxReplyBytes = 64 << 20

// A Client talks to one mcfault admin API. It is safe for concurrent use.
// The zero value is not usable: call New.
type Client struct {
	base            string // scheme://host:port, without a trailing slash
	hc              *http.Client
	timeout         time.Duration
	upstreamTimeout time.Duration
	proxy           string // sent as ?proxy= where the API takes it
}

// An Option configures a Client in New.
type Option func(*Client)

// WithTimeout bounds every call (connecting, sending, waiting for and
// reading the reply) to d; a context deadline that comes sooner wins.
// d <= 0 leaves only the context's deadline. The default is DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) { c.timeout = d }
}

// WithHTTPClient makes the Client send its requests with hc (a custom
// transport, for instance). The Client's own timeout still applies.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithUpstreamTimeout sets how long mcfault waits for memcached's reply
// in UpstreamCommand and UpstreamStats (the timeout_ms parameter);
// d <= 0 leaves mcfault's default, 5 s. Keep it below the call timeout.
func WithUpstreamTimeout(d time.Duration) Option {
	return func(c *Client) { c.upstreamTimeout = d }
}

// New returns a Client for the admin API at baseURL
// ("http://127.0.0.1:8080"; "127.0.0.1:8080" without a scheme means
// http). New never fails: a bad URL is reported by each call.
func New(baseURL string, opts ...Option) *Client {
	base := strings.TrimRight(baseURL, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &Client{base: base, hc: &http.Client{}, timeout: DefaultTimeout}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// Proxy returns a Client that shares c's connection pool and options and
// names one proxy (?proxy=NAME) in the calls that can name one: Rules,
// SetRules, AddRules, GetRule, RemoveRule, ClearRules, UpstreamCommand,
// UpstreamStats, and Fault. An empty name means every proxy (the default).
func (c *Client) Proxy(name string) *Client {
	cp := *c
	cp.proxy = name
	return &cp
}

// ProxyName is the proxy this Client names, "" for none (see Proxy).
func (c *Client) ProxyName() string { return c.proxy }

// Health reports whether each proxy can reach its memcached (GET /health).
// An unreachable upstream is not an error: mcfault answers 503 with the
// same document, and Health returns it with OK false.
func (c *Client) Health(ctx context.Context) (*Health, error) {
	var h Health
	status, body, err := c.send(ctx, http.MethodGet, "/health", nil, nil, "")
	if err != nil {
		return nil, err
	}
	if status == http.StatusServiceUnavailable && json.Unmarshal(body, &h) == nil && h.Proxies != nil {
		return &h, nil
	}
	if err := c.check(http.MethodGet, "/health", status, body); err != nil {
		return nil, err
	}
	if err := decode(http.MethodGet, "/health", status, body, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Rules returns the rules in force with their counters (GET /rules), each
// proxy's rules in priority order, each with its Proxy set. A Proxy-scoped
// client gets that proxy's rules (ErrNotFound when there is none).
func (c *Client) Rules(ctx context.Context) ([]RuleInfo, error) {
	var reply struct {
		Proxies []struct {
			Name  string     `json:"name"`
			Rules []RuleInfo `json:"rules"`
		} `json:"proxies"`
	}
	if err := c.call(ctx, http.MethodGet, "/rules", c.proxyQuery(), nil, "", &reply); err != nil {
		return nil, err
	}
	rules := []RuleInfo{}
	for _, p := range reply.Proxies {
		for _, r := range p.Rules {
			r.Proxy = p.Name
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// SetRules replaces the rules with doc (PUT /rules): Rules{...} or a
// single Rule, YAML("...") text, or JSON(v) of any value. The document is
// checked whole; a refused one changes nothing and returns an *APIError
// (ErrInvalid) carrying the problems. Change.Rules counts the rules in
// force over every proxy.
func (c *Client) SetRules(ctx context.Context, doc Document) (*Change, error) {
	body, ctype, err := doc.document()
	if err != nil {
		return nil, err
	}
	var ch Change
	if err := c.call(ctx, http.MethodPut, "/rules", c.proxyQuery(), body, ctype, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// AddRules appends doc's rules after the proxy's current rules (POST
// /rules): a Rule, Rules{...}, YAML or JSON. With several proxies running,
// name one with Proxy (mcfault refuses the request otherwise). A name
// already taken (or
// twice in doc) is an *APIError with ErrConflict; a bad rule one with
// ErrInvalid; in both cases nothing changes. Change.Added counts the
// rules added, Change.Rules those in force over every proxy.
func (c *Client) AddRules(ctx context.Context, doc Document) (*Change, error) {
	body, ctype, err := doc.document()
	if err != nil {
		return nil, err
	}
	var ch Change
	if err := c.call(ctx, http.MethodPost, "/rules", c.proxyQuery(), body, ctype, &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// GetRule returns the rule called name with its counters and proxy (GET
// /rules/NAME); ErrNotFound when there is none.
func (c *Client) GetRule(ctx context.Context, name string) (*RuleInfo, error) {
	var r RuleInfo
	if err := c.call(ctx, http.MethodGet, rulePath(name, ""), c.proxyQuery(), nil, "", &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// RemoveRule removes the rule called name from every proxy that has it,
// or from the Client's proxy (DELETE /rules/NAME); ErrNotFound when none
// has it. Change.Removed counts the rules removed.
func (c *Client) RemoveRule(ctx context.Context, name string) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodDelete, rulePath(name, ""), c.proxyQuery(), nil, "", &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// ClearRules removes every rule of every proxy, or of the Client's proxy
// (DELETE /rules): traffic then passes untouched.
func (c *Client) ClearRules(ctx context.Context) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodDelete, "/rules", c.proxyQuery(), nil, "", &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// EnableRule switches the rule called name on in every proxy that has one
// (POST /rules/NAME/enable); Change.Changed says in how many. ErrNotFound
// when none has it.
func (c *Client) EnableRule(ctx context.Context, name string) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodPost, rulePath(name, "/enable"), nil, nil, "", &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// DisableRule switches the rule called name off (POST
// /rules/NAME/disable): it keeps its place and counters and never
// matches. ErrNotFound when no proxy has it.
func (c *Client) DisableRule(ctx context.Context, name string) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodPost, rulePath(name, "/disable"), nil, nil, "", &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Reload re-reads mcfault's rule file (POST /reload), as SIGHUP does. A
// file with problems is an *APIError with ErrInvalid and the old rules
// stay; mcfault started without -c answers ErrConflict.
func (c *Client) Reload(ctx context.Context) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodPost, "/reload", nil, nil, "", &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// Reset brings mcfault back to the state of a fresh start (POST /reset):
// the rule file's rules (none without -c), every proxy switched on (see
// DisableProxy), every counter zeroed and the
// event sequence restarted at 1. Call it between tests that share one
// mcfault. A bad rule file is an *APIError with ErrInvalid, and nothing
// is reset.
func (c *Client) Reset(ctx context.Context) (*Change, error) {
	var ch Change
	if err := c.call(ctx, http.MethodPost, "/reset", nil, nil, "", &ch); err != nil {
		return nil, err
	}
	return &ch, nil
}

// DisableProxy switches the proxy called name off (POST
// /proxies/NAME/disable), as if its memcached went away: every client
// connection of it is closed at once (ProxySwitch.Closed counts them) and
// new ones are refused until EnableProxy or Reset. Switching off a proxy
// that is off is no error. ErrNotFound when there is no such proxy.
func (c *Client) DisableProxy(ctx context.Context, name string) (*ProxySwitch, error) {
	return c.switchProxy(ctx, name, "/disable")
}

// EnableProxy switches the proxy called name back on (POST
// /proxies/NAME/enable): it listens on the same address and port again.
// ErrConflict when the port was taken meanwhile (the proxy stays off);
// ErrNotFound when there is no such proxy.
func (c *Client) EnableProxy(ctx context.Context, name string) (*ProxySwitch, error) {
	return c.switchProxy(ctx, name, "/enable")
}

func (c *Client) switchProxy(ctx context.Context, name, suffix string) (*ProxySwitch, error) {
	if name == "" {
		return nil, errors.New("mcfault: a proxy name cannot be empty")
	}
	var sw ProxySwitch
	if err := c.call(ctx, http.MethodPost, "/proxies/"+url.PathEscape(name)+suffix, nil, nil, "", &sw); err != nil {
		return nil, err
	}
	return &sw, nil
}

// Stats returns mcfault's counters (GET /stats).
func (c *Client) Stats(ctx context.Context) (*Stats, error) {
	var s Stats
	if err := c.call(ctx, http.MethodGet, "/stats", nil, nil, "", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Metrics returns the counters in the Prometheus text format (GET
// /metrics), as text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	status, body, err := c.send(ctx, http.MethodGet, "/metrics", nil, nil, "")
	if err != nil {
		return "", err
	}
	if err := c.check(http.MethodGet, "/metrics", status, body); err != nil {
		return "", err
	}
	return string(body), nil
}

// Events returns the faults that fired after sequence number since, oldest
// first (GET /events?since=N); pass the reply's Last as since next time.
// Only the last 1,024 are kept: a gap between since and the first Seq
// counts those missed.
func (c *Client) Events(ctx context.Context, since uint64) (*Events, error) {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	var ev Events
	if err := c.call(ctx, http.MethodGet, "/events", q, nil, "", &ev); err != nil {
		return nil, err
	}
	if ev.Events == nil {
		ev.Events = []Event{}
	}
	return &ev, nil
}

// UpstreamCommand sends one memcached text command, with its data block
// if it has one ("set k 0 0 2\r\nhi\r\n"), straight to the memcached
// behind the proxy, past the rules (POST /upstream/command); a command
// line without its final "\r\n" gets one. A bad command is ErrInvalid;
// memcached unreachable or timing out is ErrUpstream (status 502 or 504).
func (c *Client) UpstreamCommand(ctx context.Context, command string) (*UpstreamReply, error) {
	var reply struct {
		Reply       *string `json:"reply"`
		ReplyBase64 string  `json:"reply_base64"`
		ElapsedUS   int64   `json:"elapsed_us"`
	}
	if err := c.call(ctx, http.MethodPost, "/upstream/command", c.upstreamQuery(), []byte(command),
		"text/plain; charset=utf-8", &reply); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(reply.ReplyBase64)
	if err != nil {
		return nil, &APIError{Method: http.MethodPost, Path: "/upstream/command", Status: http.StatusOK,
			Message: "bad reply_base64 in mcfault's reply: " + err.Error()}
	}
	return &UpstreamReply{
		Reply:   string(raw),
		UTF8:    reply.Reply != nil,
		Elapsed: time.Duration(reply.ElapsedUS) * time.Microsecond,
	}, nil
}

// UpstreamStats returns memcached's "stats" (sub "") or "stats SUB" (sub
// one of items, slabs, settings, conns, sizes) as memcached sends them,
// values as strings (GET /upstream/stats). Another sub is ErrInvalid;
// memcached unreachable or timing out is ErrUpstream.
func (c *Client) UpstreamStats(ctx context.Context, sub string) (map[string]string, error) {
	q := c.upstreamQuery()
	if sub != "" {
		q.Set("sub", sub)
	}
	var reply struct {
		Stats map[string]string `json:"stats"`
	}
	if err := c.call(ctx, http.MethodGet, "/upstream/stats", q, nil, "", &reply); err != nil {
		return nil, err
	}
	if reply.Stats == nil {
		reply.Stats = map[string]string{}
	}
	return reply.Stats, nil
}

// rulePath is /rules/NAME+suffix with NAME percent-encoded, "/" included.
func rulePath(name, suffix string) string {
	return "/rules/" + url.PathEscape(name) + suffix
}

func (c *Client) proxyQuery() url.Values {
	q := url.Values{}
	if c.proxy != "" {
		q.Set("proxy", c.proxy)
	}
	return q
}

func (c *Client) upstreamQuery() url.Values {
	q := c.proxyQuery()
	if c.upstreamTimeout > 0 {
		ms := c.upstreamTimeout.Milliseconds()
		if ms < 1 {
			ms = 1
		}
		q.Set("timeout_ms", strconv.FormatInt(ms, 10))
	}
	return q
}

// call sends a request and decodes a 2xx JSON reply into out; any other
// status is an *APIError.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, body []byte, ctype string, out any) error {
	status, reply, err := c.send(ctx, method, path, q, body, ctype)
	if err != nil {
		return err
	}
	if err := c.check(method, path, status, reply); err != nil {
		return err
	}
	return decode(method, path, status, reply, out)
}

// send makes one request under the client's timeout and reads the whole
// reply. Its error is a *ConnectionError or *TimeoutError: the request got
// no complete HTTP answer.
func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte, ctype string) (int, []byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, &ConnectionError{Method: method, URL: u, Err: err}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, c.transportError(ctx, method, u, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if err != nil {
		return 0, nil, c.transportError(ctx, method, u, err)
	}
	return resp.StatusCode, reply, nil
}

// transportError tells a timeout (the client's or the context's deadline)
// from any other failure to get an answer.
func (c *Client) transportError(ctx context.Context, method, u string, err error) error {
	var ne interface{ Timeout() bool }
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return &TimeoutError{Method: method, URL: u, Limit: c.timeout, Err: err}
	}
	return &ConnectionError{Method: method, URL: u, Err: err}
}

// check turns a status other than 2xx into an *APIError, reading mcfault's
// {"error": ..., "problems": [...]} when the body is that.
func (c *Client) check(method, path string, status int, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &APIError{Method: method, Path: path, Status: status}
	var reply struct {
		Error    *string  `json:"error"`
		Problems []string `json:"problems"`
	}
	if json.Unmarshal(body, &reply) == nil && reply.Error != nil {
		e.Message = *reply.Error
		e.Problems = reply.Problems
	} else {
		// Not mcfault's JSON (libevent's 413 page, a proxy in between):
		// the status text is more telling than a page of HTML.
		e.Message = http.StatusText(status)
		if text := strings.TrimSpace(string(body)); text != "" && !strings.HasPrefix(text, "<") && len(text) < 512 {
			e.Message = text
		}
	}
	return e
}

func decode(method, path string, status int, body []byte, out any) error {
	if err := json.Unmarshal(body, out); err != nil {
		return &APIError{Method: method, Path: path, Status: status,
			Message: fmt.Sprintf("mcfault's reply is not the JSON expected: %v", err)}
	}
	return nil
}

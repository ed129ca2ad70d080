// Unit tests against a stand-in server (net/http/httptest): the request each
// call sends, the replies it decodes, the errors it returns. No mcfault
// needed; integration_test.go runs the real one.

package mcfault_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	mcfault "github.com/mcfault/mcfault/clients/go"
)

// seen is one request as the stand-in server received it.
type seen struct {
	method, path, query, body, ctype string
}

// stub answers every request with status and reply, and records it.
func stub(t *testing.T, status int, reply string) (*mcfault.Client, *seen) {
	t.Helper()
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Get("Content-Type")}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, reply)
	}))
	t.Cleanup(srv.Close)
	return mcfault.New(srv.URL, mcfault.WithTimeout(2*time.Second)), &got
}

func TestCallsMapOntoEndpoints(t *testing.T) {
	ctx := context.Background()
	oom := mcfault.Rule{Name: "oom", Command: []string{"set"}, Action: mcfault.ActionError, Message: "SERVER_ERROR oom"}
	cases := []struct {
		name   string
		reply  string
		call   func(c *mcfault.Client) (any, error)
		want   seen // ctype checked only when set
		result any
	}{
		{"health", `{"proxies":[{"name":"default","listen":"l","upstream":"u","upstream_reachable":true}],"ok":true}`,
			func(c *mcfault.Client) (any, error) { return c.Health(ctx) },
			seen{method: "GET", path: "/health"},
			&mcfault.Health{OK: true, Proxies: []mcfault.ProxyHealth{{Name: "default", Listen: "l", Upstream: "u", Enabled: true, UpstreamReachable: true}}}},
		{"health, a proxy switched off", `{"proxies":[{"name":"a","listen":"l","upstream":"u","enabled":false,"upstream_reachable":true}],"ok":true}`,
			func(c *mcfault.Client) (any, error) { return c.Health(ctx) },
			seen{method: "GET", path: "/health"},
			&mcfault.Health{OK: true, Proxies: []mcfault.ProxyHealth{{Name: "a", Listen: "l", Upstream: "u", UpstreamReachable: true}}}},
		{"rules", `{"proxies":[{"name":"a","rules":[{"name":"x","command":["*"],"key":["k*"],"action":"miss","probability":1,"after":0,"limit":0,"forward":false,"enabled":false,"matched":3,"fired":2}]},{"name":"b","rules":[]}]}`,
			func(c *mcfault.Client) (any, error) { return c.Rules(ctx) },
			seen{method: "GET", path: "/rules"},
			[]mcfault.RuleInfo{{Rule: mcfault.Rule{Name: "x", Command: []string{"*"}, Key: []string{"k*"}, Action: "miss", Probability: 1, Disabled: true},
				Proxy: "a", Matched: 3, Fired: 2}}},
		{"set rules", `{"ok":true,"rules":1}`,
			func(c *mcfault.Client) (any, error) { return c.SetRules(ctx, mcfault.Rules{oom}) },
			seen{method: "PUT", path: "/rules", ctype: "application/json",
				body: `{"rules":[{"name":"oom","command":["set"],"action":"error","message":"SERVER_ERROR oom"}]}`},
			&mcfault.Change{Rules: 1}},
		{"set rules yaml", `{"ok":true,"rules":0}`,
			func(c *mcfault.Client) (any, error) { return c.SetRules(ctx, mcfault.YAML("rules: []\n")) },
			seen{method: "PUT", path: "/rules", body: "rules: []\n", ctype: "application/yaml"},
			&mcfault.Change{}},
		{"set rules json", `{"ok":true,"rules":0}`,
			func(c *mcfault.Client) (any, error) {
				return c.SetRules(ctx, mcfault.JSON(map[string]any{"proxies": []any{map[string]any{"name": "a"}}}))
			},
			seen{method: "PUT", path: "/rules", body: `{"proxies":[{"name":"a"}]}`, ctype: "application/json"},
			&mcfault.Change{}},
		{"set no rules", `{"ok":true,"rules":0}`,
			func(c *mcfault.Client) (any, error) { return c.SetRules(ctx, mcfault.Rules(nil)) },
			seen{method: "PUT", path: "/rules", body: `{"rules":[]}`},
			&mcfault.Change{}},
		{"add rule", `{"ok":true,"rules":3,"added":1}`,
			func(c *mcfault.Client) (any, error) { return c.AddRules(ctx, oom) },
			seen{method: "POST", path: "/rules",
				body: `{"rules":[{"name":"oom","command":["set"],"action":"error","message":"SERVER_ERROR oom"}]}`},
			&mcfault.Change{Rules: 3, Added: 1}},
		{"add rules on a proxy", `{"ok":true,"rules":2,"added":2}`,
			func(c *mcfault.Client) (any, error) {
				return c.Proxy("b/c").AddRules(ctx, mcfault.Rules{{Action: "drop"}, {Action: "hang", Disabled: true}})
			},
			seen{method: "POST", path: "/rules", query: "proxy=b%2Fc",
				body: `{"rules":[{"action":"drop"},{"action":"hang","enabled":false}]}`},
			&mcfault.Change{Rules: 2, Added: 2}},
		{"get rule", `{"name":"a/b é","command":["get"],"key":["*"],"action":"delay","delay_us":1500,"jitter_us":500,"probability":0.25,"after":1,"limit":2,"forward":true,"enabled":true,"matched":7,"fired":1,"proxy":"default"}`,
			func(c *mcfault.Client) (any, error) { return c.GetRule(ctx, "a/b é") },
			seen{method: "GET", path: "/rules/a%2Fb%20%C3%A9"},
			&mcfault.RuleInfo{Rule: mcfault.Rule{Name: "a/b é", Command: []string{"get"}, Key: []string{"*"}, Action: "delay",
				Delay: 1500 * time.Microsecond, Jitter: 500 * time.Microsecond, Probability: 0.25, After: 1, Limit: 2, Forward: true},
				Proxy: "default", Matched: 7, Fired: 1, InForce: true}},
		{"get a scheduled rule", `{"name":"blink","command":["*"],"key":["*"],"action":"drop","close":"reset","schedule":{"start_us":0,"duration_us":2000000,"every_us":30000000},"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":false,"next_change_ms":1500,"proxy":"default"}`,
			func(c *mcfault.Client) (any, error) { return c.GetRule(ctx, "blink") },
			seen{method: "GET", path: "/rules/blink"},
			&mcfault.RuleInfo{Rule: mcfault.Rule{Name: "blink", Command: []string{"*"}, Key: []string{"*"}, Action: "drop", Probability: 1,
				Close: mcfault.CloseReset, Schedule: &mcfault.Schedule{Duration: 2 * time.Second, Every: 30 * time.Second}},
				Proxy: "default", InForce: false, NextChange: durationPtr(1500 * time.Millisecond)}},
		{"disable proxy", `{"ok":true,"proxy":"a/b","enabled":false,"listen":"127.0.0.1:11212","closed":3}`,
			func(c *mcfault.Client) (any, error) { return c.Proxy("x").DisableProxy(ctx, "a/b") },
			seen{method: "POST", path: "/proxies/a%2Fb/disable"},
			&mcfault.ProxySwitch{Proxy: "a/b", Enabled: false, Listen: "127.0.0.1:11212", Closed: 3}},
		{"enable proxy", `{"ok":true,"proxy":"default","enabled":true,"listen":"127.0.0.1:11212"}`,
			func(c *mcfault.Client) (any, error) { return c.EnableProxy(ctx, "default") },
			seen{method: "POST", path: "/proxies/default/enable"},
			&mcfault.ProxySwitch{Proxy: "default", Enabled: true, Listen: "127.0.0.1:11212"}},
		{"remove rule", `{"ok":true,"removed":2,"rules":0}`,
			func(c *mcfault.Client) (any, error) { return c.Proxy("p").RemoveRule(ctx, "x?y") },
			seen{method: "DELETE", path: "/rules/x%3Fy", query: "proxy=p"},
			&mcfault.Change{Removed: 2}},
		{"clear rules", `{"ok":true,"rules":0}`,
			func(c *mcfault.Client) (any, error) { return c.ClearRules(ctx) },
			seen{method: "DELETE", path: "/rules"},
			&mcfault.Change{}},
		{"enable", `{"ok":true,"changed":1}`,
			func(c *mcfault.Client) (any, error) { return c.EnableRule(ctx, "oom") },
			seen{method: "POST", path: "/rules/oom/enable"},
			&mcfault.Change{Changed: 1}},
		{"disable ignores the proxy", `{"ok":true,"changed":2}`,
			func(c *mcfault.Client) (any, error) { return c.Proxy("p").DisableRule(ctx, "odd/name") },
			seen{method: "POST", path: "/rules/odd%2Fname/disable"},
			&mcfault.Change{Changed: 2}},
		{"reload", `{"ok":true,"rules":2}`,
			func(c *mcfault.Client) (any, error) { return c.Reload(ctx) },
			seen{method: "POST", path: "/reload"},
			&mcfault.Change{Rules: 2}},
		{"reset", `{"ok":true,"rules":1}`,
			func(c *mcfault.Client) (any, error) { return c.Reset(ctx) },
			seen{method: "POST", path: "/reset"},
			&mcfault.Change{Rules: 1}},
		{"stats", `{"version":"0.1.0","uptime_seconds":5,"rules":1,"faults_total":3,"commands":{"get":2},"faults":{"error":3},"proxies":[{"name":"default","connections_now":1,"connections_total":4,"rules":[{"name":"oom","enabled":true,"matched":4,"fired":3}]}]}`,
			func(c *mcfault.Client) (any, error) { return c.Stats(ctx) },
			seen{method: "GET", path: "/stats"},
			&mcfault.Stats{Version: "0.1.0", UptimeSeconds: 5, Rules: 1, FaultsTotal: 3, Commands: map[string]uint64{"get": 2},
				Faults: map[mcfault.Action]uint64{"error": 3}, Proxies: []mcfault.ProxyStats{{Name: "default", Enabled: true, ConnectionsNow: 1,
					ConnectionsTotal: 4, Rules: []mcfault.RuleStats{{Name: "oom", Enabled: true, Matched: 4, Fired: 3, InForce: true}}}}}},
		{"stats, a proxy switched off, a rule out of its schedule", `{"version":"0.1.0","proxies":[{"name":"a","enabled":false,"connections_now":0,"connections_total":4,"rules":[{"name":"s","enabled":true,"matched":0,"fired":0,"in_force":false}]}]}`,
			func(c *mcfault.Client) (any, error) { return c.Stats(ctx) },
			seen{method: "GET", path: "/stats"},
			&mcfault.Stats{Version: "0.1.0", Proxies: []mcfault.ProxyStats{{Name: "a", ConnectionsTotal: 4,
				Rules: []mcfault.RuleStats{{Name: "s", Enabled: true}}}}}},
		{"metrics", "# HELP x\nmcfault_rules 1\n",
			func(c *mcfault.Client) (any, error) { return c.Metrics(ctx) },
			seen{method: "GET", path: "/metrics"},
			"# HELP x\nmcfault_rules 1\n"},
		{"events", `{"last":43,"events":[{"seq":43,"event":{"time":1732183226.0012,"proxy":"default","conn":9,"rule":"oom","action":"error","forward":false,"command":"set","key":"k\u00ffz","keys":1}}]}`,
			func(c *mcfault.Client) (any, error) { return c.Events(ctx, 41) },
			seen{method: "GET", path: "/events", query: "since=41"},
			&mcfault.Events{Last: 43, Events: []mcfault.Event{{Seq: 43, Time: time.Unix(1732183226, 1200000), Proxy: "default",
				Conn: 9, Rule: "oom", Action: "error", Command: "set", Key: "kÿz", Keys: 1}}}},
		{"no events", `{"last":0,"events":[]}`,
			func(c *mcfault.Client) (any, error) { return c.Events(ctx, 0) },
			seen{method: "GET", path: "/events", query: "since=0"},
			&mcfault.Events{Events: []mcfault.Event{}}},
		{"upstream command", `{"ok":true,"reply":"STORED\r\n","reply_base64":"U1RPUkVEDQo=","elapsed_us":120}`,
			func(c *mcfault.Client) (any, error) { return c.UpstreamCommand(ctx, "set k 0 0 2\r\nhi\r\n") },
			seen{method: "POST", path: "/upstream/command", body: "set k 0 0 2\r\nhi\r\n"},
			&mcfault.UpstreamReply{Reply: "STORED\r\n", UTF8: true, Elapsed: 120 * time.Microsecond}},
		{"upstream command, binary reply", `{"ok":true,"reply":null,"reply_base64":"VkFMVUUgayAwIDEKDf8NCkVORA0K","elapsed_us":1}`,
			func(c *mcfault.Client) (any, error) { return c.Proxy("p").UpstreamCommand(ctx, "get k") },
			seen{method: "POST", path: "/upstream/command", query: "proxy=p", body: "get k"},
			&mcfault.UpstreamReply{Reply: "VALUE k 0 1\n\r\xff\r\nEND\r\n", Elapsed: time.Microsecond}},
		{"upstream stats", `{"ok":true,"stats":{"pid":"12","uptime":"5"}}`,
			func(c *mcfault.Client) (any, error) { return c.UpstreamStats(ctx, "") },
			seen{method: "GET", path: "/upstream/stats"},
			map[string]string{"pid": "12", "uptime": "5"}},
		{"upstream stats sub", `{"ok":true,"stats":{}}`,
			func(c *mcfault.Client) (any, error) { return c.Proxy("p").UpstreamStats(ctx, "settings") },
			seen{method: "GET", path: "/upstream/stats", query: "proxy=p&sub=settings"},
			map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, got := stub(t, 200, tc.reply)
			res, err := tc.call(c)
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			if got.method != tc.want.method || got.path != tc.want.path || got.query != tc.want.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", got.method, got.path, got.query,
					tc.want.method, tc.want.path, tc.want.query)
			}
			if got.body != tc.want.body {
				t.Errorf("body %q, want %q", got.body, tc.want.body)
			}
			if tc.want.ctype != "" && got.ctype != tc.want.ctype {
				t.Errorf("Content-Type %q, want %q", got.ctype, tc.want.ctype)
			}
			if !reflect.DeepEqual(res, tc.result) {
				t.Errorf("result\n got %#v\nwant %#v", res, tc.result)
			}
		})
	}
}

func durationPtr(d time.Duration) *time.Duration { return &d }

func TestProxySwitchNeedsAName(t *testing.T) {
	c := mcfault.New("http://127.0.0.1:1")
	if _, err := c.DisableProxy(context.Background(), ""); err == nil {
		t.Error("DisableProxy(\"\"): no error")
	}
	if _, err := c.EnableProxy(context.Background(), ""); err == nil {
		t.Error("EnableProxy(\"\"): no error")
	}
}

func TestUpstreamTimeoutIsSent(t *testing.T) {
	var query string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query = r.URL.RawQuery
		io.WriteString(w, `{"ok":true,"stats":{}}`)
	}))
	defer srv.Close()
	c := mcfault.New(srv.URL, mcfault.WithUpstreamTimeout(250*time.Millisecond))
	if _, err := c.UpstreamStats(context.Background(), "items"); err != nil {
		t.Fatal(err)
	}
	if query != "sub=items&timeout_ms=250" {
		t.Errorf("query %q", query)
	}
}

func TestRuleJSON(t *testing.T) {
	cases := []struct {
		rule mcfault.Rule
		json string
	}{
		{mcfault.Rule{Action: mcfault.ActionDrop}, `{"action":"drop"}`},
		{mcfault.Rule{Action: mcfault.ActionError, Message: "SERVER_ERROR x", Command: []string{"set", "ms"}, Key: []string{"s:*"}},
			`{"command":["set","ms"],"key":["s:*"],"action":"error","message":"SERVER_ERROR x"}`},
		{mcfault.Rule{Action: mcfault.ActionError}, `{"action":"error"}`},
		{mcfault.Rule{Name: "d", Action: mcfault.ActionDelay, Delay: 2 * time.Second, Jitter: 250 * time.Millisecond},
			`{"name":"d","action":"delay","delay":"2s","jitter":"250ms"}`},
		{mcfault.Rule{Action: mcfault.ActionDelay, Delay: 1500 * time.Microsecond}, `{"action":"delay","delay":"1500us"}`},
		{mcfault.Rule{Action: mcfault.ActionDelay}, `{"action":"delay"}`},
		{mcfault.Rule{Action: mcfault.ActionMiss, Probability: 0.25, After: 10, Limit: 3, Disabled: true},
			`{"action":"miss","probability":0.25,"after":10,"limit":3,"enabled":false}`},
		{mcfault.Rule{Action: mcfault.ActionError, Message: "SERVER_ERROR", Forward: true},
			`{"action":"error","message":"SERVER_ERROR","forward":true}`},
	}
	for _, tc := range cases {
		b, err := json.Marshal(tc.rule)
		if err != nil {
			t.Errorf("%+v: %v", tc.rule, err)
			continue
		}
		if string(b) != tc.json {
			t.Errorf("marshal %+v\n got %s\nwant %s", tc.rule, b, tc.json)
		}
		var back mcfault.Rule
		if err := json.Unmarshal(b, &back); err != nil {
			t.Errorf("unmarshal %s: %v", b, err)
		} else if !reflect.DeepEqual(back, tc.rule) {
			t.Errorf("round trip of %s: %+v", b, back)
		}
	}
	if _, err := json.Marshal(mcfault.Rule{Action: mcfault.ActionDelay, Delay: 1500 * time.Nanosecond}); err == nil {
		t.Error("a sub-microsecond delay was accepted")
	}
	// The rule file's own forms read back too.
	var r mcfault.Rule
	if err := json.Unmarshal([]byte(`{"command":"get","key":"a*","action":"delay","delay":"0.5ms","probability":"25%"}`), &r); err != nil {
		t.Fatal(err)
	}
	want := mcfault.Rule{Command: []string{"get"}, Key: []string{"a*"}, Action: "delay", Delay: 500 * time.Microsecond, Probability: 0.25}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("file form: %+v", r)
	}
}

func TestAPIErrors(t *testing.T) {
	cases := []struct {
		status   int
		reply    string
		is       error
		message  string
		problems []string
	}{
		{400, `{"error":"invalid rules","problems":["body:2:5: rule 'x': action delay needs 'delay'","body:4:5: unknown key 'delya'"]}`,
			mcfault.ErrInvalid, "invalid rules", []string{"body:2:5: rule 'x': action delay needs 'delay'", "body:4:5: unknown key 'delya'"}},
		{409, `{"error":"duplicate rule name","problems":["rule 'x' already exists"]}`,
			mcfault.ErrConflict, "duplicate rule name", []string{"rule 'x' already exists"}},
		{404, `{"error":"no rule named 'x'"}`, mcfault.ErrNotFound, "no rule named 'x'", nil},
		{502, `{"error":"upstream: Connection refused"}`, mcfault.ErrUpstream, "upstream: Connection refused", nil},
		{504, `{"error":"upstream: timeout"}`, mcfault.ErrUpstream, "upstream: timeout", nil},
		{413, "<HTML><HEAD><TITLE>413 Request Entity Too Large</TITLE></HEAD></HTML>", nil, "Request Entity Too Large", nil},
		{500, "oops", nil, "oops", nil},
	}
	for _, tc := range cases {
		c, _ := stub(t, tc.status, tc.reply)
		_, err := c.AddRules(context.Background(), mcfault.Rule{Name: "x", Action: "delay"})
		var apiErr *mcfault.APIError
		if !errors.As(err, &apiErr) {
			t.Errorf("%d: %T %v, want *APIError", tc.status, err, err)
			continue
		}
		if apiErr.Status != tc.status || apiErr.Message != tc.message || !reflect.DeepEqual(apiErr.Problems, tc.problems) ||
			apiErr.Method != "POST" || apiErr.Path != "/rules" {
			t.Errorf("%d: %#v", tc.status, apiErr)
		}
		for _, kind := range []error{mcfault.ErrInvalid, mcfault.ErrNotFound, mcfault.ErrConflict, mcfault.ErrUpstream,
			mcfault.ErrConnection, mcfault.ErrTimeout} {
			if errors.Is(err, kind) != (kind == tc.is) {
				t.Errorf("%d: errors.Is(%v) = %v", tc.status, kind, !(kind == tc.is))
			}
		}
		if len(tc.problems) > 0 && !strings.Contains(err.Error(), tc.problems[0]) {
			t.Errorf("%d: message %q lacks the problems", tc.status, err)
		}
	}
}

func TestHealthUnreachableIsNoError(t *testing.T) {
	c, _ := stub(t, 503, `{"proxies":[{"name":"default","listen":"l","upstream":"u","upstream_reachable":false,"error":"Connection refused"}],"ok":false}`)
	h, err := c.Health(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h.OK || h.Proxies[0].Error != "Connection refused" {
		t.Errorf("%+v", h)
	}
	c, _ = stub(t, 503, `{"error":"too many admin connections"}`)
	if _, err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "too many") {
		t.Errorf("cap: %v", err)
	}
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := mcfault.New(addr) // no scheme: http
	_, err = c.Stats(context.Background())
	var connErr *mcfault.ConnectionError
	if !errors.As(err, &connErr) || !errors.Is(err, mcfault.ErrConnection) || errors.Is(err, mcfault.ErrTimeout) {
		t.Fatalf("%T %v", err, err)
	}
	if connErr.Method != "GET" || connErr.URL != "http://"+addr+"/stats" {
		t.Errorf("%+v", connErr)
	}
}

// silent accepts connections and never answers.
func silent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + ln.Addr().String()
}

func TestTimeouts(t *testing.T) {
	url := silent(t)
	start := time.Now()
	_, err := mcfault.New(url, mcfault.WithTimeout(150*time.Millisecond)).Health(context.Background())
	var te *mcfault.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, mcfault.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, mcfault.ErrConnection) || te.Limit != 150*time.Millisecond {
		t.Fatalf("client timeout: %T %v", err, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("not a net.Error timeout: %v", err)
	}

	// The context's deadline, sooner than the client's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := mcfault.New(url).Rules(ctx); !errors.Is(err, mcfault.ErrTimeout) {
		t.Errorf("context deadline: %T %v", err, err)
	}

	// A canceled context is no timeout.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := mcfault.New(url).Rules(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, mcfault.ErrTimeout) {
		t.Errorf("canceled: %T %v", err, err)
	}
}

// fakeRules is a stand-in for the rule endpoints Fault uses.
type fakeRules struct {
	mu      sync.Mutex
	rules   []string // names in order
	proxies []string // ?proxy= of each request
	failAdd bool
}

func (f *fakeRules) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proxies = append(f.proxies, r.URL.Query().Get("proxy"))
	switch {
	case r.Method == "POST" && r.URL.Path == "/rules":
		var doc struct {
			Rules []struct {
				Name string `json:"name"`
			} `json:"rules"`
		}
		if err := json.NewDecoder(r.Body).Decode(&doc); err != nil || f.failAdd {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid rules","problems":["body:1:1: no"]}`)
			return
		}
		for _, rule := range doc.Rules {
			f.rules = append(f.rules, rule.Name)
		}
		fmt.Fprintf(w, `{"ok":true,"rules":%d,"added":%d}`, len(f.rules), len(doc.Rules))
	case r.Method == "DELETE" && strings.HasPrefix(r.URL.Path, "/rules/"):
		name := strings.TrimPrefix(r.URL.Path, "/rules/")
		for i, n := range f.rules {
			if n == name {
				f.rules = append(f.rules[:i], f.rules[i+1:]...)
				fmt.Fprintf(w, `{"ok":true,"removed":1,"rules":%d}`, len(f.rules))
				return
			}
		}
		w.WriteHeader(404)
		fmt.Fprintf(w, `{"error":"no rule named '%s'"}`, name)
	default:
		w.WriteHeader(405)
		io.WriteString(w, `{"error":"method not allowed"}`)
	}
}

func (f *fakeRules) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.rules...)
}

func TestFaultAddsAndRemovesExactlyItsRules(t *testing.T) {
	f := &fakeRules{rules: []string{"before"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := mcfault.New(srv.URL).Proxy("p")
	rules := []mcfault.Rule{{Action: "drop"}, {Name: "mine", Action: "hang"}, {Action: "miss"}}
	undo, err := c.Fault(context.Background(), rules...)
	if err != nil {
		t.Fatal(err)
	}
	got := f.names()
	if len(got) != 4 || got[0] != "before" || got[2] != "mine" || !strings.HasPrefix(got[1], "fault-") ||
		!strings.HasSuffix(got[1], "-1") || !strings.HasSuffix(got[3], "-3") {
		t.Fatalf("rules after Fault: %q", got)
	}
	if rules[0].Name != "" {
		t.Error("Fault changed the caller's rules")
	}
	// One of them is gone already (a Reset, say): not an error.
	if _, err := c.RemoveRule(context.Background(), got[3]); err != nil {
		t.Fatal(err)
	}
	if err := undo(); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if got := f.names(); !reflect.DeepEqual(got, []string{"before"}) {
		t.Errorf("rules after undo: %q", got)
	}
	if err := undo(); err != nil {
		t.Errorf("second undo: %v", err)
	}
	for _, p := range f.proxies {
		if p != "p" {
			t.Errorf("a request without ?proxy=p: %q", f.proxies)
			break
		}
	}
}

func TestFaultRefused(t *testing.T) {
	f := &fakeRules{failAdd: true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	undo, err := mcfault.New(srv.URL).Fault(context.Background(), mcfault.Rule{Action: "drop"})
	if !errors.Is(err, mcfault.ErrInvalid) || undo == nil {
		t.Fatalf("%v", err)
	}
	if err := undo(); err != nil {
		t.Error(err)
	}
	if _, err := mcfault.New(srv.URL).Fault(context.Background()); err == nil {
		t.Error("Fault with no rules succeeded")
	}
}

// fakeTB records what WithFault asks of a test.
type fakeTB struct {
	cleanups []func()
	errors   []string
	fatal    bool
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.Errorf(format, args...); f.fatal = true }

func TestWithFault(t *testing.T) {
	var _ mcfault.TB = t // *testing.T is a TB
	f := &fakeRules{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := mcfault.New(srv.URL)

	tb := &fakeTB{}
	mcfault.WithFault(tb, c, mcfault.Rule{Name: "a", Action: "drop"})
	if len(f.names()) != 1 || len(tb.cleanups) != 1 || tb.fatal {
		t.Fatalf("after WithFault: %q %+v", f.names(), tb)
	}
	tb.cleanups[0]()
	if len(f.names()) != 0 || len(tb.errors) != 0 {
		t.Errorf("after cleanup: %q %q", f.names(), tb.errors)
	}

	f.failAdd = true
	tb = &fakeTB{}
	mcfault.WithFault(tb, c, mcfault.Rule{Action: "drop"})
	if !tb.fatal || len(tb.cleanups) != 0 || !strings.Contains(tb.errors[0], "body:1:1: no") {
		t.Errorf("refused: %+v", tb)
	}
}

func TestWaitHealthy(t *testing.T) {
	var calls int
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n < 3 {
			w.WriteHeader(503)
			io.WriteString(w, `{"proxies":[{"name":"default","upstream_reachable":false}],"ok":false}`)
			return
		}
		io.WriteString(w, `{"proxies":[{"name":"default","upstream_reachable":true}],"ok":true}`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := mcfault.New(srv.URL).WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := mcfault.New(silent(t)).WaitHealthy(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent server: %v", err)
	}
}

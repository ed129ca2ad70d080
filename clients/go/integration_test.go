//go:build integration

// Integration tests: every call against a real mcfault in front of a real
// memcached, with gomemcache as the application under test proving that
// each fault took effect and was undone. Run by test.sh (-tags integration).

package mcfault_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	mcfault "github.com/mcfault/mcfault/clients/go"
	"github.com/mcfault/mcfault/clients/go/mcfaulttest"
)

const oomMessage = "SERVER_ERROR out of memory storing object"

var ctx = context.Background()

// mustSet stores key through mc and fails the test if it cannot.
func mustSet(t *testing.T, mc *memcache.Client, key, value string) {
	t.Helper()
	if err := mc.Set(&memcache.Item{Key: key, Value: []byte(value)}); err != nil {
		t.Fatalf("set %s: %v", key, err)
	}
}

// getValue reads key through mc: its value, or the error. (gomemcache's
// Get sends "gets": rules aimed at it name that command.)
func getValue(mc *memcache.Client, key string) (string, error) {
	it, err := mc.Get(key)
	if err != nil {
		return "", err
	}
	return string(it.Value), nil
}

// ruleNames lists the names of the rules in force.
func ruleNames(t *testing.T, c *mcfault.Client) []string {
	t.Helper()
	rules, err := c.Rules(ctx)
	if err != nil {
		t.Fatalf("rules: %v", err)
	}
	names := []string{}
	for _, r := range rules {
		names = append(names, r.Name)
	}
	return names
}

// The headline: a miss fault for one test case, proven and undone.
func TestFaultTakesEffectAndIsUndone(t *testing.T) {
	c, mc := fresh(t)
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "kept", Key: []string{"never:*"}, Action: mcfault.ActionDrop}}); err != nil {
		t.Fatal(err)
	}
	mustSet(t, mc, "session:1", "alice")
	mustSet(t, mc, "other", "bob")

	undo, err := c.Fault(ctx, mcfault.Rule{Key: []string{"session:*"}, Action: mcfault.ActionMiss})
	need(t, "POST /rules", err)
	if _, err := getValue(mc, "session:1"); err != memcache.ErrCacheMiss {
		t.Errorf("with the fault: get session:1 = %v, want a miss", err)
	}
	if v, err := getValue(mc, "other"); err != nil || v != "bob" {
		t.Errorf("with the fault: get other = %q, %v", v, err)
	}
	names := ruleNames(t, c)
	if len(names) != 2 || names[0] != "kept" || !strings.HasPrefix(names[1], "fault-") {
		t.Errorf("rules with the fault: %q", names)
	}

	if err := undo(); err != nil {
		t.Fatalf("undo: %v", err)
	}
	if v, err := getValue(mc, "session:1"); err != nil || v != "alice" {
		t.Errorf("after undo: get session:1 = %q, %v", v, err)
	}
	if names := ruleNames(t, c); len(names) != 1 || names[0] != "kept" {
		t.Errorf("rules after undo: %q, want [kept]", names)
	}
}

func TestWithFaultLastsForTheTest(t *testing.T) {
	c, mc := fresh(t)
	if _, err := c.GetRule(ctx, "no-such-rule"); missing(err) {
		t.Skipf("this mcfault has no GET /rules/NAME yet: %v", err)
	}
	t.Run("inside", func(t *testing.T) {
		mcfault.WithFault(t, c, mcfault.Rule{Name: "oom", Command: []string{"set"}, Action: mcfault.ActionError, Message: oomMessage})
		err := mc.Set(&memcache.Item{Key: "k", Value: []byte("v")})
		if err == nil || !strings.Contains(err.Error(), oomMessage) {
			t.Errorf("set with the fault: %v, want %q", err, oomMessage)
		}
	})
	if _, err := c.GetRule(ctx, "oom"); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("after the subtest: GetRule(oom) = %v, want ErrNotFound", err)
	}
	mustSet(t, mc, "k", "v")
}

func TestFaultIsUndoneWhenTheBlockFails(t *testing.T) {
	c, mc := fresh(t)
	mustSet(t, mc, "p", "1")
	func() {
		defer func() { recover() }()
		undo, err := c.Fault(ctx, mcfault.Rule{Name: "boom", Key: []string{"p"}, Action: mcfault.ActionMiss})
		need(t, "POST /rules", err)
		defer undo()
		if _, err := getValue(mc, "p"); err != memcache.ErrCacheMiss {
			t.Errorf("with the fault: %v", err)
		}
		panic("the test body fails")
	}()
	if names := ruleNames(t, c); len(names) != 0 {
		t.Errorf("rules after the panic: %q", names)
	}
	if v, err := getValue(mc, "p"); err != nil || v != "1" {
		t.Errorf("after the panic: %q, %v", v, err)
	}
}

// Each action as the application sees it, set with PUT /rules.
func TestActionsThroughTheProxy(t *testing.T) {
	c, mc := fresh(t)
	mustSet(t, mc, "slow", "s")
	mustSet(t, mc, "gone", "g")
	_, err := c.SetRules(ctx, mcfault.Rules{
		{Name: "slow", Key: []string{"slow"}, Action: mcfault.ActionDelay, Delay: 300 * time.Millisecond},
		{Name: "drop", Command: []string{"get", "gets"}, Key: []string{"gone"}, Action: mcfault.ActionDrop},
		{Name: "oom", Command: []string{"set"}, Key: []string{"session:*"}, Action: mcfault.ActionError, Message: oomMessage},
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if v, err := getValue(mc, "slow"); err != nil || v != "s" {
		t.Errorf("delayed get: %q, %v", v, err)
	}
	if d := time.Since(start); d < 280*time.Millisecond {
		t.Errorf("delayed get took %v, want 300ms", d)
	}
	if _, err := getValue(mc, "gone"); err == nil || err == memcache.ErrCacheMiss {
		t.Errorf("dropped get: %v, want a connection error", err)
	}
	if err := mc.Set(&memcache.Item{Key: "session:9", Value: []byte("x")}); err == nil || !strings.Contains(err.Error(), oomMessage) {
		t.Errorf("set with error rule: %v", err)
	}
	mustSet(t, mc, "cart:9", "x")

	if _, err := c.ClearRules(ctx); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := getValue(mc, "slow"); err != nil || time.Since(start) > 200*time.Millisecond {
		t.Errorf("after ClearRules: %v in %v", err, time.Since(start))
	}
	if v, err := getValue(mc, "gone"); err != nil || v != "g" {
		t.Errorf("after ClearRules: get gone = %q, %v", v, err)
	}
	mustSet(t, mc, "session:9", "x")
}

func TestSetRulesAndReadThemBack(t *testing.T) {
	c, _ := fresh(t)
	ch, err := c.SetRules(ctx, mcfault.Rules{
		{Name: "d", Command: []string{"get", "mg"}, Key: []string{"a*"}, Action: mcfault.ActionDelay,
			Delay: 1500 * time.Microsecond, Jitter: 500 * time.Microsecond, Probability: 0.25, After: 2, Limit: 9},
		{Name: "e", Action: mcfault.ActionError, Message: "SERVER_ERROR x", Forward: true, Disabled: true},
	})
	if err != nil || ch.Rules != 2 {
		t.Fatalf("SetRules: %+v, %v", ch, err)
	}
	rules, err := c.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []mcfault.RuleInfo{
		{Proxy: "default", Rule: mcfault.Rule{Name: "d", Command: []string{"get", "mg"}, Key: []string{"a*"}, Action: mcfault.ActionDelay,
			Delay: 1500 * time.Microsecond, Jitter: 500 * time.Microsecond, Probability: 0.25, After: 2, Limit: 9}, InForce: true},
		{Proxy: "default", Rule: mcfault.Rule{Name: "e", Command: []string{"*"}, Key: []string{"*"}, Action: mcfault.ActionError,
			Message: "SERVER_ERROR x", Probability: 1, Forward: true, Disabled: true}},
	}
	if fmt.Sprintf("%+v", rules) != fmt.Sprintf("%+v", want) {
		t.Errorf("Rules:\n got %+v\nwant %+v", rules, want)
	}

	// Raw YAML, and a JSON document of a map.
	if ch, err := c.SetRules(ctx, mcfault.YAML("rules:\n  - name: y\n    action: hang\n    key: \"h:*\"\n")); err != nil || ch.Rules != 1 {
		t.Fatalf("YAML: %+v, %v", ch, err)
	}
	if names := ruleNames(t, c); len(names) != 1 || names[0] != "y" {
		t.Errorf("after YAML: %q", names)
	}
	doc := map[string]any{"rules": []map[string]any{{"name": "j", "action": "miss", "probability": "50%"}}}
	if _, err := c.SetRules(ctx, mcfault.JSON(doc)); err != nil {
		t.Fatalf("JSON: %v", err)
	}
	if rules, err := c.Rules(ctx); err != nil || len(rules) != 1 || rules[0].Probability != 0.5 {
		t.Errorf("after JSON: %+v, %v", rules, err)
	}
	if ch, err := c.ClearRules(ctx); err != nil || ch.Rules != 0 {
		t.Errorf("ClearRules: %+v, %v", ch, err)
	}
	if names := ruleNames(t, c); len(names) != 0 {
		t.Errorf("after ClearRules: %q", names)
	}
}

var problemRE = regexp.MustCompile(`^body:\d+:\d+: `)

func TestRefusedRuleChange(t *testing.T) {
	c, _ := fresh(t)
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "keep", Action: mcfault.ActionHang, Key: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.SetRules(ctx, mcfault.YAML("rules:\n  - name: x\n    action: delay\n    delya: 10ms\n"))
	var apiErr *mcfault.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, mcfault.ErrInvalid) {
		t.Fatalf("bad document: %T %v", err, err)
	}
	if apiErr.Status != 400 || apiErr.Message != "invalid rules" || len(apiErr.Problems) != 2 {
		t.Errorf("bad document: %#v", apiErr)
	}
	for _, p := range apiErr.Problems {
		if !problemRE.MatchString(p) {
			t.Errorf("problem %q is not body:LINE:COL: ...", p)
		}
	}
	if !strings.Contains(apiErr.Problems[1], "delya") {
		t.Errorf("problems: %q", apiErr.Problems)
	}
	// A typed rule the server refuses: an error rule without a message.
	if _, err := c.SetRules(ctx, mcfault.Rule{Action: mcfault.ActionError}); !errors.Is(err, mcfault.ErrInvalid) {
		t.Errorf("error rule without message: %v", err)
	}
	if names := ruleNames(t, c); len(names) != 1 || names[0] != "keep" {
		t.Errorf("rules after the refusals: %q, want [keep]", names)
	}
	if _, err := c.Proxy("nope").Rules(ctx); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("?proxy=nope: %v", err)
	}
	if _, err := c.EnableRule(ctx, "nope"); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("enable nope: %v", err)
	}
}

func TestEnableDisableWithAnOddName(t *testing.T) {
	c, mc := fresh(t)
	const name = "odd/name é?"
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: name, Command: []string{"set"}, Action: mcfault.ActionError,
		Message: oomMessage, Disabled: true}}); err != nil {
		t.Fatal(err)
	}
	mustSet(t, mc, "k", "1")
	if ch, err := c.EnableRule(ctx, name); err != nil || ch.Changed != 1 {
		t.Fatalf("enable: %+v, %v", ch, err)
	}
	if err := mc.Set(&memcache.Item{Key: "k", Value: []byte("2")}); err == nil || !strings.Contains(err.Error(), oomMessage) {
		t.Errorf("set with the rule enabled: %v", err)
	}
	if ch, err := c.DisableRule(ctx, name); err != nil || ch.Changed != 1 {
		t.Fatalf("disable: %+v, %v", ch, err)
	}
	mustSet(t, mc, "k", "3")
	st, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := st.Proxies[0].Rules[0]
	if r.Name != name || r.Enabled || r.Fired != 1 {
		t.Errorf("stats of the rule: %+v", r)
	}
	if _, err := c.DisableRule(ctx, "odd/other"); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("disable unknown: %v", err)
	}
}

func TestAddGetRemoveRule(t *testing.T) {
	c, mc := fresh(t)
	const name = "add/é 1"
	ch, err := c.AddRules(ctx, mcfault.Rule{Name: name, Command: []string{"gets"}, Key: []string{"g:*"}, Action: mcfault.ActionMiss})
	need(t, "POST /rules", err)
	if ch.Added != 1 || ch.Rules != 1 {
		t.Errorf("AddRules: %+v", ch)
	}
	ch, err = c.AddRules(ctx, mcfault.Rules{{Name: "two", Action: mcfault.ActionHang, Key: []string{"h2"}},
		{Name: "three", Action: mcfault.ActionHang, Key: []string{"h3"}}})
	if err != nil || ch.Added != 2 || ch.Rules != 3 {
		t.Fatalf("AddRules of two: %+v, %v", ch, err)
	}
	ch, err = c.AddRules(ctx, mcfault.YAML("- name: four\n  action: drop\n  key: d4\n"))
	if err != nil || ch.Added != 1 || ch.Rules != 4 {
		t.Fatalf("AddRules of a YAML list: %+v, %v", ch, err)
	}
	ch, err = c.AddRules(ctx, mcfault.JSON(map[string]any{"name": "five", "action": "drop", "key": "d5"}))
	if err != nil || ch.Added != 1 || ch.Rules != 5 {
		t.Fatalf("AddRules of a JSON mapping: %+v, %v", ch, err)
	}
	if names := ruleNames(t, c); strings.Join(names, ",") != name+",two,three,four,five" {
		t.Errorf("order: %q", names)
	}

	mustSet(t, mc, "g:1", "x")
	getValue(mc, "g:1")
	info, err := c.GetRule(ctx, name)
	need(t, "GET /rules/NAME", err)
	if info.Name != name || info.Proxy != "default" || info.Action != mcfault.ActionMiss || info.Matched != 1 || info.Fired != 1 ||
		strings.Join(info.Key, ",") != "g:*" {
		t.Errorf("GetRule: %+v", info)
	}

	// A taken name, or the same name twice: 409 and nothing changes.
	_, err = c.AddRules(ctx, mcfault.Rule{Name: "two", Action: mcfault.ActionDrop})
	var apiErr *mcfault.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, mcfault.ErrConflict) || apiErr.Status != 409 ||
		len(apiErr.Problems) != 1 || !strings.Contains(apiErr.Problems[0], "'two'") {
		t.Errorf("taken name: %T %v", err, err)
	}
	_, err = c.AddRules(ctx, mcfault.Rules{{Name: "dup", Action: mcfault.ActionDrop}, {Name: "dup", Action: mcfault.ActionDrop}})
	if !errors.Is(err, mcfault.ErrConflict) {
		t.Errorf("a name twice: %v", err)
	}
	// A bad rule: 400 with problems.
	_, err = c.AddRules(ctx, mcfault.Rule{Name: "bad", Action: mcfault.ActionDelay, Command: []string{"sett"}})
	if !errors.As(err, &apiErr) || !errors.Is(err, mcfault.ErrInvalid) || len(apiErr.Problems) == 0 {
		t.Fatalf("bad rule: %T %v", err, err)
	}
	for _, p := range apiErr.Problems {
		if !problemRE.MatchString(p) {
			t.Errorf("problem %q is not body:LINE:COL: ...", p)
		}
	}
	if _, err := c.Proxy("nope").AddRules(ctx, mcfault.Rule{Action: mcfault.ActionDrop}); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("?proxy=nope: %v", err)
	}
	if names := ruleNames(t, c); len(names) != 5 {
		t.Errorf("refused adds changed the rules: %q", names)
	}

	ch, err = c.RemoveRule(ctx, name)
	if err != nil || ch.Removed != 1 || ch.Rules != 4 {
		t.Fatalf("RemoveRule: %+v, %v", ch, err)
	}
	if v, err := getValue(mc, "g:1"); err != nil || v != "x" {
		t.Errorf("after RemoveRule: %q, %v", v, err)
	}
	if _, err := c.GetRule(ctx, name); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("GetRule after removal: %v", err)
	}
	if _, err := c.RemoveRule(ctx, name); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("RemoveRule again: %v", err)
	}
}

func TestStatsMetricsEvents(t *testing.T) {
	c, mc := fresh(t)
	before, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evBefore, err := c.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "oom", Command: []string{"set"}, Key: []string{"ev:*"},
		Action: mcfault.ActionError, Message: oomMessage}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		mc.Set(&memcache.Item{Key: fmt.Sprintf("ev:%d", i), Value: []byte("x")})
	}
	after, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Version == "" || after.Rules != 1 || after.Commands["set"] < before.Commands["set"]+3 ||
		after.FaultsTotal < before.FaultsTotal+3 || after.Faults[mcfault.ActionError] < before.Faults[mcfault.ActionError]+3 ||
		after.ConnectionsTotal == 0 || after.ClientBytesIn <= before.ClientBytesIn {
		t.Errorf("stats:\nbefore %+v\n after %+v", before, after)
	}
	if len(after.Proxies) != 1 || after.Proxies[0].Rules[0].Fired != 3 {
		t.Errorf("per-rule stats: %+v", after.Proxies)
	}

	ev, err := c.Events(ctx, evBefore.Last)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 3 || ev.Last != evBefore.Last+3 {
		t.Fatalf("events since %d: %+v", evBefore.Last, ev)
	}
	e := ev.Events[0]
	if e.Seq != evBefore.Last+1 || e.Rule != "oom" || e.Action != mcfault.ActionError || e.Command != "set" ||
		e.Key != "ev:0" || e.Keys != 1 || e.Proxy != "default" || time.Since(e.Time) > time.Minute {
		t.Errorf("event: %+v", e)
	}
	if ev, err := c.Events(ctx, ev.Last); err != nil || len(ev.Events) != 0 {
		t.Errorf("events since the last: %+v, %v", ev, err)
	}

	m, err := c.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"mcfault_build_info{", `mcfault_rule_fired_total{proxy="default",rule="oom"} 3`, "# TYPE mcfault_rules gauge"} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
}

func TestHealth(t *testing.T) {
	c, _ := fresh(t)
	h, err := c.Health(ctx)
	if err != nil || !h.OK || len(h.Proxies) != 1 || h.Proxies[0].Listen != suite.mf.ProxyAddr ||
		h.Proxies[0].Upstream != suite.mc.addr || !h.Proxies[0].UpstreamReachable {
		t.Errorf("health: %+v, %v", h, err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Error(err)
	}
}

func TestReloadAndReset(t *testing.T) {
	const fileRules = "rules:\n  - name: from-file\n    command: set\n    key: \"file:*\"\n    action: error\n    message: SERVER_ERROR from file\n"
	path := writeFile(t, "rules.yaml", fileRules)
	p, c := newMcfault(t, suite.mc.addr, path)
	mc := memcacheClient(p.ProxyAddr)

	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "put", Action: mcfault.ActionHang, Key: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	if ch, err := c.Reload(ctx); err != nil || ch.Rules != 1 {
		t.Fatalf("reload: %+v, %v", ch, err)
	}
	if names := ruleNames(t, c); len(names) != 1 || names[0] != "from-file" {
		t.Errorf("after reload: %q", names)
	}
	if err := mc.Set(&memcache.Item{Key: "file:1", Value: []byte("x")}); err == nil || !strings.Contains(err.Error(), "from file") {
		t.Errorf("file rule: %v", err)
	}

	// A broken file: 400 with FILE:LINE:COL problems, the rules kept.
	if err := writeText(path, "rules:\n  - name: broken\n    action: explode\n"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Reload(ctx)
	var apiErr *mcfault.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, mcfault.ErrInvalid) || len(apiErr.Problems) == 0 ||
		!strings.HasPrefix(apiErr.Problems[0], path+":3:") {
		t.Errorf("broken file: %T %v", err, err)
	}
	if names := ruleNames(t, c); len(names) != 1 || names[0] != "from-file" {
		t.Errorf("after the refused reload: %q", names)
	}

	// Reset: a broken file resets nothing.
	_, err = c.Reset(ctx)
	skipIfMissing(t, "POST /reset", err)
	if !errors.Is(err, mcfault.ErrInvalid) {
		t.Errorf("reset with a broken file: %v", err)
	}
	if st, err := c.Stats(ctx); err != nil || st.FaultsTotal == 0 {
		t.Errorf("the refused reset zeroed counters: %+v, %v", st, err)
	}

	// Reset with a good file: the file's rules, counters zeroed, events from 1.
	if err := writeText(path, fileRules); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "put", Action: mcfault.ActionHang, Key: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	if ch, err := c.Reset(ctx); err != nil || ch.Rules != 1 {
		t.Fatalf("reset: %+v, %v", ch, err)
	}
	rules, err := c.Rules(ctx)
	if err != nil || len(rules) != 1 || rules[0].Name != "from-file" || rules[0].Fired != 0 || rules[0].Matched != 0 {
		t.Errorf("rules after reset: %+v, %v", rules, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.FaultsTotal != 0 || st.Commands["set"] != 0 || st.ReloadsOK != 0 || st.ReloadsFailed != 0 {
		t.Errorf("stats after reset: %+v, %v", st, err)
	}
	if ev, err := c.Events(ctx, 0); err != nil || ev.Last != 0 || len(ev.Events) != 0 {
		t.Errorf("events after reset: %+v, %v", ev, err)
	}
	mc.Set(&memcache.Item{Key: "file:2", Value: []byte("x")})
	if ev, err := c.Events(ctx, 0); err != nil || len(ev.Events) != 1 || ev.Events[0].Seq != 1 {
		t.Errorf("first event after reset: %+v, %v", ev, err)
	}
}

func TestReloadWithoutRuleFileIsAConflict(t *testing.T) {
	c, _ := fresh(t)
	_, err := c.Reload(ctx)
	var apiErr *mcfault.APIError
	if !errors.As(err, &apiErr) || !errors.Is(err, mcfault.ErrConflict) || apiErr.Status != 409 {
		t.Errorf("reload without -c: %T %v", err, err)
	}
}

func TestUpstreamCommand(t *testing.T) {
	c, mc := fresh(t)
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "no-sets", Command: []string{"set"}, Action: mcfault.ActionError,
		Message: oomMessage}}); err != nil {
		t.Fatal(err)
	}
	// Past the rules, straight to memcached.
	r, err := c.UpstreamCommand(ctx, "set up:1 0 0 2\r\nhi\r\n")
	need(t, "POST /upstream/command", err)
	if r.Reply != "STORED\r\n" || !r.UTF8 || r.Elapsed <= 0 {
		t.Errorf("set: %+v", r)
	}
	if v, err := getValue(mc, "up:1"); err != nil || v != "hi" {
		t.Errorf("get through the proxy: %q, %v", v, err)
	}
	if r, err := c.UpstreamCommand(ctx, "get up:1"); err != nil || r.Reply != "VALUE up:1 0 2\r\nhi\r\nEND\r\n" {
		t.Errorf("get without \\r\\n: %+v, %v", r, err)
	}
	if r, err := c.UpstreamCommand(ctx, "set up:bin 0 0 2\r\n\xff\x00\r\n"); err != nil || r.Reply != "STORED\r\n" {
		t.Fatalf("binary set: %+v, %v", r, err)
	}
	if r, err := c.UpstreamCommand(ctx, "get up:bin\r\n"); err != nil || r.UTF8 || r.Reply != "VALUE up:bin 0 2\r\n\xff\x00\r\nEND\r\n" {
		t.Errorf("binary get: %+v, %v", r, err)
	}
	if r, err := c.UpstreamCommand(ctx, "set up:q 0 0 1 noreply\r\nq\r\n"); err != nil || r.Reply != "" {
		t.Errorf("noreply: %+v, %v", r, err)
	}
	if r, err := c.UpstreamCommand(ctx, "get up:q"); err != nil || !strings.Contains(r.Reply, "\r\nq\r\n") {
		t.Errorf("after noreply: %+v, %v", r, err)
	}
	for _, bad := range []string{"", "get a\r\nget b\r\n", "set k 0 0 5\r\nhi\r\n"} {
		if _, err := c.UpstreamCommand(ctx, bad); !errors.Is(err, mcfault.ErrInvalid) {
			t.Errorf("bad body %q: %v", bad, err)
		}
	}
	if _, err := c.Proxy("nope").UpstreamCommand(ctx, "version"); !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("?proxy=nope: %v", err)
	}
}

func TestUpstreamStats(t *testing.T) {
	c, _ := fresh(t)
	st, err := c.UpstreamStats(ctx, "")
	need(t, "GET /upstream/stats", err)
	if st["pid"] != fmt.Sprint(suite.mc.cmd.Process.Pid) || st["uptime"] == "" {
		t.Errorf("stats: pid %q (memcached's is %d), uptime %q", st["pid"], suite.mc.cmd.Process.Pid, st["uptime"])
	}
	settings, err := c.UpstreamStats(ctx, "settings")
	if err != nil || settings["maxbytes"] != fmt.Sprint(64<<20) {
		t.Errorf("settings: maxbytes %q, %v", settings["maxbytes"], err)
	}
	for _, sub := range []string{"items", "slabs", "conns", "sizes"} {
		if _, err := c.UpstreamStats(ctx, sub); err != nil {
			t.Errorf("stats %s: %v", sub, err)
		}
	}
	var apiErr *mcfault.APIError
	if _, err := c.UpstreamStats(ctx, "detail"); !errors.As(err, &apiErr) || apiErr.Status != 400 || !errors.Is(err, mcfault.ErrInvalid) {
		t.Errorf("stats detail: %v", err)
	}
}

func TestUpstreamDownOrSilent(t *testing.T) {
	dead, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, c := newMcfault(t, fmt.Sprintf("127.0.0.1:%d", dead), "")
	h, err := c.Health(ctx)
	if err != nil || h.OK || h.Proxies[0].UpstreamReachable || h.Proxies[0].Error == "" {
		t.Errorf("health with memcached down: %+v, %v", h, err)
	}
	_, err = c.UpstreamCommand(ctx, "version")
	skipIfMissing(t, "POST /upstream/command", err)
	var apiErr *mcfault.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 502 || !errors.Is(err, mcfault.ErrUpstream) {
		t.Errorf("command with memcached down: %T %v", err, err)
	}
	if _, err := c.UpstreamStats(ctx, ""); !errors.Is(err, mcfault.ErrUpstream) {
		t.Errorf("stats with memcached down: %v", err)
	}

	p, _ := newMcfault(t, silentListener(t), "")
	quick := mcfault.New(p.AdminURL, mcfault.WithUpstreamTimeout(200*time.Millisecond), mcfault.WithTimeout(5*time.Second))
	start := time.Now()
	_, err = quick.UpstreamCommand(ctx, "version")
	if !errors.As(err, &apiErr) || apiErr.Status != 504 || !errors.Is(err, mcfault.ErrUpstream) {
		t.Errorf("command to a silent memcached: %T %v", err, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout_ms=200 took %v", d)
	}
}

func TestDeadAdminPortAndTimeout(t *testing.T) {
	dead, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	c := mcfault.New(fmt.Sprintf("http://127.0.0.1:%d", dead))
	_, err = c.Health(ctx)
	var connErr *mcfault.ConnectionError
	if !errors.As(err, &connErr) || !errors.Is(err, mcfault.ErrConnection) {
		t.Errorf("dead admin port: %T %v", err, err)
	}
	if _, err := c.Fault(ctx, mcfault.Rule{Action: mcfault.ActionDrop}); !errors.Is(err, mcfault.ErrConnection) {
		t.Errorf("Fault on a dead admin port: %v", err)
	}

	c = mcfault.New(silentListener(t), mcfault.WithTimeout(300*time.Millisecond))
	start := time.Now()
	_, err = c.Rules(ctx)
	var te *mcfault.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, mcfault.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent admin: %T %v", err, err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("timeout of 300ms took %v", d)
	}
}

func TestProxyScope(t *testing.T) {
	portA, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	portB, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	addrA, addrB := fmt.Sprintf("127.0.0.1:%d", portA), fmt.Sprintf("127.0.0.1:%d", portB)
	path := writeFile(t, "proxies.yaml", fmt.Sprintf("proxies:\n  - name: a\n    listen: %s\n    upstream: %s\n"+
		"  - name: b\n    listen: %s\n    upstream: %s\n", addrA, suite.mc.addr, addrB, suite.mc.addr))
	_, c := newMcfault(t, "", path)
	a, b := c.Proxy("a"), c.Proxy("b")
	mcA, mcB := memcacheClient(addrA), memcacheClient(addrB)
	mustSet(t, mcA, "scope:1", "v")

	// PUT, GET and DELETE /rules?proxy= (the existing endpoints).
	if _, err := b.SetRules(ctx, mcfault.Rules{{Name: "miss", Key: []string{"scope:*"}, Action: mcfault.ActionMiss}}); err != nil {
		t.Fatal(err)
	}
	if _, err := getValue(mcB, "scope:1"); err != memcache.ErrCacheMiss {
		t.Errorf("via b: %v, want a miss", err)
	}
	if v, err := getValue(mcA, "scope:1"); err != nil || v != "v" {
		t.Errorf("via a: %q, %v", v, err)
	}
	if rules, err := b.Rules(ctx); err != nil || len(rules) != 1 || rules[0].Proxy != "b" {
		t.Errorf("b's rules: %+v, %v", rules, err)
	}
	if rules, err := a.Rules(ctx); err != nil || len(rules) != 0 {
		t.Errorf("a's rules: %+v, %v", rules, err)
	}
	if _, err := a.ClearRules(ctx); err != nil {
		t.Fatal(err)
	}
	if names := ruleNames(t, c); len(names) != 1 {
		t.Errorf("clearing a touched b: %q", names)
	}
	if _, err := b.ClearRules(ctx); err != nil {
		t.Fatal(err)
	}

	// POST, GET, DELETE /rules/NAME?proxy=, Fault and the upstream on a proxy.
	undo, err := a.Fault(ctx, mcfault.Rule{Name: "same", Key: []string{"scope:*"}, Action: mcfault.ActionMiss})
	need(t, "POST /rules", err)
	if _, err := c.AddRules(ctx, mcfault.Rule{Action: mcfault.ActionDrop}); !errors.Is(err, mcfault.ErrInvalid) {
		t.Errorf("POST /rules naming no proxy of two: %v", err)
	}
	if _, err := c.UpstreamCommand(ctx, "version"); !errors.Is(err, mcfault.ErrInvalid) {
		t.Errorf("POST /upstream/command naming no proxy of two: %v", err)
	}
	if _, err := b.AddRules(ctx, mcfault.Rule{Name: "same", Key: []string{"nothing"}, Action: mcfault.ActionDrop}); err != nil {
		t.Fatalf("the same name in another proxy: %v", err)
	}
	if info, err := a.GetRule(ctx, "same"); err != nil || info.Proxy != "a" || info.Action != mcfault.ActionMiss {
		t.Errorf("a's rule: %+v, %v", info, err)
	}
	if info, err := b.GetRule(ctx, "same"); err != nil || info.Proxy != "b" || info.Action != mcfault.ActionDrop {
		t.Errorf("b's rule: %+v, %v", info, err)
	}
	if _, err := getValue(mcA, "scope:1"); err != memcache.ErrCacheMiss {
		t.Errorf("via a with the fault: %v", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if v, err := getValue(mcA, "scope:1"); err != nil || v != "v" {
		t.Errorf("via a after undo: %q, %v", v, err)
	}
	if info, err := c.GetRule(ctx, "same"); err != nil || info.Proxy != "b" {
		t.Errorf("undo on a removed b's rule: %+v, %v", info, err)
	}
	if ch, err := b.RemoveRule(ctx, "same"); err != nil || ch.Removed != 1 || ch.Rules != 0 {
		t.Errorf("remove from b: %+v, %v", ch, err)
	}
	if r, err := b.UpstreamCommand(ctx, "get scope:1"); err != nil || !strings.Contains(r.Reply, "VALUE scope:1") {
		t.Errorf("b's upstream: %+v, %v", r, err)
	}
	if st, err := a.UpstreamStats(ctx, ""); err != nil || st["pid"] == "" {
		t.Errorf("a's upstream stats: %v", err)
	}
}

// The first example of README.md, as it is there but for srv and the
// name: it must keep working.
func TestReadmeFirstExample(t *testing.T) {
	fresh(t)
	needReset(t)
	srv := suite.mf

	client := srv.Reset(t)               // a fresh start: no rules, counters at 0
	cache := memcache.New(srv.ProxyAddr) // the code under test talks through mcfault

	mcfault.WithFault(t, client, mcfault.Rule{Name: "oom", Command: []string{"set"}, Key: []string{"cart:*"},
		Action: mcfault.ActionError, Message: "SERVER_ERROR out of memory storing object"})

	if err := cache.Set(&memcache.Item{Key: "cart:42", Value: []byte("3 apples")}); err == nil {
		t.Fatal("the write succeeded although memcached is full")
	}
	rule, err := client.GetRule(context.Background(), "oom")
	if err != nil {
		t.Fatal(err)
	}
	if rule.Fired != 1 {
		t.Errorf("the fault fired %d times, want 1", rule.Fired)
	}
	// WithFault removes the rule when the test ends, passed or failed.
}

func TestMcfaulttestStartFromTheEnvironment(t *testing.T) {
	needReset(t)
	t.Setenv("MCFAULT_ADMIN", "")
	t.Setenv("MCFAULT_BIN", suite.mcfaultBin)
	t.Setenv("MCFAULT_UPSTREAM", suite.mc.addr)
	s, err := mcfaulttest.FromEnv(mcfaulttest.Options{Args: []string{"-v", "--grace", "0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Reset(t)
	mc := memcacheClient(s.ProxyAddr)
	mustSet(t, mc, "mt:1", "x")
	undo, err := c.Fault(ctx, mcfault.Rule{Key: []string{"mt:*"}, Action: mcfault.ActionMiss})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := getValue(mc, "mt:1"); err != memcache.ErrCacheMiss {
		t.Errorf("through the started mcfault: %v", err)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	if h, err := c.Health(ctx); err != nil || h.Proxies[0].Upstream != suite.mc.addr {
		t.Errorf("health: %+v, %v", h, err)
	}
	if err := stopMcfault(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !strings.Contains(s.Log(), "mt:1") {
		t.Errorf("the -v log lacks the fault: %q", s.Log())
	}
	if _, err := c.Health(ctx); !errors.Is(err, mcfault.ErrConnection) {
		t.Errorf("after Close: %v", err)
	}
}

func TestMcfaulttestUsesARunningMcfault(t *testing.T) {
	c, _ := fresh(t)
	if _, err := c.SetRules(ctx, mcfault.Rules{{Name: "left-over", Action: mcfault.ActionDrop, Key: []string{"x"}}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MCFAULT_ADMIN", strings.TrimPrefix(suite.mf.AdminURL, "http://"))
	t.Setenv("MCFAULT_PROXY", "")
	needReset(t)
	s, err := mcfaulttest.FromEnv(mcfaulttest.Options{Bin: "/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	if s.AdminURL != suite.mf.AdminURL || s.ProxyAddr != suite.mf.ProxyAddr || s.Log() != "" {
		t.Errorf("FromEnv: %+v", s)
	}
	if names := ruleNames(t, c); len(names) != 0 {
		t.Errorf("FromEnv did not reset: %q", names)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a running mcfault: %v", err)
	}
	if _, err := c.Health(ctx); err != nil {
		t.Errorf("Close stopped an mcfault it did not start: %v", err)
	}
	t.Setenv("MCFAULT_PROXY", "127.0.0.1:1")
	if s, err := mcfaulttest.FromEnv(mcfaulttest.Options{}); err != nil || s.ProxyAddr != "127.0.0.1:1" {
		t.Errorf("MCFAULT_PROXY: %+v, %v", s, err)
	}
}

func TestMcfaulttestStartFailures(t *testing.T) {
	if _, err := mcfaulttest.Start(mcfaulttest.Options{Bin: "/nonexistent/mcfault"}); err == nil {
		t.Error("a missing binary started")
	}
	bad := writeFile(t, "bad.yaml", "rules:\n  - action: explode\n")
	_, err := mcfaulttest.Start(mcfaulttest.Options{Bin: suite.mcfaultBin, Upstream: suite.mc.addr, Config: bad})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "explode") {
		t.Errorf("a bad rule file: %v", err)
	}
}

// DisableProxy: the proxy's clients are cut and new ones refused, as when
// a memcached node goes away; EnableProxy brings it back on the same port.
func TestDisableEnableProxy(t *testing.T) {
	needReset(t)
	c, mc := fresh(t)
	t.Cleanup(func() { c.EnableProxy(ctx, "default") })
	mustSet(t, mc, "px:1", "v")
	conn, err := net.Dial("tcp", suite.mf.ProxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("version\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}

	sw, err := c.DisableProxy(ctx, "default")
	need(t, "POST /proxies/NAME/disable", err)
	if sw.Proxy != "default" || sw.Enabled || sw.Listen != suite.mf.ProxyAddr || sw.Closed < 1 {
		t.Errorf("DisableProxy: %+v", sw)
	}
	conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := conn.Read(make([]byte, 64)); err == nil {
		t.Errorf("the open client was not cut: read %d bytes", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the open client was not cut: read timed out")
	}
	if _, err := net.DialTimeout("tcp", suite.mf.ProxyAddr, 2*time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("a new client was not refused: %v", err)
	}
	if _, err := getValue(mc, "px:1"); err == nil {
		t.Error("gomemcache got through a disabled proxy")
	}
	h, err := c.Health(ctx)
	if err != nil || !h.OK || h.Proxies[0].Enabled {
		t.Errorf("health while disabled: %+v, %v", h, err)
	}
	st, err := c.Stats(ctx)
	if err != nil || st.Proxies[0].Enabled || st.Proxies[0].ConnectionsNow != 0 {
		t.Errorf("stats while disabled: %+v, %v", st, err)
	}
	if sw, err := c.DisableProxy(ctx, "default"); err != nil || sw.Closed != 0 {
		t.Errorf("disabling again: %+v, %v", sw, err)
	}

	if sw, err := c.EnableProxy(ctx, "default"); err != nil || !sw.Enabled || sw.Listen != suite.mf.ProxyAddr {
		t.Fatalf("EnableProxy: %+v, %v", sw, err)
	}
	if v, err := getValue(mc, "px:1"); err != nil || v != "v" {
		t.Errorf("get after enable: %q, %v", v, err)
	}
	if h, err := c.Health(ctx); err != nil || !h.Proxies[0].Enabled {
		t.Errorf("health after enable: %+v, %v", h, err)
	}

	// Reset switches every proxy back on.
	if _, err := c.DisableProxy(ctx, "default"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	// (A new gomemcache client: the old one's pooled connection was cut.)
	if v, err := getValue(memcacheClient(suite.mf.ProxyAddr), "px:1"); err != nil || v != "v" {
		t.Errorf("get after reset: %q, %v", v, err)
	}

	_, err = c.DisableProxy(ctx, "nope")
	if !errors.Is(err, mcfault.ErrNotFound) {
		t.Errorf("unknown proxy: %v", err)
	}
}

// A rule's InForce and NextChange, with and without a schedule.
func TestRuleInForce(t *testing.T) {
	c, _ := fresh(t)
	_, err := c.AddRules(ctx, mcfault.Rule{Name: "plain", Key: []string{"nothing"}, Action: mcfault.ActionDrop})
	need(t, "POST /rules", err)
	r, err := c.GetRule(ctx, "plain")
	if err != nil || !r.InForce || r.NextChange != nil {
		t.Errorf("plain: %+v, %v", r, err)
	}
	if _, err := c.DisableRule(ctx, "plain"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.GetRule(ctx, "plain"); err != nil || r.InForce || r.NextChange != nil {
		t.Errorf("plain, disabled: %+v, %v", r, err)
	}
	if _, err := c.AddRules(ctx, mcfault.YAML("name: later\nkey: nothing\naction: drop\nschedule: {start: 3600s, duration: 1s}\n")); err != nil {
		t.Fatal(err)
	}
	r, err = c.GetRule(ctx, "later")
	if err != nil || r.InForce || r.NextChange == nil || *r.NextChange <= 59*time.Minute || *r.NextChange > time.Hour {
		t.Errorf("later: %+v, %v", r, err)
	}
}

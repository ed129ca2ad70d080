// Unit tests of the rule fields of the newer actions and of targeting:
// what a Rule sends (the POST /rules body), what it reads back (GET /rules
// as the real mcfault writes it, and the rule file's own forms), and that a
// rule read back is sent again as the same rule. No mcfault needed.

package mcfault_test

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	mcfault "github.com/mcfault/mcfault/clients/go"
)

// Each new field, alone, as it goes into the POST body, and back.
func TestNewRuleFieldsJSON(t *testing.T) {
	cases := []struct {
		name string
		rule mcfault.Rule
		json string
	}{
		{"throttle", mcfault.Rule{Action: mcfault.ActionThrottle, Rate: 10240},
			`{"action":"throttle","rate":"10240B/s"}`},
		{"slice of one size", mcfault.Rule{Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 16, Max: 16}, Interval: 5 * time.Millisecond},
			`{"action":"slice","size":"16","interval":"5ms"}`},
		{"slice of a range", mcfault.Rule{Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 1, Max: 4096}, Interval: 250 * time.Microsecond},
			`{"action":"slice","size":"1-4096","interval":"250us"}`},
		{"truncate, bytes, reset", mcfault.Rule{Action: mcfault.ActionTruncate, Keep: mcfault.KeepBytes(100), Close: mcfault.CloseReset},
			`{"action":"truncate","close":"reset","keep":100}`},
		{"truncate, no byte", mcfault.Rule{Action: mcfault.ActionTruncate, Keep: mcfault.KeepBytes(0)},
			`{"action":"truncate","keep":0}`},
		{"truncate, a percentage", mcfault.Rule{Action: mcfault.ActionTruncate, Keep: mcfault.KeepPercent(12.5), Close: mcfault.CloseFIN},
			`{"action":"truncate","close":"fin","keep":"12.5%"}`},
		{"truncate, 0%", mcfault.Rule{Action: mcfault.ActionTruncate, Keep: mcfault.KeepPercent(0)},
			`{"action":"truncate","keep":"0%"}`},
		{"truncate, a tiny percentage", mcfault.Rule{Action: mcfault.ActionTruncate, Keep: mcfault.KeepPercent(1e-7)},
			`{"action":"truncate","keep":"0.0000001%"}`},
		{"corrupt", mcfault.Rule{Action: mcfault.ActionCorrupt, Flips: 3},
			`{"action":"corrupt","flips":3}`},
		{"evict", mcfault.Rule{Action: mcfault.ActionEvict, Key: []string{"s:*"}},
			`{"key":["s:*"],"action":"evict"}`},
		{"drop with a reset", mcfault.Rule{Action: mcfault.ActionDrop, Close: mcfault.CloseReset},
			`{"action":"drop","close":"reset"}`},
		{"clients", mcfault.Rule{Action: mcfault.ActionHang, Client: []string{"127.0.0.2/32", "fd00::/8"}},
			`{"action":"hang","client":["127.0.0.2/32","fd00::/8"]}`},
		{"connections", mcfault.Rule{Action: mcfault.ActionHang, Connections: 0.25},
			`{"action":"hang","connections":0.25}`},
		{"a tiny share and probability", mcfault.Rule{Action: mcfault.ActionHang, Connections: 1e-7, Probability: 2e-7},
			`{"action":"hang","probability":0.0000002,"connections":0.0000001}`},
		{"min_size, no upper bound", mcfault.Rule{Action: mcfault.ActionError, Message: "SERVER_ERROR big",
			DataSize: &mcfault.ByteRange{Min: 1024, Max: mcfault.NoLimit}},
			`{"action":"error","message":"SERVER_ERROR big","min_size":1024}`},
		{"any data block", mcfault.Rule{Action: mcfault.ActionHang, DataSize: &mcfault.ByteRange{Max: mcfault.NoLimit}},
			`{"action":"hang","min_size":0}`},
		{"min_size and max_size", mcfault.Rule{Action: mcfault.ActionHang, DataSize: &mcfault.ByteRange{Min: 10, Max: 4096}},
			`{"action":"hang","min_size":10,"max_size":4096}`},
		{"empty data blocks only", mcfault.Rule{Action: mcfault.ActionHang, DataSize: &mcfault.ByteRange{}},
			`{"action":"hang","min_size":0,"max_size":0}`},
		{"schedule", mcfault.Rule{Action: mcfault.ActionDrop, Schedule: &mcfault.Schedule{Start: 30 * time.Second,
			Duration: 1500 * time.Millisecond, Every: time.Minute}},
			`{"action":"drop","schedule":{"start":"30s","duration":"1500ms","every":"60s"}}`},
		{"schedule from the start, for good", mcfault.Rule{Action: mcfault.ActionDrop, Schedule: &mcfault.Schedule{}},
			`{"action":"drop","schedule":{}}`},
		{"connect", mcfault.Rule{Command: []string{mcfault.Connect}, Action: mcfault.ActionError},
			`{"command":["connect"],"action":"error"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.rule)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.json {
				t.Errorf("marshal\n got %s\nwant %s", b, tc.json)
			}
			var back mcfault.Rule
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			if !reflect.DeepEqual(back, tc.rule) {
				t.Errorf("round trip of %s:\n got %#v\nwant %#v", b, back, tc.rule)
			}
		})
	}
}

func TestNewRuleFieldsRefused(t *testing.T) {
	for name, r := range map[string]mcfault.Rule{
		"interval below a microsecond": {Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 1, Max: 1}, Interval: 1500 * time.Nanosecond},
		"schedule below a microsecond": {Action: mcfault.ActionDrop, Schedule: &mcfault.Schedule{Every: time.Second + 1}},
		"connections not a number":     {Action: mcfault.ActionDrop, Connections: math.NaN()},
		"keep not a number":            {Action: mcfault.ActionTruncate, Keep: mcfault.KeepPercent(math.Inf(1))},
		"negative flips":               {Action: mcfault.ActionCorrupt, Flips: -1},
	} {
		if b, err := json.Marshal(r); err == nil {
			t.Errorf("%s: sent as %s", name, b)
		}
	}
}

func TestKeep(t *testing.T) {
	var zero mcfault.Keep
	if !zero.IsZero() || zero.String() != "" {
		t.Errorf("zero Keep: %v %q", zero.IsZero(), zero.String())
	}
	if _, ok := zero.Bytes(); ok {
		t.Error("zero Keep has bytes")
	}
	k := mcfault.KeepBytes(0)
	if n, ok := k.Bytes(); !ok || n != 0 || k.IsZero() || k.String() != "0" {
		t.Errorf("KeepBytes(0): %d %v %v %q", n, ok, k.IsZero(), k.String())
	}
	if _, ok := k.Percent(); ok {
		t.Error("KeepBytes has a percentage")
	}
	k = mcfault.KeepPercent(50)
	if p, ok := k.Percent(); !ok || p != 50 || k.IsZero() || k.String() != "50%" {
		t.Errorf("KeepPercent(50): %v %v %v %q", p, ok, k.IsZero(), k.String())
	}
	for in, want := range map[string]mcfault.Keep{
		`100`: mcfault.KeepBytes(100), `"100"`: mcfault.KeepBytes(100), `"1KiB"`: mcfault.KeepBytes(1024),
		`"2MB"`: mcfault.KeepBytes(2000000), `"50%"`: mcfault.KeepPercent(50), `"1e-07%"`: mcfault.KeepPercent(1e-7),
		`null`: {},
	} {
		var got mcfault.Keep
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("keep %s: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{`"1.5KiB"`, `"1kib"`, `"-1"`, `"x%"`, `true`, `"18446744073709551615KiB"`} {
		var got mcfault.Keep
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("keep %s: read as %v", in, got)
		}
	}
}

// apiRules is a GET /rules reply as mcfault writes it (a rule of each new
// action and of each targeting key), and want the rules read from it.
const apiRules = `{"proxies":[{"name":"default","rules":[` +
	`{"name":"t","command":["*"],"key":["*"],"action":"throttle","rate_bps":10240,"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"s","command":["*"],"key":["*"],"action":"slice","size":{"min":1,"max":16},"interval_us":1000,"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"tr","command":["*"],"key":["*"],"action":"truncate","close":"reset","keep":"12.5%","probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"tr2","command":["*"],"key":["*"],"action":"truncate","close":"fin","keep":1024,"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"tr3","command":["get"],"key":["*"],"action":"truncate","close":"fin","keep":"1e-07%","probability":0.5,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"c","command":["*"],"key":["*"],"action":"corrupt","flips":1,"client":["127.0.0.2/32","10.0.0.0/8","fd00::/8"],"connections":0.1,"min_size":1024,"max_size":null,"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"e","command":["*"],"key":["*"],"action":"evict","min_size":0,"max_size":0,"schedule":{"start_us":0,"duration_us":0,"every_us":0},"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":5,"fired":4,"in_force":true,"next_change_ms":null},` +
	`{"name":"cc","command":["connect"],"key":["*"],"action":"error","message":"ERROR Too many open connections","probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":true,"next_change_ms":null},` +
	`{"name":"cd","command":["Connect"],"key":["*"],"action":"drop","close":"fin","schedule":{"start_us":60000000,"duration_us":500000,"every_us":2000000},"probability":1,"after":0,"limit":0,"forward":false,"enabled":true,"matched":0,"fired":0,"in_force":false,"next_change_ms":59990}` +
	`]}]}`

var star = []string{"*"}

var apiRulesWant = []mcfault.RuleInfo{
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "t", Command: star, Key: star, Action: mcfault.ActionThrottle,
		Rate: 10240, Probability: 1}},
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "s", Command: star, Key: star, Action: mcfault.ActionSlice,
		Size: mcfault.ByteRange{Min: 1, Max: 16}, Interval: time.Millisecond, Probability: 1}},
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "tr", Command: star, Key: star, Action: mcfault.ActionTruncate,
		Close: mcfault.CloseReset, Keep: mcfault.KeepPercent(12.5), Probability: 1}},
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "tr2", Command: star, Key: star, Action: mcfault.ActionTruncate,
		Close: mcfault.CloseFIN, Keep: mcfault.KeepBytes(1024), Probability: 1}},
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "tr3", Command: []string{"get"}, Key: star, Action: mcfault.ActionTruncate,
		Close: mcfault.CloseFIN, Keep: mcfault.KeepPercent(1e-7), Probability: 0.5}},
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "c", Command: star, Key: star, Action: mcfault.ActionCorrupt,
		Flips: 1, Client: []string{"127.0.0.2/32", "10.0.0.0/8", "fd00::/8"}, Connections: 0.1,
		DataSize: &mcfault.ByteRange{Min: 1024, Max: mcfault.NoLimit}, Probability: 1}},
	{Proxy: "default", InForce: true, Matched: 5, Fired: 4, Rule: mcfault.Rule{Name: "e", Command: star, Key: star, Action: mcfault.ActionEvict,
		DataSize: &mcfault.ByteRange{}, Schedule: &mcfault.Schedule{}, Probability: 1}},
	{Proxy: "default", InForce: true, Rule: mcfault.Rule{Name: "cc", Command: []string{"connect"}, Action: mcfault.ActionError,
		Message: "ERROR Too many open connections", Probability: 1}},
	{Proxy: "default", InForce: false, NextChange: durationPtr(59990 * time.Millisecond), Rule: mcfault.Rule{Name: "cd",
		Command: []string{"Connect"}, Action: mcfault.ActionDrop, Close: mcfault.CloseFIN, Probability: 1,
		Schedule: &mcfault.Schedule{Start: time.Minute, Duration: 500 * time.Millisecond, Every: 2 * time.Second}}},
}

// What each rule of apiRules sends when it is sent again: the rule file's
// keys, and nothing that mcfault would refuse (no key on a connect rule,
// no exponent).
var apiRulesResent = []string{
	`{"name":"t","command":["*"],"key":["*"],"action":"throttle","rate":"10240B/s","probability":1}`,
	`{"name":"s","command":["*"],"key":["*"],"action":"slice","size":"1-16","interval":"1ms","probability":1}`,
	`{"name":"tr","command":["*"],"key":["*"],"action":"truncate","close":"reset","keep":"12.5%","probability":1}`,
	`{"name":"tr2","command":["*"],"key":["*"],"action":"truncate","close":"fin","keep":1024,"probability":1}`,
	`{"name":"tr3","command":["get"],"key":["*"],"action":"truncate","close":"fin","keep":"0.0000001%","probability":0.5}`,
	`{"name":"c","command":["*"],"key":["*"],"action":"corrupt","flips":1,"probability":1,"client":["127.0.0.2/32","10.0.0.0/8","fd00::/8"],"connections":0.1,"min_size":1024}`,
	`{"name":"e","command":["*"],"key":["*"],"action":"evict","probability":1,"min_size":0,"max_size":0,"schedule":{}}`,
	`{"name":"cc","command":["connect"],"action":"error","message":"ERROR Too many open connections","probability":1}`,
	`{"name":"cd","command":["Connect"],"action":"drop","close":"fin","probability":1,"schedule":{"start":"60s","duration":"500ms","every":"2s"}}`,
}

func TestRulesReadBackFromTheAPI(t *testing.T) {
	c, got := stub(t, 200, apiRules)
	rules, err := c.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.method != "GET" || got.path != "/rules" {
		t.Errorf("request %s %s", got.method, got.path)
	}
	if len(rules) != len(apiRulesWant) {
		t.Fatalf("%d rules, want %d", len(rules), len(apiRulesWant))
	}
	for i := range rules {
		if !reflect.DeepEqual(rules[i], apiRulesWant[i]) {
			t.Errorf("rule %d:\n got %#v\nwant %#v", i, rules[i], apiRulesWant[i])
		}
		b, err := json.Marshal(rules[i].Rule)
		if err != nil {
			t.Errorf("rule %d: %v", i, err)
		} else if string(b) != apiRulesResent[i] {
			t.Errorf("rule %d sent again\n got %s\nwant %s", i, b, apiRulesResent[i])
		}
		// What is sent again reads back as the same rule.
		var back mcfault.Rule
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, rules[i].Rule) {
			t.Errorf("rule %d: %s read back as %#v, %v", i, b, back, err)
		}
	}
	// Through AddRules, the body is those rules.
	c, got = stub(t, 200, `{"ok":true,"rules":9,"added":9}`)
	readBack := mcfault.Rules{}
	for _, r := range rules {
		readBack = append(readBack, r.Rule)
	}
	if _, err := c.AddRules(context.Background(), readBack); err != nil {
		t.Fatal(err)
	}
	if want := `{"rules":[` + strings.Join(apiRulesResent, ",") + `]}`; got.body != want {
		t.Errorf("AddRules body\n got %s\nwant %s", got.body, want)
	}
}

// A RuleInfo (GET /rules/NAME) with every targeting field, through
// GetRule.
func TestGetRuleWithTargeting(t *testing.T) {
	c, got := stub(t, 200, `{"name":"big","command":["set"],"key":["*"],"action":"error","message":"SERVER_ERROR too big",`+
		`"client":["::1/128"],"connections":0.5,"min_size":10,"max_size":4096,`+
		`"schedule":{"start_us":1500,"duration_us":2000000,"every_us":30000000},"probability":1,"after":0,"limit":0,`+
		`"forward":true,"enabled":true,"matched":2,"fired":1,"in_force":true,"next_change_ms":1,"proxy":"p"}`)
	r, err := c.GetRule(context.Background(), "big")
	if err != nil {
		t.Fatal(err)
	}
	want := &mcfault.RuleInfo{Proxy: "p", Matched: 2, Fired: 1, InForce: true, NextChange: durationPtr(time.Millisecond),
		Rule: mcfault.Rule{Name: "big", Command: []string{"set"}, Key: star, Action: mcfault.ActionError, Message: "SERVER_ERROR too big",
			Client: []string{"::1/128"}, Connections: 0.5, DataSize: &mcfault.ByteRange{Min: 10, Max: 4096},
			Schedule:    &mcfault.Schedule{Start: 1500 * time.Microsecond, Duration: 2 * time.Second, Every: 30 * time.Second},
			Probability: 1, Forward: true}}
	if got.path != "/rules/big" || !reflect.DeepEqual(r, want) {
		t.Errorf("GetRule %s:\n got %#v\nwant %#v", got.path, r, want)
	}
}

// The rule file's own forms of the new keys (JSON being YAML).
func TestNewRuleFieldsFileForm(t *testing.T) {
	cases := []struct {
		json string
		want mcfault.Rule
	}{
		{`{"action":"throttle","rate":"10KiB/s"}`, mcfault.Rule{Action: "throttle", Rate: 10240}},
		{`{"action":"throttle","rate":"1MB"}`, mcfault.Rule{Action: "throttle", Rate: 1000000}},
		{`{"action":"throttle","rate":4096}`, mcfault.Rule{Action: "throttle", Rate: 4096}},
		{`{"action":"throttle","rate":"100/s"}`, mcfault.Rule{Action: "throttle", Rate: 100}},
		{`{"action":"slice","size":"1KiB-4KiB","interval":"0.5ms"}`,
			mcfault.Rule{Action: "slice", Size: mcfault.ByteRange{Min: 1024, Max: 4096}, Interval: 500 * time.Microsecond}},
		{`{"action":"slice","size":16}`, mcfault.Rule{Action: "slice", Size: mcfault.ByteRange{Min: 16, Max: 16}}},
		{`{"action":"truncate","keep":"1KiB","close":"reset"}`,
			mcfault.Rule{Action: "truncate", Keep: mcfault.KeepBytes(1024), Close: mcfault.CloseReset}},
		{`{"action":"drop","client":"127.0.0.1","connections":"25%","min_size":"4KiB"}`,
			mcfault.Rule{Action: "drop", Client: []string{"127.0.0.1"}, Connections: 0.25,
				DataSize: &mcfault.ByteRange{Min: 4096, Max: mcfault.NoLimit}}},
		{`{"action":"drop","connections":1,"max_size":"1KiB"}`,
			mcfault.Rule{Action: "drop", DataSize: &mcfault.ByteRange{Max: 1024}}},
		{`{"action":"drop","schedule":{"start":"30s","duration":"10s","every":"1m"}}`,
			mcfault.Rule{Action: "drop", Schedule: &mcfault.Schedule{Start: 30 * time.Second, Duration: 10 * time.Second, Every: time.Minute}}},
		{`{"command":"CONNECT","key":"*","action":"hang"}`, mcfault.Rule{Command: []string{"CONNECT"}, Action: "hang"}},
	}
	for _, tc := range cases {
		var r mcfault.Rule
		if err := json.Unmarshal([]byte(tc.json), &r); err != nil {
			t.Errorf("%s: %v", tc.json, err)
		} else if !reflect.DeepEqual(r, tc.want) {
			t.Errorf("%s:\n got %#v\nwant %#v", tc.json, r, tc.want)
		}
	}
	for _, bad := range []string{
		`{"action":"throttle","rate":"10kb/s"}`,
		`{"action":"throttle","rate":"1.5KiB"}`,
		`{"action":"slice","size":"16-"}`,
		`{"action":"slice","size":{"min":1}}`,
		`{"action":"slice","interval":"5"}`,
		`{"action":"drop","connections":"a lot"}`,
		`{"action":"drop","min_size":"-1"}`,
		`{"action":"drop","max_size":true}`,
		`{"action":"drop","schedule":{"start":"soon"}}`,
		`{"action":"truncate","keep":"half"}`,
	} {
		var r mcfault.Rule
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("%s: read as %+v", bad, r)
		}
	}
}

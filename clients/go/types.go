// The values the admin API takes and returns: rules and the documents that
// carry them, and the typed replies of each call.

package mcfault

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// An Action is what a rule does to a command that it fires on.
type Action string

// The actions (docs/config.md).
const (
	ActionError Action = "error" // answer Message instead of memcached's reply
	ActionDelay Action = "delay" // hold the reply back Delay (± Jitter)
	ActionDrop  Action = "drop"  // close the client's connection
	ActionHang  Action = "hang"  // never answer on this connection again
	ActionMiss  Action = "miss"  // answer retrievals of matching keys as misses
)

// A Rule is one fault rule, with the rule file's keys (docs/config.md).
// Zero fields take the file's defaults: every command and key, probability
// 1, no after or limit, not forwarded, enabled. Only Action is required
// (and Message for ActionError, Delay for ActionDelay).
type Rule struct {
	// Name identifies the rule in the API, stats and events; unique
	// within its proxy. Empty: mcfault names it rule-N, and Fault gives
	// it a unique name of its own.
	Name string
	// Command and Key are globs (*, ?, [a-z], \x); empty means "*".
	// A command without a key is matched as the key "".
	Command []string
	Key     []string
	Action  Action
	// Message is the reply line of ActionError ("SERVER_ERROR ...").
	Message string
	// Delay and Jitter are for ActionDelay: each delay is drawn from
	// Delay-Jitter to Delay+Jitter. Whole microseconds.
	Delay  time.Duration
	Jitter time.Duration
	// Probability is the chance, 0 to 1, that a match fires. 0 means
	// the default, 1: to load a rule that never fires, set Disabled.
	Probability float64
	// After lets the first After matches through; Limit caps how many
	// times the rule fires (0: no cap).
	After uint64
	Limit uint64
	// Forward sends the command on to memcached and applies the fault
	// to its reply (not with ActionMiss).
	Forward bool
	// Disabled loads the rule switched off (the file's enabled: false);
	// EnableRule switches it on.
	Disabled bool
}

// RuleInfo is a rule as mcfault reports it: the rule, the proxy it is in,
// its counters, and whether it is in force now.
type RuleInfo struct {
	Rule
	Proxy string
	// Matched counts commands whose globs matched, Fired the faults the
	// rule caused. Both survive rule changes that keep the name.
	Matched uint64
	Fired   uint64
	// InForce: the rule is enabled and, when it has a schedule, the
	// schedule has it on now.
	InForce bool
	// NextChange is how long until InForce changes by itself (whole
	// milliseconds, rounded up); nil when it never does: no schedule, a
	// schedule that is over, a disabled rule.
	NextChange *time.Duration
}

// Enabled reports whether the rule can match (the API's "enabled").
func (r Rule) Enabled() bool { return !r.Disabled }

// ruleOut is a Rule as the API reads it: the rule file's keys, the
// defaults left out.
type ruleOut struct {
	Name        string   `json:"name,omitempty"`
	Command     []string `json:"command,omitempty"`
	Key         []string `json:"key,omitempty"`
	Action      Action   `json:"action"`
	Message     *string  `json:"message,omitempty"`
	Delay       string   `json:"delay,omitempty"`
	Jitter      string   `json:"jitter,omitempty"`
	Probability *float64 `json:"probability,omitempty"`
	After       uint64   `json:"after,omitempty"`
	Limit       uint64   `json:"limit,omitempty"`
	Forward     bool     `json:"forward,omitempty"`
	Enabled     *bool    `json:"enabled,omitempty"`
}

// MarshalJSON writes the rule with the rule file's keys (delay as
// "1500us"), leaving out the zero fields: mcfault then applies its
// defaults, or says what is missing (an error rule without a message).
func (r Rule) MarshalJSON() ([]byte, error) {
	out := ruleOut{Name: r.Name, Command: r.Command, Key: r.Key, Action: r.Action,
		After: r.After, Limit: r.Limit, Forward: r.Forward}
	if r.Message != "" {
		out.Message = &r.Message
	}
	var err error
	if r.Delay != 0 {
		if out.Delay, err = formatDuration("delay", r.Delay); err != nil {
			return nil, err
		}
	}
	if r.Jitter != 0 {
		if out.Jitter, err = formatDuration("jitter", r.Jitter); err != nil {
			return nil, err
		}
	}
	if r.Probability != 0 {
		if math.IsNaN(r.Probability) || math.IsInf(r.Probability, 0) {
			return nil, fmt.Errorf("mcfault: rule %q: probability %v is not a number", r.Name, r.Probability)
		}
		p := r.Probability
		out.Probability = &p
	}
	if r.Disabled {
		f := false
		out.Enabled = &f
	}
	return json.Marshal(out)
}

// formatDuration writes d in the rule file's duration syntax, in the
// largest unit that keeps it whole: "2s", "250ms", "1500us".
func formatDuration(what string, d time.Duration) (string, error) {
	if d%time.Microsecond != 0 {
		return "", fmt.Errorf("mcfault: %s %v: durations are whole microseconds", what, d)
	}
	switch {
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s", nil
	case d%time.Millisecond == 0:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms", nil
	default:
		return strconv.FormatInt(int64(d/time.Microsecond), 10) + "us", nil
	}
}

// ruleIn reads a rule in either form: as the API reports it (delay_us,
// counters, lists) or as written in a rule file (delay "500ms", a glob
// or a list of globs, a probability as a number or "25%").
type ruleIn struct {
	Name        string          `json:"name"`
	Command     globs           `json:"command"`
	Key         globs           `json:"key"`
	Action      Action          `json:"action"`
	Message     string          `json:"message"`
	Delay       string          `json:"delay"`
	Jitter      string          `json:"jitter"`
	DelayUS     int64           `json:"delay_us"`
	JitterUS    int64           `json:"jitter_us"`
	Probability json.RawMessage `json:"probability"`
	After       uint64          `json:"after"`
	Limit       uint64          `json:"limit"`
	Forward     bool            `json:"forward"`
	Enabled     *bool           `json:"enabled"`
	Proxy       string          `json:"proxy"`
	Matched     uint64          `json:"matched"`
	Fired       uint64          `json:"fired"`
	InForce     *bool           `json:"in_force"`
	NextChange  *int64          `json:"next_change_ms"`
}

// globs reads a glob or a list of globs.
type globs []string

func (g *globs) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*g = globs{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*g = many
	return nil
}

func (in *ruleIn) rule() (Rule, error) {
	r := Rule{Name: in.Name, Command: in.Command, Key: in.Key, Action: in.Action, Message: in.Message,
		Delay: time.Duration(in.DelayUS) * time.Microsecond, Jitter: time.Duration(in.JitterUS) * time.Microsecond,
		After: in.After, Limit: in.Limit, Forward: in.Forward, Disabled: in.Enabled != nil && !*in.Enabled}
	var err error
	if in.Delay != "" {
		if r.Delay, err = time.ParseDuration(in.Delay); err != nil {
			return r, fmt.Errorf("mcfault: rule %q: delay: %v", in.Name, err)
		}
	}
	if in.Jitter != "" {
		if r.Jitter, err = time.ParseDuration(in.Jitter); err != nil {
			return r, fmt.Errorf("mcfault: rule %q: jitter: %v", in.Name, err)
		}
	}
	if len(in.Probability) > 0 && string(in.Probability) != "null" {
		if r.Probability, err = parseProbability(in.Probability); err != nil {
			return r, fmt.Errorf("mcfault: rule %q: probability: %v", in.Name, err)
		}
	}
	return r, nil
}

// parseProbability reads 0.25, "0.25" or "25%".
func parseProbability(b json.RawMessage) (float64, error) {
	var p float64
	if json.Unmarshal(b, &p) == nil {
		return p, nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return 0, err
	}
	if pct := strings.TrimSuffix(s, "%"); pct != s {
		v, err := strconv.ParseFloat(pct, 64)
		return v / 100, err
	}
	return strconv.ParseFloat(s, 64)
}

// UnmarshalJSON reads a rule as GET /rules reports it, or as a rule file
// writes it (JSON being YAML, a rule document in JSON decodes into Rules).
func (r *Rule) UnmarshalJSON(b []byte) error {
	var in ruleIn
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	rule, err := in.rule()
	if err != nil {
		return err
	}
	*r = rule
	return nil
}

// UnmarshalJSON reads a rule of GET /rules or GET /rules/NAME.
func (r *RuleInfo) UnmarshalJSON(b []byte) error {
	var in ruleIn
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	rule, err := in.rule()
	if err != nil {
		return err
	}
	*r = RuleInfo{Rule: rule, Proxy: in.Proxy, Matched: in.Matched, Fired: in.Fired,
		InForce: rule.Enabled()}
	if in.InForce != nil { // an mcfault from before schedules has none
		r.InForce = *in.InForce
	}
	if in.NextChange != nil {
		d := time.Duration(*in.NextChange) * time.Millisecond
		r.NextChange = &d
	}
	return nil
}

// MarshalJSON writes the rule as Rule does, with proxy, matched and fired
// added (the form of GET /rules/NAME, which mcfault does not accept back).
func (r RuleInfo) MarshalJSON() ([]byte, error) {
	b, err := r.Rule.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["proxy"], _ = json.Marshal(r.Proxy)
	m["matched"], _ = json.Marshal(r.Matched)
	m["fired"], _ = json.Marshal(r.Fired)
	m["in_force"], _ = json.Marshal(r.InForce)
	if r.NextChange != nil {
		m["next_change_ms"], _ = json.Marshal(r.NextChange.Milliseconds())
	} else {
		m["next_change_ms"] = json.RawMessage("null")
	}
	return json.Marshal(m)
}

// A Document is a rule document for SetRules and AddRules: a Rule,
// Rules, YAML text or JSON of a value. Other packages cannot add kinds.
type Document interface {
	document() (body []byte, contentType string, err error)
}

// Rules is a document of rules in priority order: {"rules": [...]}.
type Rules []Rule

func (rs Rules) document() ([]byte, string, error) {
	if rs == nil {
		rs = Rules{}
	}
	b, err := json.Marshal(struct {
		Rules []Rule `json:"rules"`
	}{rs})
	return b, "application/json", err
}

// document makes one Rule a document of one rule.
func (r Rule) document() ([]byte, string, error) { return Rules{r}.document() }

// YAML is a rule document as text, sent as it is: the rule file's schema
// (docs/config.md), YAML or JSON, with either form (rules: or proxies:);
// for AddRules also one rule mapping or a list of rules. Problems in it
// are reported as body:LINE:COL.
type YAML string

func (y YAML) document() ([]byte, string, error) {
	return []byte(y), "application/yaml", nil
}

// JSON makes a document of any value encoding/json can marshal: a
// map[string]any in the proxies: form, a struct of your own, a list of
// rule maps for AddRules.
func JSON(v any) Document { return jsonDoc{v} }

type jsonDoc struct{ v any }

func (j jsonDoc) document() ([]byte, string, error) {
	b, err := json.Marshal(j.v)
	if err != nil {
		return nil, "", fmt.Errorf("mcfault: document: %w", err)
	}
	return b, "application/json", nil
}

// Change is the reply of a call that changes rules or state. Each call
// fills what its endpoint reports: Rules (rules in force over every proxy
// afterwards) for SetRules, AddRules, RemoveRule, ClearRules, Reload and
// Reset; Added for AddRules; Removed for RemoveRule; Changed (proxies
// whose rule was switched) for EnableRule and DisableRule.
type Change struct {
	Rules   int `json:"rules"`
	Added   int `json:"added"`
	Removed int `json:"removed"`
	Changed int `json:"changed"`
}

// Health is the reply of GET /health.
type Health struct {
	OK      bool          `json:"ok"` // every proxy reached its memcached
	Proxies []ProxyHealth `json:"proxies"`
}

// ProxyHealth is one proxy's line in Health.
type ProxyHealth struct {
	Name              string `json:"name"`
	Listen            string `json:"listen"`
	Upstream          string `json:"upstream"`
	Enabled           bool   `json:"enabled"` // false while switched off (DisableProxy)
	UpstreamReachable bool   `json:"upstream_reachable"`
	Error             string `json:"error,omitempty"` // why not reachable
}

// UnmarshalJSON reads a proxy of GET /health; one of an mcfault from
// before the proxy switch is Enabled.
func (p *ProxyHealth) UnmarshalJSON(b []byte) error {
	type plain ProxyHealth
	in := plain{Enabled: true}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*p = ProxyHealth(in)
	return nil
}

// Stats is the reply of GET /stats. Counters count from the start of the
// process (or the last Reset) and never go down.
type Stats struct {
	Version          string `json:"version"`
	UptimeSeconds    int64  `json:"uptime_seconds"`
	Rules            int    `json:"rules"`
	ConnectionsTotal uint64 `json:"connections_total"`
	ConnectionsNow   uint64 `json:"connections_now"`
	ClientBytesIn    uint64 `json:"client_bytes_in"`
	ClientBytesOut   uint64 `json:"client_bytes_out"`
	UpstreamBytesOut uint64 `json:"upstream_bytes_out"`
	UpstreamBytesIn  uint64 `json:"upstream_bytes_in"`
	UpstreamErrors   uint64 `json:"upstream_errors"`
	FaultsTotal      uint64 `json:"faults_total"`
	ReloadsOK        uint64 `json:"reloads_ok"`
	ReloadsFailed    uint64 `json:"reloads_failed"`
	// Commands counts commands parsed by name ("unknown" for others);
	// names never seen are absent.
	Commands map[string]uint64 `json:"commands"`
	// Faults counts faults fired by action.
	Faults  map[Action]uint64 `json:"faults"`
	Proxies []ProxyStats      `json:"proxies"`
}

// ProxyStats is one proxy's part of Stats.
type ProxyStats struct {
	Name             string      `json:"name"`
	Enabled          bool        `json:"enabled"` // false while switched off (DisableProxy)
	ConnectionsNow   uint64      `json:"connections_now"`
	ConnectionsTotal uint64      `json:"connections_total"`
	Rules            []RuleStats `json:"rules"`
}

// UnmarshalJSON reads a proxy of GET /stats; one of an mcfault from before
// the proxy switch is Enabled.
func (p *ProxyStats) UnmarshalJSON(b []byte) error {
	type plain ProxyStats
	in := plain{Enabled: true}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*p = ProxyStats(in)
	return nil
}

// RuleStats is one rule's counters in Stats.
type RuleStats struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Matched uint64 `json:"matched"`
	Fired   uint64 `json:"fired"`
	// InForce: enabled and, with a schedule, on now (RuleInfo.InForce).
	InForce bool `json:"in_force"`
}

// UnmarshalJSON reads a rule of GET /stats; from an mcfault from before
// schedules, InForce is Enabled.
func (r *RuleStats) UnmarshalJSON(b []byte) error {
	type plain RuleStats
	var in struct {
		plain
		InForce *bool `json:"in_force"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*r = RuleStats(in.plain)
	r.InForce = r.Enabled
	if in.InForce != nil {
		r.InForce = *in.InForce
	}
	return nil
}

// ProxySwitch is the reply of DisableProxy and EnableProxy: the proxy's
// state afterwards.
type ProxySwitch struct {
	Proxy   string `json:"proxy"`
	Enabled bool   `json:"enabled"`
	Listen  string `json:"listen"` // the address it listens on when enabled
	// Closed counts the client connections a disable closed.
	Closed int `json:"closed"`
}

// Events is the reply of GET /events.
type Events struct {
	// Last is the newest sequence number handed out: the since of the
	// next call.
	Last   uint64  `json:"last"`
	Events []Event `json:"events"`
}

// An Event is one fault that fired.
type Event struct {
	Seq     uint64
	Time    time.Time
	Proxy   string
	Conn    uint64 // mcfault's number for the client connection
	Rule    string
	Action  Action
	Forward bool
	Command string
	Key     string // the first key; bytes that are not UTF-8 read as Latin-1
	Keys    int    // how many keys the command had
}

// UnmarshalJSON reads {"seq": N, "event": {...}} of GET /events.
func (e *Event) UnmarshalJSON(b []byte) error {
	var in struct {
		Seq   uint64 `json:"seq"`
		Event struct {
			Time    float64 `json:"time"`
			Proxy   string  `json:"proxy"`
			Conn    uint64  `json:"conn"`
			Rule    string  `json:"rule"`
			Action  Action  `json:"action"`
			Forward bool    `json:"forward"`
			Command string  `json:"command"`
			Key     string  `json:"key"`
			Keys    int     `json:"keys"`
		} `json:"event"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	sec, frac := math.Modf(in.Event.Time)
	ev := in.Event
	*e = Event{Seq: in.Seq, Time: time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3),
		Proxy: ev.Proxy, Conn: ev.Conn, Rule: ev.Rule, Action: ev.Action, Forward: ev.Forward,
		Command: ev.Command, Key: ev.Key, Keys: ev.Keys}
	return nil
}

// UpstreamReply is memcached's answer to UpstreamCommand.
type UpstreamReply struct {
	// Reply is the reply's bytes as memcached sent them
	// ("STORED\r\n", "VALUE k 0 2\r\nhi\r\nEND\r\n"); "" for noreply.
	Reply string
	// UTF8 reports whether the reply was valid UTF-8 (mcfault's "reply"
	// was not null).
	UTF8 bool
	// Elapsed is how long memcached took, as mcfault measured it.
	Elapsed time.Duration
}

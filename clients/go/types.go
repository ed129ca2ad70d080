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

// The actions (docs/config.md). Each names the Rule fields it takes.
const (
	ActionError    Action = "error"    // answer Message instead of memcached's reply
	ActionDelay    Action = "delay"    // hold the reply back Delay (± Jitter)
	ActionDrop     Action = "drop"     // close the client's connection (Close)
	ActionHang     Action = "hang"     // never answer on this connection again
	ActionMiss     Action = "miss"     // answer retrievals of matching keys as misses
	ActionThrottle Action = "throttle" // send the reply at Rate bytes per second
	ActionSlice    Action = "slice"    // send the reply in pieces of Size bytes, Interval apart
	ActionTruncate Action = "truncate" // send the first Keep of the reply, then close the connection (Close)
	ActionCorrupt  Action = "corrupt"  // flip Flips bits in each value read, or in the value stored
	ActionEvict    Action = "evict"    // delete the command's matching keys from memcached before it runs
)

// Close is how ActionDrop and ActionTruncate close the client's
// connection. The zero Close is mcfault's default, CloseFIN.
type Close string

// The ways to close a connection.
const (
	CloseFIN   Close = "fin"   // a FIN: the client reads EOF
	CloseReset Close = "reset" // a RST: the client gets ECONNRESET
)

// Connect is the Command of a rule about new connections instead of
// commands: Command: []string{mcfault.Connect}, with ActionError (Message
// optional: memcached's "ERROR Too many open connections"), ActionDelay,
// ActionDrop (with Close) or ActionHang. It must be the only command, and
// such a rule takes no Key, Forward or DataSize.
const Connect = "connect"

// A Rule is one fault rule, with the rule file's keys (docs/config.md).
// Zero fields take the file's defaults: every command and key, probability
// 1, no after or limit, not forwarded, enabled, no targeting. Only Action
// is required, and what it needs: Message for ActionError, Delay for
// ActionDelay, Rate for ActionThrottle, Size for ActionSlice, Keep for
// ActionTruncate. A field an action does not take (Rate on a drop) is an
// error from mcfault, not ignored.
//
// A rule read back (Rules, GetRule) has mcfault's values in every field it
// reports, defaults included: Command and Key ["*"], Probability 1, Close
// CloseFIN on a drop or truncate, Interval 1ms on a slice, Flips 1 on a
// corrupt. Sent again, it makes the same rule.
type Rule struct {
	// Name identifies the rule in the API, stats and events; unique
	// within its proxy. Empty: mcfault names it rule-N, and Fault gives
	// it a unique name of its own.
	Name string
	// Command and Key are globs (*, ?, [a-z], \x); empty means "*".
	// A command without a key is matched as the key "". Command
	// []string{Connect} makes a connect rule (see Connect), which has no
	// Key (read back, Key is nil).
	Command []string
	Key     []string
	Action  Action
	// Message is the reply line of ActionError ("SERVER_ERROR ...").
	Message string
	// Delay and Jitter are for ActionDelay: each delay is drawn from
	// Delay-Jitter to Delay+Jitter. Whole microseconds.
	Delay  time.Duration
	Jitter time.Duration
	// Close is how ActionDrop and ActionTruncate close the connection;
	// empty: CloseFIN.
	Close Close
	// Rate is ActionThrottle's pace, in bytes per second (1 to 1 GiB).
	Rate uint64
	// Size is the size of ActionSlice's pieces: each from Size.Min to
	// Size.Max bytes (1 to 1 MiB). Pieces of exactly N bytes are
	// ByteRange{Min: N, Max: N}.
	Size ByteRange
	// Interval is ActionSlice's pause between two pieces; 0: mcfault's
	// default, 1ms. Whole microseconds.
	Interval time.Duration
	// Keep is what ActionTruncate lets through before it closes the
	// connection: KeepBytes(n) or KeepPercent(p) of the reply.
	Keep Keep
	// Flips is how many bits ActionCorrupt flips in each value, 1 to
	// 1024; 0: mcfault's default, 1.
	Flips int
	// Probability is the chance, 0 to 1, that a match fires. 0 means
	// the default, 1: to load a rule that never fires, set Disabled.
	Probability float64
	// After lets the first After matches through; Limit caps how many
	// times the rule fires (0: no cap).
	After uint64
	Limit uint64
	// Forward sends the command on to memcached and applies the fault
	// to its reply (ActionError, ActionDelay, ActionDrop, ActionHang
	// only: the newer actions always reach memcached).
	Forward bool
	// Disabled loads the rule switched off (the file's enabled: false);
	// EnableRule switches it on.
	Disabled bool

	// Targeting (docs/config.md, "Targeting"): a command the following
	// turn away is no match at all (not counted in Matched, not seen by
	// After and Limit). Every action takes them.

	// Client limits the rule to clients in these networks: "127.0.0.2",
	// "10.0.0.0/8", "fd00::/8". Read back, each is the network in CIDR
	// form ("127.0.0.2/32"). nil: any client.
	Client []string
	// Connections limits the rule to this share of the client
	// connections, above 0 and at most 1. Each connection draws once when
	// it opens, so a connection is always or never taken. 0 (and 1):
	// every connection; read back, 1 is 0.
	Connections float64
	// DataSize limits the rule to commands with a data block (set, ms,
	// ...) of DataSize.Min to DataSize.Max bytes, NoLimit for no upper
	// bound (the file's min_size and max_size); a command without a data
	// block is then no match. nil: any command.
	DataSize *ByteRange
	// Schedule puts the rule in force only part of the time. nil:
	// always.
	Schedule *Schedule
}

// A ByteRange is a length from Min to Max bytes, both included.
type ByteRange struct {
	Min uint64
	Max uint64
}

// NoLimit as a DataSize's Max is no upper bound (mcfault's max_size null).
const NoLimit uint64 = math.MaxUint64

// A Schedule is when a rule is in force, counted on the rule's clock,
// which starts when the rule is first loaded (started with mcfault, or
// added by SetRules, AddRules, a reload) and is kept by changes that keep
// the rule's name; Reset restarts it. Whole microseconds, each at most 30
// days.
type Schedule struct {
	// Start is when the rule first comes in force.
	Start time.Duration
	// Duration is how long it then stays in force; 0: for good.
	Duration time.Duration
	// Every repeats the window from Start + k*Every; 0: once. With Every,
	// Duration must be above 0 and at most Every.
	Every time.Duration
}

// Keep is how much of a reply ActionTruncate lets through: a byte count
// (KeepBytes) or a percentage of the reply (KeepPercent). The zero Keep is
// none given.
type Keep struct {
	kind    keepKind
	bytes   uint64
	percent float64
}

type keepKind uint8

const (
	keepNone keepKind = iota
	keepBytes
	keepPercent
)

// KeepBytes keeps the first n bytes of the reply.
func KeepBytes(n uint64) Keep { return Keep{kind: keepBytes, bytes: n} }

// KeepPercent keeps the first p percent (0 to 100; 12.5 is 12.5%) of the
// reply's length. mcfault holds the reply back until it ends to know its
// length, at most its first 4 MiB.
func KeepPercent(p float64) Keep { return Keep{kind: keepPercent, percent: p} }

// Bytes is the byte count of a KeepBytes; ok is false for any other Keep.
func (k Keep) Bytes() (n uint64, ok bool) { return k.bytes, k.kind == keepBytes }

// Percent is the percentage of a KeepPercent; ok is false for any other
// Keep.
func (k Keep) Percent() (p float64, ok bool) { return k.percent, k.kind == keepPercent }

// IsZero reports whether k is the zero Keep: none given.
func (k Keep) IsZero() bool { return k.kind == keepNone }

// String is k in the rule file's syntax: "100" (bytes), "12.5%", or ""
// for the zero Keep.
func (k Keep) String() string {
	switch k.kind {
	case keepBytes:
		return strconv.FormatUint(k.bytes, 10)
	case keepPercent:
		return formatDecimal(k.percent) + "%"
	}
	return ""
}

// MarshalJSON writes a byte count as a number and a percentage as a
// string ("12.5%"), as mcfault reads and reports them; the zero Keep is
// null.
func (k Keep) MarshalJSON() ([]byte, error) {
	switch k.kind {
	case keepBytes:
		return []byte(strconv.FormatUint(k.bytes, 10)), nil
	case keepPercent:
		if math.IsNaN(k.percent) || math.IsInf(k.percent, 0) {
			return nil, fmt.Errorf("mcfault: keep %v%% is not a number", k.percent)
		}
		return json.Marshal(k.String())
	}
	return []byte("null"), nil
}

// UnmarshalJSON reads a byte count (100, "100", "1KiB") or a percentage
// ("50%", "1e-07%"); null is the zero Keep.
func (k *Keep) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*k = Keep{}
		return nil
	}
	s, err := scalar(b)
	if err != nil {
		return err
	}
	if pct := strings.TrimSuffix(s, "%"); pct != s {
		p, err := strconv.ParseFloat(pct, 64)
		if err != nil {
			return fmt.Errorf("bad percentage %q", s)
		}
		*k = KeepPercent(p)
		return nil
	}
	n, err := parseBytes(s, false)
	if err != nil {
		return err
	}
	*k = KeepBytes(n)
	return nil
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

// ruleOut is a Rule as the API reads it: the rule file's keys, in the
// order of docs/config.md, the defaults left out.
type ruleOut struct {
	Name        string       `json:"name,omitempty"`
	Command     []string     `json:"command,omitempty"`
	Key         []string     `json:"key,omitempty"`
	Action      Action       `json:"action"`
	Message     *string      `json:"message,omitempty"`
	Delay       string       `json:"delay,omitempty"`
	Jitter      string       `json:"jitter,omitempty"`
	Close       Close        `json:"close,omitempty"`
	Rate        string       `json:"rate,omitempty"`
	Size        string       `json:"size,omitempty"`
	Interval    string       `json:"interval,omitempty"`
	Keep        *Keep        `json:"keep,omitempty"`
	Flips       int          `json:"flips,omitempty"`
	Probability json.Number  `json:"probability,omitempty"`
	After       uint64       `json:"after,omitempty"`
	Limit       uint64       `json:"limit,omitempty"`
	Forward     bool         `json:"forward,omitempty"`
	Enabled     *bool        `json:"enabled,omitempty"`
	Client      []string     `json:"client,omitempty"`
	Connections json.Number  `json:"connections,omitempty"`
	MinSize     *uint64      `json:"min_size,omitempty"`
	MaxSize     *uint64      `json:"max_size,omitempty"`
	Schedule    *scheduleOut `json:"schedule,omitempty"`
}

type scheduleOut struct {
	Start    string `json:"start,omitempty"`
	Duration string `json:"duration,omitempty"`
	Every    string `json:"every,omitempty"`
}

// MarshalJSON writes the rule with the rule file's keys (delay as
// "1500us", rate as "10240B/s", size as "16" or "1-16", keep as 100 or
// "12.5%"), leaving out the zero fields: mcfault then applies its
// defaults, or says what is missing (an error rule without a message).
func (r Rule) MarshalJSON() ([]byte, error) {
	out := ruleOut{Name: r.Name, Command: r.Command, Key: r.Key, Action: r.Action, Close: r.Close,
		Flips: r.Flips, After: r.After, Limit: r.Limit, Forward: r.Forward, Client: r.Client}
	if r.Message != "" {
		out.Message = &r.Message
	}
	var err error
	for _, d := range []struct {
		what string
		d    time.Duration
		out  *string
	}{{"delay", r.Delay, &out.Delay}, {"jitter", r.Jitter, &out.Jitter}, {"interval", r.Interval, &out.Interval}} {
		if d.d != 0 {
			if *d.out, err = formatDuration(d.what, d.d); err != nil {
				return nil, fmt.Errorf("mcfault: rule %q: %w", r.Name, err)
			}
		}
	}
	if r.Rate != 0 {
		out.Rate = strconv.FormatUint(r.Rate, 10) + "B/s"
	}
	if r.Size != (ByteRange{}) {
		out.Size = strconv.FormatUint(r.Size.Min, 10)
		if r.Size.Max != r.Size.Min {
			out.Size += "-" + strconv.FormatUint(r.Size.Max, 10)
		}
	}
	if !r.Keep.IsZero() {
		k := r.Keep
		out.Keep = &k
	}
	if r.Flips < 0 {
		return nil, fmt.Errorf("mcfault: rule %q: flips %d is negative", r.Name, r.Flips)
	}
	if r.Probability != 0 {
		if out.Probability, err = share("probability", r.Probability); err != nil {
			return nil, fmt.Errorf("mcfault: rule %q: %w", r.Name, err)
		}
	}
	if r.Disabled {
		f := false
		out.Enabled = &f
	}
	if r.Connections != 0 {
		if out.Connections, err = share("connections", r.Connections); err != nil {
			return nil, fmt.Errorf("mcfault: rule %q: %w", r.Name, err)
		}
	}
	if r.DataSize != nil {
		min, max := r.DataSize.Min, r.DataSize.Max
		out.MinSize = &min
		if max != NoLimit {
			out.MaxSize = &max
		}
	}
	if sc := r.Schedule; sc != nil {
		out.Schedule = &scheduleOut{}
		for _, d := range []struct {
			what string
			d    time.Duration
			out  *string
		}{{"start", sc.Start, &out.Schedule.Start}, {"duration", sc.Duration, &out.Schedule.Duration},
			{"every", sc.Every, &out.Schedule.Every}} {
			if d.d != 0 {
				if *d.out, err = formatDuration("schedule "+d.what, d.d); err != nil {
					return nil, fmt.Errorf("mcfault: rule %q: %w", r.Name, err)
				}
			}
		}
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

// share writes a probability or a share as a plain decimal number, never
// with an exponent (mcfault reads 0.0000001, not 1e-07).
func share(what string, p float64) (json.Number, error) {
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return "", fmt.Errorf("%s %v is not a number", what, p)
	}
	return json.Number(formatDecimal(p)), nil
}

// formatDecimal writes f in as few digits as read back as f, without an
// exponent.
func formatDecimal(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// ruleIn reads a rule in either form: as the API reports it (delay_us,
// rate_bps, size {min, max}, counters, lists) or as written in a rule
// file (delay "500ms", rate "10KiB/s", size "1-16", a glob or a list of
// globs, a probability as a number or "25%").
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
	Close       Close           `json:"close"`
	Rate        json.RawMessage `json:"rate"`
	RateBPS     uint64          `json:"rate_bps"`
	Size        json.RawMessage `json:"size"`
	Interval    string          `json:"interval"`
	IntervalUS  int64           `json:"interval_us"`
	Keep        Keep            `json:"keep"`
	Flips       int             `json:"flips"`
	Probability json.RawMessage `json:"probability"`
	After       uint64          `json:"after"`
	Limit       uint64          `json:"limit"`
	Forward     bool            `json:"forward"`
	Enabled     *bool           `json:"enabled"`
	Client      globs           `json:"client"`
	Connections json.RawMessage `json:"connections"`
	MinSize     json.RawMessage `json:"min_size"`
	MaxSize     json.RawMessage `json:"max_size"`
	Schedule    *scheduleIn     `json:"schedule"`
	Proxy       string          `json:"proxy"`
	Matched     uint64          `json:"matched"`
	Fired       uint64          `json:"fired"`
	InForce     *bool           `json:"in_force"`
	NextChange  *int64          `json:"next_change_ms"`
}

// scheduleIn reads a schedule as the API reports it (start_us, ...) or as
// a rule file writes it (start: 30s, ...).
type scheduleIn struct {
	Start      string `json:"start"`
	Duration   string `json:"duration"`
	Every      string `json:"every"`
	StartUS    int64  `json:"start_us"`
	DurationUS int64  `json:"duration_us"`
	EveryUS    int64  `json:"every_us"`
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

// given reports whether a key was there with a value other than null.
func given(b json.RawMessage) bool { return len(b) > 0 && string(b) != "null" }

func (in *ruleIn) rule() (Rule, error) {
	r := Rule{Name: in.Name, Command: in.Command, Key: in.Key, Action: in.Action, Message: in.Message,
		Delay: time.Duration(in.DelayUS) * time.Microsecond, Jitter: time.Duration(in.JitterUS) * time.Microsecond,
		Close: in.Close, Rate: in.RateBPS, Interval: time.Duration(in.IntervalUS) * time.Microsecond,
		Keep: in.Keep, Flips: in.Flips, After: in.After, Limit: in.Limit, Forward: in.Forward,
		Disabled: in.Enabled != nil && !*in.Enabled, Client: in.Client}
	bad := func(what string, err error) (Rule, error) {
		return r, fmt.Errorf("mcfault: rule %q: %s: %v", in.Name, what, err)
	}
	// mcfault reports the key "*" of a connect rule, which takes none.
	if len(r.Command) == 1 && strings.EqualFold(r.Command[0], Connect) &&
		len(r.Key) == 1 && r.Key[0] == "*" {
		r.Key = nil
	}
	var err error
	for _, d := range []struct {
		what, in string
		out      *time.Duration
	}{{"delay", in.Delay, &r.Delay}, {"jitter", in.Jitter, &r.Jitter}, {"interval", in.Interval, &r.Interval}} {
		if d.in != "" {
			if *d.out, err = time.ParseDuration(d.in); err != nil {
				return bad(d.what, err)
			}
		}
	}
	if given(in.Rate) {
		s, err := scalar(in.Rate)
		if err != nil {
			return bad("rate", err)
		}
		if r.Rate, err = parseBytes(s, true); err != nil {
			return bad("rate", err)
		}
	}
	if given(in.Size) {
		if r.Size, err = parseSize(in.Size); err != nil {
			return bad("size", err)
		}
	}
	if given(in.Probability) {
		if r.Probability, err = parseProbability(in.Probability); err != nil {
			return bad("probability", err)
		}
	}
	if given(in.Connections) {
		if r.Connections, err = parseProbability(in.Connections); err != nil {
			return bad("connections", err)
		}
		if r.Connections == 1 {
			r.Connections = 0 // as mcfault reports it: every connection
		}
	}
	if given(in.MinSize) || given(in.MaxSize) {
		r.DataSize = &ByteRange{Max: NoLimit}
		for _, b := range []struct {
			what string
			in   json.RawMessage
			out  *uint64
		}{{"min_size", in.MinSize, &r.DataSize.Min}, {"max_size", in.MaxSize, &r.DataSize.Max}} {
			if !given(b.in) {
				continue
			}
			s, err := scalar(b.in)
			if err != nil {
				return bad(b.what, err)
			}
			if *b.out, err = parseBytes(s, false); err != nil {
				return bad(b.what, err)
			}
		}
	}
	if sc := in.Schedule; sc != nil {
		r.Schedule = &Schedule{Start: time.Duration(sc.StartUS) * time.Microsecond,
			Duration: time.Duration(sc.DurationUS) * time.Microsecond, Every: time.Duration(sc.EveryUS) * time.Microsecond}
		for _, d := range []struct {
			what, in string
			out      *time.Duration
		}{{"start", sc.Start, &r.Schedule.Start}, {"duration", sc.Duration, &r.Schedule.Duration},
			{"every", sc.Every, &r.Schedule.Every}} {
			if d.in != "" {
				if *d.out, err = time.ParseDuration(d.in); err != nil {
					return bad("schedule "+d.what, err)
				}
			}
		}
	}
	return r, nil
}

// scalar is the text of a JSON string or number: "1KiB" or 1024.
func scalar(b []byte) (string, error) {
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", fmt.Errorf("expected a number or a string, got %s", b)
	}
	return n.String(), nil
}

// byteUnits are the units of the rule file's byte counts.
var byteUnits = map[string]uint64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
	"KB": 1000, "kB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000}

// parseBytes reads a byte count, "512", "4KiB", "1MB"; for a rate, "/s"
// may follow.
func parseBytes(s string, rate bool) (uint64, error) {
	t := s
	if rate {
		t = strings.TrimSuffix(t, "/s")
	}
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	mult, ok := byteUnits[t[i:]]
	if i == 0 || !ok {
		return 0, fmt.Errorf("bad byte count %q", s)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil || n > math.MaxUint64/mult {
		return 0, fmt.Errorf("byte count %q is too large", s)
	}
	return n * mult, nil
}

// parseSize reads a slice size as the API reports it, {"min": 1, "max":
// 16}, or as a rule file writes it: 16, "16", "1-16", "1KiB-4KiB".
func parseSize(b json.RawMessage) (ByteRange, error) {
	var obj struct {
		Min *uint64 `json:"min"`
		Max *uint64 `json:"max"`
	}
	if json.Unmarshal(b, &obj) == nil && obj.Min != nil && obj.Max != nil {
		return ByteRange{*obj.Min, *obj.Max}, nil
	}
	s, err := scalar(b)
	if err != nil {
		return ByteRange{}, err
	}
	lo, hi := s, s
	// A '-' first would be a sign, which parseBytes refuses.
	if i := strings.IndexByte(s, '-'); i > 0 {
		lo, hi = s[:i], s[i+1:]
	}
	var r ByteRange
	if r.Min, err = parseBytes(lo, false); err != nil {
		return r, err
	}
	if r.Max, err = parseBytes(hi, false); err != nil {
		return r, err
	}
	return r, nil
}

// parseProbability reads 0.25, "0.25" or "25%" (also a share of
// connections).
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

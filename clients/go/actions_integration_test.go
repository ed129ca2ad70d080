//go:build integration

// Integration tests of the newer actions (throttle, slice, truncate,
// corrupt, evict, drop with a reset), of targeting (client, data size,
// schedule) and of connect rules: each rule added with the typed API to the
// real mcfault, its effect seen by a real memcached client (gomemcache, or
// a raw connection where the bytes or the way the connection ends matter),
// and rules read back equal to the rules sent.

package mcfault_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	mcfault "github.com/mcfault/mcfault/clients/go"
)

// rawConn is a plain TCP connection to the suite's proxy, closed when the
// test ends.
func rawConn(t *testing.T, local string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 3 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", suite.mf.ProxyAddr)
	if err != nil {
		t.Fatalf("dial the proxy from %q: %v", local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readToClose reads until the connection ends (or 5 s pass) and returns
// the bytes and how it ended: io.EOF for a FIN, ECONNRESET for a reset.
func readToClose(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			return got.Bytes(), err
		}
	}
}

// readReply reads until the bytes end with suffix and returns them and
// how many reads it took.
func readReply(t *testing.T, c net.Conn, suffix string) ([]byte, int) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got bytes.Buffer
	buf := make([]byte, 4096)
	reads := 0
	for !bytes.HasSuffix(got.Bytes(), []byte(suffix)) {
		n, err := c.Read(buf)
		reads++
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("after %q: %v", got.Bytes(), err)
		}
	}
	return got.Bytes(), reads
}

func send(t *testing.T, c net.Conn, cmd string) {
	t.Helper()
	if _, err := c.Write([]byte(cmd)); err != nil {
		t.Fatalf("write %q: %v", cmd, err)
	}
}

// valueReply is memcached's reply to "get key" for value.
func valueReply(key, value string) string {
	return fmt.Sprintf("VALUE %s 0 %d\r\n%s\r\nEND\r\n", key, len(value), value)
}

// addRules adds rules with the typed API and fails the test if refused.
func addRules(t *testing.T, c *mcfault.Client, rules ...mcfault.Rule) {
	t.Helper()
	if _, err := c.AddRules(ctx, mcfault.Rules(rules)); err != nil {
		t.Fatalf("AddRules: %v", err)
	}
}

func getRule(t *testing.T, c *mcfault.Client, name string) *mcfault.RuleInfo {
	t.Helper()
	r, err := c.GetRule(ctx, name)
	if err != nil {
		t.Fatalf("GetRule(%s): %v", name, err)
	}
	return r
}

func TestThrottleGivesTheValueBackSlowly(t *testing.T) {
	c, mc := fresh(t)
	value := strings.Repeat("t", 2000)
	mustSet(t, mc, "th:1", value)
	addRules(t, c, mcfault.Rule{Name: "throttle", Command: []string{"get", "gets"}, Key: []string{"th:*"},
		Action: mcfault.ActionThrottle, Rate: 10000})

	start := time.Now()
	got, err := getValue(mc, "th:1")
	elapsed := time.Since(start)
	if err != nil || got != value {
		t.Fatalf("throttled get: %d bytes, %v", len(got), err)
	}
	// 2 KB at 10 KB/s is about 200 ms; half of it, to allow for rounding.
	if elapsed < 100*time.Millisecond {
		t.Errorf("a 2 KB reply at 10000 B/s took %v", elapsed)
	}
	if r := getRule(t, c, "throttle"); r.Fired != 1 || r.Rate != 10000 {
		t.Errorf("rule after one get: %+v", r)
	}
}

func TestSliceGivesTheValueBackInPieces(t *testing.T) {
	c, mc := fresh(t)
	value := strings.Repeat("0123456789", 15)
	mustSet(t, mc, "sl:1", value)
	addRules(t, c, mcfault.Rule{Name: "slice", Command: []string{"get"}, Key: []string{"sl:*"},
		Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 16, Max: 16}, Interval: 30 * time.Millisecond})

	conn := rawConn(t, "")
	start := time.Now()
	send(t, conn, "get sl:1\r\n")
	got, reads := readReply(t, conn, "END\r\n")
	elapsed := time.Since(start)
	if want := valueReply("sl:1", value); string(got) != want {
		t.Errorf("sliced reply %q, want %q", got, want)
	}
	// 170 bytes in pieces of 16, 30 ms apart: 11 pieces over 300 ms.
	if reads < 2 {
		t.Errorf("the reply came in %d read(s)", reads)
	}
	if elapsed < 100*time.Millisecond {
		t.Errorf("11 pieces 30 ms apart took %v", elapsed)
	}

	// Pieces of 1 to 64 bytes, as gomemcache (gets) sees them: the value.
	addRules(t, c, mcfault.Rule{Name: "slice-range", Command: []string{"gets"}, Key: []string{"sl:*"},
		Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 1, Max: 64}, Interval: time.Millisecond})
	if v, err := getValue(mc, "sl:1"); err != nil || v != value {
		t.Errorf("gets through slice: %q, %v", v, err)
	}
	if r := getRule(t, c, "slice-range"); r.Fired != 1 {
		t.Errorf("slice-range fired %d times", r.Fired)
	}
}

func TestTruncateAndDropClose(t *testing.T) {
	c, mc := fresh(t)
	value := strings.Repeat("v", 1000)
	for _, k := range []string{"tr:fin", "tr:pct", "tr:rst", "dr:rst"} {
		mustSet(t, mc, k, value)
	}
	addRules(t, c,
		mcfault.Rule{Name: "fin", Command: []string{"get", "gets"}, Key: []string{"tr:fin"}, Action: mcfault.ActionTruncate,
			Keep: mcfault.KeepBytes(10), Close: mcfault.CloseFIN},
		mcfault.Rule{Name: "pct", Command: []string{"get", "gets"}, Key: []string{"tr:pct"}, Action: mcfault.ActionTruncate,
			Keep: mcfault.KeepPercent(50)},
		mcfault.Rule{Name: "rst", Command: []string{"get", "gets"}, Key: []string{"tr:rst"}, Action: mcfault.ActionTruncate,
			Keep: mcfault.KeepBytes(10), Close: mcfault.CloseReset},
		mcfault.Rule{Name: "drop-rst", Command: []string{"get", "gets"}, Key: []string{"dr:rst"}, Action: mcfault.ActionDrop,
			Close: mcfault.CloseReset},
	)

	full := valueReply("tr:fin", value)
	conn := rawConn(t, "")
	send(t, conn, "get tr:fin\r\n")
	got, err := readToClose(conn)
	if string(got) != full[:10] || err != io.EOF {
		t.Errorf("truncate to 10 bytes with a FIN: %q, %v; want %q, EOF", got, err, full[:10])
	}

	full = valueReply("tr:pct", value)
	conn = rawConn(t, "")
	send(t, conn, "get tr:pct\r\n")
	got, err = readToClose(conn)
	if string(got) != full[:len(full)/2] || err != io.EOF {
		t.Errorf("truncate to 50%%: %d bytes %q..., %v; want %d bytes, EOF", len(got), got[:min(len(got), 20)], err, len(full)/2)
	}

	full = valueReply("tr:rst", value)
	conn = rawConn(t, "")
	send(t, conn, "get tr:rst\r\n")
	got, err = readToClose(conn)
	// A reset may discard what was still unread: at most the 10 bytes.
	if !strings.HasPrefix(full[:10], string(got)) || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("truncate with a reset: %q, %v; want a prefix of %q, ECONNRESET", got, err, full[:10])
	}
	if _, err := getValue(memcacheClient(suite.mf.ProxyAddr), "tr:rst"); err == nil || err == memcache.ErrCacheMiss {
		t.Errorf("gomemcache through truncate: %v, want an error", err)
	}

	conn = rawConn(t, "")
	send(t, conn, "get dr:rst\r\n")
	got, err = readToClose(conn)
	if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("drop with a reset: %q, %v; want nothing, ECONNRESET", got, err)
	}

	for _, name := range []string{"fin", "pct", "rst", "drop-rst"} {
		if r := getRule(t, c, name); r.Fired == 0 {
			t.Errorf("rule %s never fired", name)
		}
	}
	if r := getRule(t, c, "pct"); r.Close != mcfault.CloseFIN {
		t.Errorf("pct read back with Close %q, want the default fin", r.Close)
	}
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}

func TestCorruptFlipsBitsOfTheStoredValue(t *testing.T) {
	c, mc := fresh(t)
	value := strings.Repeat("a", 64)
	addRules(t, c, mcfault.Rule{Name: "flip", Command: []string{"set"}, Key: []string{"cor:*"},
		Action: mcfault.ActionCorrupt, Flips: 3})
	mustSet(t, mc, "cor:1", value)
	mustSet(t, mc, "clean:1", value)

	for key, want := range map[string]int{"cor:1": 3, "clean:1": 0} {
		got, err := getValue(mc, key)
		if err != nil || len(got) != len(value) {
			t.Errorf("get %s: %q, %v", key, got, err)
			continue
		}
		flipped := 0
		for i := range got {
			flipped += bits.OnesCount8(got[i] ^ value[i])
		}
		if flipped != want {
			t.Errorf("get %s: %d bits differ from what was set, want %d: %q", key, flipped, want, got)
		}
	}
	// Stored corrupt: memcached itself has the bad value.
	up, err := c.UpstreamCommand(ctx, "get cor:1")
	if err != nil || up.Reply == valueReply("cor:1", value) || !strings.HasPrefix(up.Reply, "VALUE cor:1 0 64\r\n") {
		t.Errorf("memcached's own cor:1: %q, %v", up.Reply, err)
	}
	if r := getRule(t, c, "flip"); r.Fired != 1 || r.Flips != 3 {
		t.Errorf("rule: %+v", r)
	}
}

func TestEvictMakesTheKeyAMissForEveryone(t *testing.T) {
	c, mc := fresh(t)
	mustSet(t, mc, "ev:1", "one")
	mustSet(t, mc, "keep:1", "two")
	undo, err := c.Fault(ctx, mcfault.Rule{Name: "evict", Command: []string{"get", "gets"}, Key: []string{"ev:*"},
		Action: mcfault.ActionEvict})
	if err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, "")
	send(t, conn, "get ev:1 keep:1\r\n")
	if got, _ := readReply(t, conn, "END\r\n"); string(got) != "VALUE keep:1 0 3\r\ntwo\r\nEND\r\n" {
		t.Errorf("get ev:1 keep:1 with evict: %q, want keep:1 alone", got)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}
	// Without the rule, and past mcfault: gone.
	if _, err := getValue(mc, "ev:1"); err != memcache.ErrCacheMiss {
		t.Errorf("get ev:1 after the rule: %v, want a miss", err)
	}
	if up, err := c.UpstreamCommand(ctx, "get ev:1"); err != nil || up.Reply != "END\r\n" {
		t.Errorf("memcached's own ev:1: %q, %v", up.Reply, err)
	}
	if v, err := getValue(mc, "keep:1"); err != nil || v != "two" {
		t.Errorf("keep:1: %q, %v", v, err)
	}
}

func TestClientTargeting(t *testing.T) {
	c, mc := fresh(t)
	addRules(t, c, mcfault.Rule{Name: "only-2", Command: []string{"set"}, Client: []string{"127.0.0.2"},
		Action: mcfault.ActionError, Message: oomMessage})
	mustSet(t, mc, "cl:1", "from 127.0.0.1")
	r := getRule(t, c, "only-2")
	if r.Matched != 0 || r.Fired != 0 || !reflect.DeepEqual(r.Client, []string{"127.0.0.2/32"}) {
		t.Errorf("after a set from 127.0.0.1: %+v", r)
	}

	// From 127.0.0.2 (loopback on Linux) it fires.
	conn := rawConn(t, "127.0.0.2")
	send(t, conn, "set cl:2 0 0 1\r\nx\r\n")
	if got, _ := readReply(t, conn, "\r\n"); string(got) != oomMessage+"\r\n" {
		t.Errorf("set from 127.0.0.2: %q", got)
	}
	if r := getRule(t, c, "only-2"); r.Matched != 1 || r.Fired != 1 {
		t.Errorf("after a set from 127.0.0.2: %+v", r)
	}
}

func TestDataSizeTargeting(t *testing.T) {
	c, mc := fresh(t)
	const tooLarge = "SERVER_ERROR object too large for cache"
	addRules(t, c, mcfault.Rule{Name: "big-sets", Action: mcfault.ActionError, Message: tooLarge,
		DataSize: &mcfault.ByteRange{Min: 1000, Max: mcfault.NoLimit}})
	mustSet(t, mc, "ds:small", strings.Repeat("s", 999))
	err := mc.Set(&memcache.Item{Key: "ds:big", Value: []byte(strings.Repeat("b", 1000))})
	if err == nil || !strings.Contains(err.Error(), tooLarge) {
		t.Errorf("a 1000-byte set: %v, want %q", err, tooLarge)
	}
	if v, err := getValue(mc, "ds:small"); err != nil || len(v) != 999 {
		t.Errorf("get ds:small: %d bytes, %v", len(v), err)
	}
	r := getRule(t, c, "big-sets")
	if r.Matched != 1 || r.Fired != 1 || !reflect.DeepEqual(r.DataSize, &mcfault.ByteRange{Min: 1000, Max: mcfault.NoLimit}) {
		t.Errorf("rule after a small set, a big set and a get: %+v (DataSize %+v)", r, r.DataSize)
	}
}

func TestConnectRules(t *testing.T) {
	c, _ := fresh(t)
	addRules(t, c, mcfault.Rule{Name: "refuse", Command: []string{mcfault.Connect}, Action: mcfault.ActionError, Limit: 1})
	conn := rawConn(t, "")
	got, err := readToClose(conn)
	if string(got) != "ERROR Too many open connections\r\n" || err != io.EOF {
		t.Errorf("a new connection: %q, %v", got, err)
	}
	r := getRule(t, c, "refuse")
	want := mcfault.Rule{Name: "refuse", Command: []string{"connect"}, Action: mcfault.ActionError,
		Message: "ERROR Too many open connections", Probability: 1, Limit: 1}
	if r.Fired != 1 || !reflect.DeepEqual(r.Rule, want) {
		t.Errorf("read back: %#v (fired %d)\nwant %#v", r.Rule, r.Fired, want)
	}
	// Past its limit, connections are served.
	conn = rawConn(t, "")
	send(t, conn, "version\r\n")
	if got, _ := readReply(t, conn, "\r\n"); !strings.HasPrefix(string(got), "VERSION ") {
		t.Errorf("past the limit: %q", got)
	}

	addRules(t, c, mcfault.Rule{Name: "reset", Command: []string{"CONNECT"}, Action: mcfault.ActionDrop, Close: mcfault.CloseReset})
	// The reset may come while Dial still checks the socket.
	if conn, err := net.DialTimeout("tcp", suite.mf.ProxyAddr, 3*time.Second); err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("dial with a reset rule: %v", err)
		}
	} else {
		got, err := readToClose(conn)
		conn.Close()
		if len(got) != 0 || !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("a new connection with a reset rule: %q, %v", got, err)
		}
	}
	// The rule read back is sent again as it is (it has no key).
	r = getRule(t, c, "reset")
	if r.Key != nil || r.Close != mcfault.CloseReset {
		t.Errorf("reset read back: %#v", r.Rule)
	}
	if _, err := c.RemoveRule(ctx, "reset"); err != nil {
		t.Fatal(err)
	}
	addRules(t, c, r.Rule)
	if again := getRule(t, c, "reset"); !reflect.DeepEqual(again.Rule, r.Rule) {
		t.Errorf("sent again:\n got %#v\nwant %#v", again.Rule, r.Rule)
	}
}

func TestScheduleInForce(t *testing.T) {
	c, mc := fresh(t)
	later := &mcfault.Schedule{Start: time.Hour, Duration: time.Second}
	now := &mcfault.Schedule{Duration: time.Hour}
	blink := &mcfault.Schedule{Start: 10 * time.Minute, Duration: 2 * time.Second, Every: 30 * time.Minute}
	addRules(t, c,
		mcfault.Rule{Name: "later", Command: []string{"set"}, Key: []string{"sch:later"}, Action: mcfault.ActionError,
			Message: oomMessage, Schedule: later},
		mcfault.Rule{Name: "now", Command: []string{"set"}, Key: []string{"sch:now"}, Action: mcfault.ActionError,
			Message: oomMessage, Schedule: now},
		mcfault.Rule{Name: "blink", Key: []string{"sch:none"}, Action: mcfault.ActionDrop, Schedule: blink},
	)
	mustSet(t, mc, "sch:later", "x")
	if err := mc.Set(&memcache.Item{Key: "sch:now", Value: []byte("x")}); err == nil || !strings.Contains(err.Error(), oomMessage) {
		t.Errorf("set sch:now, in force: %v", err)
	}
	for _, tc := range []struct {
		name     string
		schedule *mcfault.Schedule
		inForce  bool
		lo, hi   time.Duration // NextChange within (lo, hi]
	}{
		{"later", later, false, 59 * time.Minute, time.Hour},
		{"now", now, true, 59 * time.Minute, time.Hour},
		{"blink", blink, false, 9 * time.Minute, 10 * time.Minute},
	} {
		r := getRule(t, c, tc.name)
		if !reflect.DeepEqual(r.Schedule, tc.schedule) || r.InForce != tc.inForce || r.NextChange == nil ||
			*r.NextChange <= tc.lo || *r.NextChange > tc.hi {
			t.Errorf("%s: schedule %+v, in force %v, next change %v", tc.name, r.Schedule, r.InForce, r.NextChange)
		}
	}
	if r := getRule(t, c, "later"); r.Matched != 0 {
		t.Errorf("later matched %d commands out of force", r.Matched)
	}
	st, err := c.Stats(ctx)
	if err != nil || len(st.Proxies) != 1 || len(st.Proxies[0].Rules) != 3 || st.Proxies[0].Rules[0].InForce ||
		!st.Proxies[0].Rules[1].InForce {
		t.Errorf("stats: %+v, %v", st, err)
	}
}

// Typed rules with every new field, sent, read back equal, and sent again
// from what was read back.
func TestNewRulesRoundTrip(t *testing.T) {
	c, _ := fresh(t)
	star := []string{"*"}
	lan := []string{"10.0.0.0/8"} // no client of this test: the rules never fire
	sent := mcfault.Rules{
		{Name: "rt-throttle", Command: []string{"get", "gets"}, Key: []string{"rt:*"}, Action: mcfault.ActionThrottle,
			Rate: 1 << 20, Probability: 1, Client: []string{"10.1.0.0/16", "fd00::/8"}},
		{Name: "rt-slice", Command: star, Key: star, Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 4, Max: 64},
			Interval: 2500 * time.Microsecond, Probability: 0.5, Connections: 0.25, Client: lan},
		{Name: "rt-slice-fixed", Command: star, Key: star, Action: mcfault.ActionSlice, Size: mcfault.ByteRange{Min: 1, Max: 1},
			Interval: time.Millisecond, Probability: 1, Client: lan},
		{Name: "rt-truncate", Command: []string{"get"}, Key: []string{"t*"}, Action: mcfault.ActionTruncate,
			Keep: mcfault.KeepPercent(12.5), Close: mcfault.CloseReset, Probability: 1, After: 3, Limit: 4, Client: lan},
		{Name: "rt-truncate-none", Command: star, Key: star, Action: mcfault.ActionTruncate, Keep: mcfault.KeepBytes(0),
			Close: mcfault.CloseFIN, Probability: 1, Disabled: true},
		{Name: "rt-corrupt", Command: []string{"set", "ms"}, Key: star, Action: mcfault.ActionCorrupt, Flips: 7,
			Probability: 1, DataSize: &mcfault.ByteRange{Min: 10, Max: mcfault.NoLimit}, Client: lan},
		{Name: "rt-evict", Command: star, Key: []string{"e:*"}, Action: mcfault.ActionEvict, Probability: 1,
			DataSize: &mcfault.ByteRange{Min: 0, Max: 4096}, Client: lan,
			Schedule: &mcfault.Schedule{Start: time.Hour, Duration: 90 * time.Second, Every: 2 * time.Hour}},
		{Name: "rt-drop", Command: star, Key: star, Action: mcfault.ActionDrop, Close: mcfault.CloseReset, Probability: 1,
			Client: lan, Schedule: &mcfault.Schedule{}},
		{Name: "rt-error", Command: []string{"set"}, Key: star, Action: mcfault.ActionError, Message: oomMessage,
			Probability: 1, Forward: true, DataSize: &mcfault.ByteRange{}, Client: lan},
		{Name: "rt-connect", Command: []string{"connect"}, Action: mcfault.ActionError, Message: "ERROR go away",
			Probability: 0.75, Client: lan, Connections: 0.5},
		{Name: "rt-connect-drop", Command: []string{"connect"}, Action: mcfault.ActionDrop, Close: mcfault.CloseReset,
			Probability: 1, Client: lan, Schedule: &mcfault.Schedule{Start: 5 * time.Second}},
	}
	if ch, err := c.AddRules(ctx, sent); err != nil || ch.Added != len(sent) {
		t.Fatalf("AddRules: %+v, %v", ch, err)
	}
	readBack := func() mcfault.Rules {
		t.Helper()
		infos, err := c.Rules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rules := mcfault.Rules{}
		for _, r := range infos {
			rules = append(rules, r.Rule)
		}
		return rules
	}
	compare := func(what string, got mcfault.Rules) {
		t.Helper()
		if len(got) != len(sent) {
			t.Fatalf("%s: %d rules, want %d", what, len(got), len(sent))
		}
		for i := range sent {
			if !reflect.DeepEqual(got[i], sent[i]) {
				t.Errorf("%s, rule %s:\n got %#v\nwant %#v", what, sent[i].Name, got[i], sent[i])
			}
		}
	}
	first := readBack()
	compare("read back", first)

	// What was read back, sent again (PUT), reads back the same.
	if ch, err := c.SetRules(ctx, first); err != nil || ch.Rules != len(sent) {
		t.Fatalf("SetRules of the rules read back: %+v, %v", ch, err)
	}
	compare("read back after sending them again", readBack())
}

// Helpers for tests: a fault for the length of a function or a test
// (Fault, WithFault), and waiting for mcfault to come up (WaitHealthy).

package mcfault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Fault adds rules after the current ones (POST /rules) and returns a func
// that removes exactly those, by name (DELETE /rules/NAME), leaving the
// rules that were there before as they were:
//
//	undo, err := client.Fault(ctx, mcfault.Rule{Key: []string{"user:*"}, Action: mcfault.ActionMiss})
//	if err != nil { ... }
//	defer undo()
//
// A rule without a Name is given a unique one ("fault-1a2b3c4d-1").
// undo runs once (later calls return nil) on a context of its own bounded
// by the client's timeout, so it works after ctx has ended; a rule already
// gone (a Reset, a ClearRules) is not an error. When Fault fails nothing
// was added, and the undo it returns does nothing. When mcfault runs
// several proxies, call it on client.Proxy(name): the rules go to that
// proxy and are removed from it (without one, mcfault refuses: ErrInvalid).
func (c *Client) Fault(ctx context.Context, rules ...Rule) (undo func() error, err error) {
	noop := func() error { return nil }
	if len(rules) == 0 {
		return noop, errors.New("mcfault: Fault: no rules")
	}
	named := make(Rules, len(rules))
	copy(named, rules)
	var prefix string
	for i := range named {
		if named[i].Name != "" {
			continue
		}
		if prefix == "" {
			if prefix, err = uniquePrefix(); err != nil {
				return noop, err
			}
		}
		named[i].Name = prefix + "-" + strconv.Itoa(i+1)
	}
	if _, err := c.AddRules(ctx, named); err != nil {
		return noop, err
	}
	var once sync.Once
	var undoErr error
	return func() error {
		once.Do(func() { undoErr = c.removeAll(named) })
		return undoErr
	}, nil
}

// removeAll removes each rule by name, carrying on past failures, and
// returns the first.
func (c *Client) removeAll(rules Rules) error {
	var first error
	for _, r := range rules {
		// Each removal gets the client's timeout (or, with none, a
		// bound of its own): the caller's context may be over.
		timeout := c.timeout
		if timeout <= 0 {
			timeout = DefaultTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_, err := c.RemoveRule(ctx, r.Name)
		cancel()
		if err != nil && !errors.Is(err, ErrNotFound) && first == nil {
			first = fmt.Errorf("mcfault: removing fault rule %q: %w", r.Name, err)
		}
	}
	return first
}

func uniquePrefix() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mcfault: naming fault rules: %w", err)
	}
	return "fault-" + hex.EncodeToString(b[:]), nil
}

// TB is the part of testing.TB that WithFault uses; *testing.T and
// *testing.B satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// WithFault applies rules for the rest of the test t, as Fault does, and
// removes them when t and its subtests end, passed or failed (t.Cleanup).
// A refused rule fails t at once (t.Fatalf); a failed removal fails it
// (t.Errorf). Each call is bounded by the client's timeout.
//
//	mcfault.WithFault(t, client, mcfault.Rule{Command: []string{"set"}, Action: mcfault.ActionError,
//		Message: "SERVER_ERROR out of memory storing object"})
func WithFault(t TB, c *Client, rules ...Rule) {
	t.Helper()
	ctx := context.Background()
	if c.timeout <= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	undo, err := c.Fault(ctx, rules...)
	if err != nil {
		t.Fatalf("mcfault.WithFault: %v", err)
		return
	}
	t.Cleanup(func() {
		if err := undo(); err != nil {
			t.Errorf("mcfault.WithFault: %v", err)
		}
	})
}

// WaitHealthy polls Health every 50 ms until mcfault answers that every
// proxy reaches its memcached, and returns nil; or returns the last
// failure when ctx ends. Give ctx a deadline: it is the only bound.
func (c *Client) WaitHealthy(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		h, err := c.Health(ctx)
		if err == nil && h.OK {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("mcfault: not healthy: %+v", h.Proxies)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mcfault: waiting for health: %w (last: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

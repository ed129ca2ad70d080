//go:build integration

// The processes the integration tests run: a real memcached and real
// mcfault instances on free loopback ports, stopped at the end and checked
// for sanitizer reports. One suite-wide mcfault is started in TestMain.

package mcfault_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	mcfault "github.com/mcfault/mcfault/clients/go"
	"github.com/mcfault/mcfault/clients/go/mcfaulttest"
)

// startTimeout bounds how long memcached may take to come up on two busy
// shared cores.
const startTimeout = 15 * time.Second

// suite is the mcfault shared by the tests, reset between them.
var suite struct {
	mcfaultBin string
	mc         *memcachedProc
	mf         *mcfaulttest.Server
	hasReset   bool // this mcfault has POST /reset
}

func TestMain(m *testing.M) {
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration suite:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	bin := os.Getenv("MCFAULT_BIN")
	if bin == "" {
		bin = filepath.Join("..", "..", "build", "mcfault") // from clients/go
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return 1, err
	}
	if _, err := os.Stat(abs); err != nil {
		return 1, fmt.Errorf("mcfault binary (MCFAULT_BIN): %w", err)
	}
	suite.mcfaultBin = abs
	fmt.Fprintf(os.Stderr, "integration suite: mcfault %s, memcached %s\n", abs, memcachedBin())

	if suite.mc, err = startMemcached(); err != nil {
		return 1, err
	}
	defer suite.mc.stop()
	if suite.mf, err = startMcfault(suite.mc.addr, ""); err != nil {
		return 1, err
	}
	_, err = suite.mf.Client.Reset(context.Background())
	suite.hasReset = !missing(err)
	code := m.Run()
	if err := stopMcfault(suite.mf); err != nil {
		return 1, err
	}
	return code, nil
}

func memcachedBin() string {
	if b := os.Getenv("MEMCACHED_BIN"); b != "" {
		return b
	}
	return "/usr/bin/memcached"
}

// handedOut keeps freePort from giving one port twice in this process.
var handedOut sync.Map

// freePort is a loopback TCP port that nothing listens on right now.
func freePort() (int, error) {
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// memcachedProc is a memcached started for the tests.
type memcachedProc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	addr string
}

func startMemcached() (*memcachedProc, error) {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-m", "64"}
		if os.Geteuid() == 0 {
			args = append(args, "-u", "nobody") // memcached refuses root
		}
		p := &memcachedProc{cmd: exec.Command(memcachedBin(), args...), done: make(chan struct{}),
			addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
		var stderr bytes.Buffer
		p.cmd.Stderr = &stderr
		p.cmd.SysProcAttr = childAttr()
		if err := p.cmd.Start(); err != nil {
			return nil, err
		}
		go func() { p.cmd.Wait(); close(p.done) }()
		if err := waitListening(p.addr, p.done); err != nil {
			p.stop()
			last = fmt.Errorf("memcached on %s: %v: %s", p.addr, err, stderr.String())
			continue
		}
		return p, nil
	}
	return nil, last
}

func (p *memcachedProc) stop() {
	p.cmd.Process.Kill()
	<-p.done
}

// waitListening dials addr until it accepts or done is closed (the
// process exited).
func waitListening(addr string, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-done:
			return errors.New("exited")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return errors.New("not listening in time")
}

// newMcfault starts an mcfault of the test's own (mcfaulttest.Start),
// stopped and checked when the test ends.
func newMcfault(t *testing.T, upstream, config string, extra ...string) (*mcfaulttest.Server, *mcfault.Client) {
	t.Helper()
	s, err := startMcfault(upstream, config, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stopMcfault(s); err != nil {
			t.Error(err)
		}
	})
	return s, s.Client
}

// startMcfault runs the mcfault under test with its admin API and proxy on
// free loopback ports; --grace 0 so that a hung connection does not hold
// up its exit.
func startMcfault(upstream, config string, extra ...string) (*mcfaulttest.Server, error) {
	return mcfaulttest.Start(mcfaulttest.Options{
		Bin:           suite.mcfaultBin,
		Upstream:      upstream,
		Config:        config,
		Args:          append([]string{"--grace", "0"}, extra...),
		ClientOptions: []mcfault.Option{mcfault.WithTimeout(5 * time.Second)},
	})
}

// stopMcfault stops s; an exit other than 0 or a sanitizer's report in its
// log is an error.
func stopMcfault(s *mcfaulttest.Server) error {
	if err := s.Close(); err != nil {
		return err
	}
	for _, marker := range []string{"Sanitizer", "runtime error"} {
		if strings.Contains(s.Log(), marker) {
			return fmt.Errorf("mcfault's log has a sanitizer report: %s", s.Log())
		}
	}
	return nil
}

// fresh readies the suite's mcfault for a test: back to a fresh start
// (mcfaulttest's Reset; DELETE /rules where the binary has no POST /reset
// yet). It returns the client and a memcached client through the proxy.
func fresh(t *testing.T) (*mcfault.Client, *memcache.Client) {
	t.Helper()
	mc := memcacheClient(suite.mf.ProxyAddr)
	if suite.hasReset {
		return suite.mf.Reset(t), mc
	}
	if _, err := suite.mf.Client.ClearRules(ctx); err != nil {
		t.Fatalf("clear rules: %v", err)
	}
	return suite.mf.Client, mc
}

// memcacheClient is a gomemcache client of addr with a timeout long enough
// for the delays the tests inject.
func memcacheClient(addr string) *memcache.Client {
	mc := memcache.New(addr)
	mc.Timeout = 3 * time.Second
	return mc
}

// missing reports whether err says the binary lacks the endpoint (mcfault
// before the issue-10 endpoints).
func missing(err error) bool {
	var apiErr *mcfault.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.Status == 405 || (apiErr.Status == 404 && strings.HasPrefix(apiErr.Message, "no such endpoint")))
}

// skipIfMissing skips the test when err says the binary lacks the
// endpoint, or fails it when MCFAULT_REQUIRE_ALL_ENDPOINTS is set (once
// every mcfault in use has them).
func skipIfMissing(t *testing.T, what string, err error) {
	t.Helper()
	if !missing(err) {
		return
	}
	if os.Getenv("MCFAULT_REQUIRE_ALL_ENDPOINTS") != "" {
		t.Fatalf("this mcfault has no %s: %v", what, err)
	}
	t.Skipf("this mcfault has no %s yet: %v", what, err)
}

// needReset skips the test when the suite's mcfault has no POST /reset.
func needReset(t *testing.T) {
	t.Helper()
	if !suite.hasReset {
		skipIfMissing(t, "POST /reset", &mcfault.APIError{Status: 404, Message: "no such endpoint: /reset"})
	}
}

// need skips the test when err says the binary lacks the endpoint, and
// fails it on any other error.
func need(t *testing.T, what string, err error) {
	t.Helper()
	skipIfMissing(t, what, err)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// silentListener accepts connections and never answers: an admin API or a
// memcached that hangs.
func silentListener(t *testing.T) string {
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
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// writeText replaces the file at path with text.
func writeText(path, text string) error {
	return os.WriteFile(path, []byte(text), 0o644)
}

// writeFile writes a rule file into the test's temporary directory.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// Runs an mcfault for a test suite, as net/http/httptest runs an HTTP
// server: started once in TestMain on free loopback ports, reset by each
// test, stopped at the end.

// Package mcfaulttest gives a Go test suite one mcfault to share: Start
// runs the binary on free loopback ports, FromEnv also accepts one already
// running (a container, a CI service), and Reset gives each test a fresh
// start.
//
//	var srv *mcfaulttest.Server
//
//	func TestMain(m *testing.M) {
//		var err error
//		if srv, err = mcfaulttest.FromEnv(mcfaulttest.Options{}); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		srv.Close()
//		os.Exit(code)
//	}
package mcfaulttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	mcfault "github.com/mcfault/mcfault/clients/go"
)

// DefaultStartTimeout bounds how long Start waits for the admin API to
// answer: an mcfault built with sanitizers on a busy CI machine is slow.
const DefaultStartTimeout = 15 * time.Second

// startAttempts: a free port found by binding port 0 can be taken by
// another process before mcfault binds it; Start then tries new ports.
const startAttempts = 3

// Options says which mcfault to start. The zero value starts "mcfault"
// from $MCFAULT_BIN or $PATH in front of memcached at $MCFAULT_UPSTREAM or
// 127.0.0.1:11211.
type Options struct {
	// Bin is the mcfault binary; "" means $MCFAULT_BIN, else "mcfault"
	// on $PATH.
	Bin string
	// Upstream is memcached's HOST:PORT (-u). "" means $MCFAULT_UPSTREAM;
	// when that is unset too, 127.0.0.1:11211, unless Config is set:
	// then the rule file says where to listen and where memcached is
	// (the proxies: form needs that).
	Upstream string
	// Config is a rule file (-c), for Reload and for what Reset restores.
	Config string
	// Args are more flags, such as "-v" or "--event-log", FILE.
	Args []string
	// StartTimeout: 0 means DefaultStartTimeout.
	StartTimeout time.Duration
	// ClientOptions configure Server.Client.
	ClientOptions []mcfault.Option
}

// A Server is an mcfault for the tests: one Start ran, or one already
// running that FromEnv found.
type Server struct {
	// AdminURL is the admin API, "http://127.0.0.1:PORT".
	AdminURL string
	// ProxyAddr is where the memcached client under test connects: the
	// first proxy's listen address.
	ProxyAddr string
	// Client talks to the admin API.
	Client *mcfault.Client

	cmd     *exec.Cmd // nil when the mcfault was already running
	done    chan struct{}
	logPath string
	once    sync.Once
	log     string
	err     error
}

// Start runs mcfault with its admin API on a free loopback port and (unless
// a rule file gives the addresses) its proxy on another, and waits until
// the admin API answers. Close stops it.
func Start(opts Options) (*Server, error) {
	bin := opts.Bin
	if bin == "" {
		bin = os.Getenv("MCFAULT_BIN")
	}
	if bin == "" {
		bin = "mcfault"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("mcfaulttest: mcfault binary: %w", err)
	}
	upstream := opts.Upstream
	if upstream == "" {
		upstream = os.Getenv("MCFAULT_UPSTREAM")
	}
	if upstream == "" && opts.Config == "" {
		upstream = "127.0.0.1:11211"
	}
	var last error
	for attempt := 0; attempt < startAttempts; attempt++ {
		s, err := start(path, upstream, opts)
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func start(bin, upstream string, opts Options) (*Server, error) {
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--admin", "127.0.0.1:" + strconv.Itoa(adminPort)}
	if upstream != "" {
		listenPort, err := freePort()
		if err != nil {
			return nil, err
		}
		args = append(args, "-l", "127.0.0.1:"+strconv.Itoa(listenPort), "-u", upstream)
	}
	if opts.Config != "" {
		args = append(args, "-c", opts.Config)
	}
	args = append(args, opts.Args...)

	log, err := os.CreateTemp("", "mcfaulttest-*.log")
	if err != nil {
		return nil, fmt.Errorf("mcfaulttest: %w", err)
	}
	s := &Server{AdminURL: "http://127.0.0.1:" + strconv.Itoa(adminPort), logPath: log.Name(),
		done: make(chan struct{})}
	s.Client = mcfault.New(s.AdminURL, opts.ClientOptions...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	s.cmd.SysProcAttr = childAttr()
	err = s.cmd.Start()
	log.Close()
	if err != nil {
		os.Remove(s.logPath)
		return nil, fmt.Errorf("mcfaulttest: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()

	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	probe := mcfault.New(s.AdminURL, mcfault.WithTimeout(time.Second))
	deadline := time.Now().Add(timeout)
	for {
		// Up when /health answers, 200 or 503 alike: a memcached that
		// is not up yet is the suite's business.
		if h, err := probe.Health(context.Background()); err == nil && len(h.Proxies) > 0 {
			s.ProxyAddr = h.Proxies[0].Listen
			return s, nil
		}
		select {
		case <-s.done:
			log := s.readLog()
			os.Remove(s.logPath)
			return nil, fmt.Errorf("mcfaulttest: %s %s exited at start: %s", bin, strings.Join(args, " "), log)
		case <-time.After(30 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Close()
			return nil, fmt.Errorf("mcfaulttest: %s %s: admin API not up within %v: %s",
				bin, strings.Join(args, " "), timeout, s.Log())
		}
	}
}

// FromEnv uses the mcfault at $MCFAULT_ADMIN when it is set (a container,
// a CI service: its proxy address is $MCFAULT_PROXY, else the listen
// address /health reports) after resetting it; otherwise it Starts one
// with opts.
func FromEnv(opts Options) (*Server, error) {
	admin := os.Getenv("MCFAULT_ADMIN")
	if admin == "" {
		return Start(opts)
	}
	s := &Server{Client: mcfault.New(admin, opts.ClientOptions...)}
	s.AdminURL = strings.TrimRight(admin, "/")
	if !strings.Contains(s.AdminURL, "://") {
		s.AdminURL = "http://" + s.AdminURL
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var h *mcfault.Health
	var err error
	for {
		if h, err = s.Client.Health(ctx); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("mcfaulttest: MCFAULT_ADMIN=%s: %w", admin, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.ProxyAddr = os.Getenv("MCFAULT_PROXY")
	if s.ProxyAddr == "" && len(h.Proxies) > 0 {
		s.ProxyAddr = h.Proxies[0].Listen
	}
	if _, err := s.Client.Reset(ctx); err != nil {
		return nil, fmt.Errorf("mcfaulttest: MCFAULT_ADMIN=%s: %w", admin, err)
	}
	return s, nil
}

// Reset brings the mcfault back to a fresh start (POST /reset: the rule
// file's rules, counters and events zeroed) for the test t, and returns
// the client. Call it first in each test that shares the Server; a failed
// reset fails t at once.
func (s *Server) Reset(t mcfault.TB) *mcfault.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mcfault.DefaultTimeout)
	defer cancel()
	if _, err := s.Client.Reset(ctx); err != nil {
		t.Fatalf("mcfaulttest: reset: %v", err)
	}
	return s.Client
}

// Close stops an mcfault that Start ran (SIGTERM, then SIGKILL after 10 s)
// and reports an exit other than 0 with its log. For an mcfault that
// FromEnv found running, it does nothing. Later calls return the same.
func (s *Server) Close() error {
	if s.cmd == nil {
		return nil
	}
	s.once.Do(func() {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
			s.err = errors.New("mcfaulttest: mcfault did not stop on SIGTERM")
		}
		s.log = s.readLog()
		os.Remove(s.logPath)
		if code := s.cmd.ProcessState.ExitCode(); code != 0 && s.err == nil {
			s.err = fmt.Errorf("mcfaulttest: mcfault exited with %d: %s", code, s.log)
		}
	})
	return s.err
}

// Log is what the mcfault that Start ran has written to stdout and stderr
// so far (all of it after Close); "" for one FromEnv found running.
func (s *Server) Log() string {
	if s.cmd == nil {
		return ""
	}
	select {
	case <-s.done:
		if s.log != "" || s.logPath == "" {
			return s.log
		}
	default:
	}
	return s.readLog()
}

func (s *Server) readLog() string {
	b, _ := os.ReadFile(s.logPath)
	return string(b)
}

// handedOut keeps freePort from handing out one port twice in a process.
var handedOut sync.Map

// freePort is a loopback TCP port nothing listens on right now.
func freePort() (int, error) {
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("mcfaulttest: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, taken := handedOut.LoadOrStore(port, true); !taken {
			return port, nil
		}
	}
	return 0, errors.New("mcfaulttest: no free port")
}

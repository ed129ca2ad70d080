// The errors a call returns: *APIError when mcfault answered with an
// error status, *ConnectionError or *TimeoutError when no answer came.
// Test for a kind with errors.Is(err, ErrNotFound) and the like.

package mcfault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Kinds of failure, for errors.Is.
var (
	// ErrInvalid: mcfault refused the request as malformed (400): a bad
	// rule or document (see APIError.Problems), a bad upstream command.
	ErrInvalid = errors.New("mcfault: invalid request")
	// ErrNotFound: no such rule or proxy (404).
	ErrNotFound = errors.New("mcfault: not found")
	// ErrConflict: the request conflicts with the state (409): a rule
	// name already taken, a reload without a rule file.
	ErrConflict = errors.New("mcfault: conflict")
	// ErrUpstream: mcfault could not get memcached's answer (502, or
	// 504 when memcached did not answer in time).
	ErrUpstream = errors.New("mcfault: upstream failed")
	// ErrConnection: the admin API could not be reached, or the
	// connection failed before a whole reply came.
	ErrConnection = errors.New("mcfault: admin API unreachable")
	// ErrTimeout: the call ran past the client's timeout or the
	// context's deadline.
	ErrTimeout = errors.New("mcfault: timed out")
)

// APIError is an error status from mcfault: the status, the "error"
// message, and for a refused rule change the "problems", each
// "body:LINE:COL: ..." (or "FILE:LINE:COL: ..." for the rule file).
type APIError struct {
	Method   string // the request, "PUT"
	Path     string // "/rules"
	Status   int
	Message  string
	Problems []string
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "mcfault: %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
	if len(e.Problems) > 0 {
		b.WriteString(": ")
		b.WriteString(strings.Join(e.Problems, "; "))
	}
	return b.String()
}

// Is matches the kind of failure the status means: ErrInvalid (400),
// ErrNotFound (404), ErrConflict (409), ErrUpstream (502, 504).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrUpstream:
		return e.Status == http.StatusBadGateway || e.Status == http.StatusGatewayTimeout
	}
	return false
}

// ConnectionError: the request got no HTTP answer (connection refused or
// reset, a bad URL, the context canceled). Err is the cause.
type ConnectionError struct {
	Method string
	URL    string
	Err    error
}

func (e *ConnectionError) Error() string {
	return fmt.Sprintf("mcfault: %s %s: cannot reach the admin API: %v", e.Method, e.URL, e.Err)
}

func (e *ConnectionError) Unwrap() error { return e.Err }

// Is matches ErrConnection.
func (e *ConnectionError) Is(target error) bool { return target == ErrConnection }

// TimeoutError: the call ran past the client's timeout (Timeout) or the
// context's deadline before the whole reply came. It matches ErrTimeout
// and context.DeadlineExceeded, and its Timeout method reports true as a
// net.Error's does.
type TimeoutError struct {
	Method string
	URL    string
	Limit  time.Duration // the client's timeout; 0 when it had none
	Err    error
}

func (e *TimeoutError) Error() string {
	if e.Limit > 0 {
		return fmt.Sprintf("mcfault: %s %s: no answer within %v (or the context's deadline): %v",
			e.Method, e.URL, e.Limit, e.Err)
	}
	return fmt.Sprintf("mcfault: %s %s: no answer before the context's deadline: %v", e.Method, e.URL, e.Err)
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// Timeout reports true, as net.Error does for a timeout.
func (e *TimeoutError) Timeout() bool { return true }

// Is matches ErrTimeout and context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

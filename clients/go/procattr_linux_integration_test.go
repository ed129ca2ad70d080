//go:build integration && linux

package mcfault_test

import "syscall"

// childAttr makes the kernel kill the memcached the tests start when the
// test binary dies, so an interrupted run leaves none behind.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

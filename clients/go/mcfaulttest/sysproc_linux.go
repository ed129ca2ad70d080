// Linux: the kernel kills the mcfault a test started when the test binary
// dies, so that an interrupted run leaves none behind.

package mcfaulttest

import "syscall"

func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

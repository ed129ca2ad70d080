//go:build !linux

// Elsewhere there is no parent-death signal: Close stops the mcfault.

package mcfaulttest

import "syscall"

func childAttr() *syscall.SysProcAttr { return nil }

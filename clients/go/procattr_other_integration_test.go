//go:build integration && !linux

package mcfault_test

import "syscall"

// childAttr: no parent-death signal outside Linux; TestMain stops
// memcached itself.
func childAttr() *syscall.SysProcAttr { return nil }

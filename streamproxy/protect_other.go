//go:build !linux

package main

// protectFromChildren has nothing to do where there is no /proc to read another process's environment from.
func protectFromChildren() error { return nil }

//go:build !linux

package main

// protectFromChildren does nothing outside Linux, where streamproxy is deployed: on a development machine its
// children can read its environment.
func protectFromChildren() error { return nil }

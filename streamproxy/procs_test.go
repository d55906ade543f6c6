package main

import (
	"runtime"
	"testing"
)

// The proxy runs on one processor unless the operator's GOMAXPROCS says otherwise.
func TestOneProcUnlessGOMAXPROCSIsSet(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })

	runtime.GOMAXPROCS(2)
	t.Setenv("GOMAXPROCS", "2")
	oneProc()
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Errorf("with GOMAXPROCS=2 set: %d processors, want 2", n)
	}
	t.Setenv("GOMAXPROCS", "")
	oneProc()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("with GOMAXPROCS unset: %d processors, want 1", n)
	}
}

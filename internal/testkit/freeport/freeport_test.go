package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestPickIsBelowTheEphemeralRangeAndNeverRepeats(t *testing.T) {
	lo, hi := window()
	seen := map[int]bool{}
	for i := 0; i < 200; i++ {
		p, err := Pick()
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Fatalf("port %d is outside [%d, %d)", p, lo, hi)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	// A port held by a listener is never picked.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if eph := l.Addr().(*net.TCPAddr).Port; eph >= lo && eph < hi {
		t.Fatalf("the kernel's port 0 gave %d, inside the window [%d, %d)", eph, lo, hi)
	}
	p, _ := Pick()
	l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("picked port %d cannot be bound: %v", p, err)
	}
	l2.Close()
}

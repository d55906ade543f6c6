// Package freeport picks loopback ports for servers that a test or the dev stack starts and that must be told their
// port before they listen (Traefik, Redis, Hydra, the gateway's own binaries).
//
// A port found free by listening on port 0 is an ephemeral port: between its pick and the server's bind, any
// outgoing connection (their local ports come from the same range) or any other listener on port 0 may take it,
// which made servers fail with "address already in use" now and then. Ports are therefore picked below the
// kernel's ephemeral range, where neither lands, and never twice in one process.
package freeport

import (
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Pick returns a port on 127.0.0.1 that is free now, outside the ephemeral range, and not handed out before by
// this process.
func Pick() (int, error) {
	lo, hi := window()
	mu.Lock()
	defer mu.Unlock()
	start := lo + rand.IntN(hi-lo)
	for i := 0; i < hi-lo; i++ {
		p := lo + (start-lo+i)%(hi-lo)
		if handed[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		_ = l.Close()
		handed[p] = true
		return p, nil
	}
	return 0, errors.New("no free port below the ephemeral range")
}

// window is the range picked from: the 10,000 ports below the kernel's ephemeral range (Linux's default starts at
// 32768), not under 1024.
func window() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				hi = n
			}
		}
	}
	lo = max(hi-10000, 1024)
	return lo, hi
}

package fakegithub

import (
	"fmt"
	"net"
	"net/http/httptest"
	"testing"
)

// Start serves a fake GitHub on a loopback port until the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("fakegithub: %v", err)
	}
	ts := httptest.NewServer(s) // httptest listens on 127.0.0.1
	t.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// CheckLoopback refuses a listen address that is not on loopback: the fake logs anyone in without a password.
// Host names other than localhost are refused too, since they may resolve to anything.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q is not host:port: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("refusing to listen on %q: the fake GitHub logs anyone in without a password, so it listens on "+
		"a loopback address only (127.0.0.1, [::1] or localhost)", addr)
}

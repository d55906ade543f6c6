package main

import (
	"os"
	"strconv"

	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

// streamproxyTarget runs streamproxy (built from ./streamproxy) in front of the server, or nil with a note when the
// package is absent.
func streamproxyTarget(e *env, s *Section) *streamTarget {
	if _, err := os.Stat("streamproxy"); err != nil {
		s.note("streamproxy not measured: there is no streamproxy/ package in this checkout")
		return nil
	}
	bin := testenv.BuildBinary(e, "./streamproxy")
	return &streamTarget{name: "streamproxy", launch: func(e *env, srv mcpServer) *launched {
		return launchHTTP(e, "streamproxy", func(port int) []string {
			// Defaults otherwise: one child per session, at most 100 sessions (the suite opens 64 at once).
			return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port), "--"}, srv.argv...)
		})
	}}
}

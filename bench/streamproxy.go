package main

import (
	"os"
	"strconv"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// statelessIdleTimeout is the -idle-timeout of the 2026-07-28 target. The bench never ends a worker (a 2026-07-28
// client has no session to delete), so each phase's users stay until then: long enough that no worker is reaped
// while its phase opens the others (64 children a few at a time), short enough that the idle ones of earlier phases
// do not pile up in memory. -max-sessions is raised for the same reason: the phases of one target open about 120
// users in all (the default 100 would refuse the last ones).
const (
	statelessIdleTimeout = "60s"
	statelessMaxSessions = "1000"
)

// streamproxyTargets runs streamproxy (built from ./streamproxy) in front of the server, driven once with
// session-revision sessions and once in protocol version 2026-07-28; none, with a note, when the package is absent.
func streamproxyTargets(s *Section) ([]streamTarget, error) {
	if _, err := os.Stat("streamproxy"); err != nil {
		s.note("streamproxy not measured: there is no streamproxy/ package in this checkout")
		return nil, nil
	}
	bin, err := testenv.Build("./streamproxy")
	if err != nil {
		return nil, err
	}
	return []streamTarget{
		{name: targetSPSessions, launch: func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "streamproxy", sessionClient, func(port int) []string {
				// Defaults otherwise: one child per session, at most 100 sessions (the suite opens 64 at once). All
				// sessions are one user's here, so the per-user cap is off.
				return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-max-per-user", "0", "--"}, srv.argv...)
			})
		}},
		{name: targetSPStateless, launch: func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "streamproxy", statelessClient, func(port int) []string {
				// The same binary and endpoint: one worker child per user (-user-header, X-User-Id by default).
				return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port),
					"-idle-timeout", statelessIdleTimeout, "-max-sessions", statelessMaxSessions, "--"}, srv.argv...)
			})
		}},
	}, nil
}

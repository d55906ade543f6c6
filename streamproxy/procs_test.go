package main

import (
	"net/http"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
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

// The log is written in batches; what waits in the last one still reaches stderr when the proxy is stopped.
func TestLogLinesSurviveShutdown(t *testing.T) {
	p, url, _ := proxyProcess(t, testenv.FreePort(t), nil, everything(t)...)
	r := post(t, url, "", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, "X-Request-Id", "last-request-before-stop")
	require.Equal(t, http.StatusBadRequest, r.status, "no session: refused, and logged")
	p.Stop()
	assert.Contains(t, p.Output(), `"request_id":"last-request-before-stop"`, "the access log line of the last request")
	assert.Contains(t, p.Output(), "shutting down", "the lines of the shutdown itself")
}

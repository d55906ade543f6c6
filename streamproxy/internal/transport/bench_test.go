package transport

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The proxy's own cost per tools/call on each path, against the Go SDK's fixture (which speaks both generations):
// compare the two with benchstat; the child's work is the same on both.
func benchHandler(b *testing.B) *Handler {
	fixture := testenv.BuildBinary(b, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	h := New(testConfig(fixture))
	b.Cleanup(h.Close)
	return h
}

func do(b *testing.B, h http.Handler, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-User-Id", "1")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("%d: %s", w.Code, w.Body)
	}
	return w
}

const simpleCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}%s}}`

func BenchmarkCallSessionPath(b *testing.B) {
	h := benchHandler(b)
	w := do(b, h, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}`, nil)
	sid := w.Header().Get("Mcp-Session-Id")
	hdr := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
	body := strings.Replace(simpleCall, "%s", "", 1)
	loop(b, func() { io.Discard.Write(do(b, h, body, hdr).Body.Bytes()) })
}

func BenchmarkCallStatelessPath(b *testing.B) {
	h := benchHandler(b)
	body := strings.Replace(simpleCall, "%s", `,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`, 1)
	hdr := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text"}
	do(b, h, body, hdr) // starts the user's worker
	loop(b, func() { io.Discard.Write(do(b, h, body, hdr).Body.Bytes()) })
}

// loop runs call b.N times and reports, besides the time per call (most of it the child's), the proxy's own CPU
// per call (this process's user and system time; the child is another process): the figure to compare paths by.
func loop(b *testing.B, call func()) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	for b.Loop() {
		call()
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

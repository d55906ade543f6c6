package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/jaegertest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// One tool call through Traefik, the plugin and streamproxy is one trace in Jaeger: Traefik's entry span, and under
// it streamproxy's span of the tool (with the user and the tool) and of its call to the child; the audit event of
// the call names that trace. A /token request is a trace holding the authserver's span of the endpoint and of its
// store calls.
func TestTracesFromTheEdgeToTheTool(t *testing.T) {
	testenv.TraefikBin(t)
	bin, err := jaegertest.Find()
	if err != nil {
		testenv.Missing(t, "Jaeger", "run `go tool task deps`")
	}
	jaeger, err := jaegertest.Start(bin, t.TempDir(), 0)
	require.NoError(t, err)
	t.Cleanup(func() {
		jaeger.Stop()
		if t.Failed() {
			t.Logf("--- jaeger ---\n%s", jaeger.Output())
		}
	})
	nm := testenv.NodeModules(t)
	logs := &testenv.SyncBuffer{}
	s, err := devstack.Start(context.Background(), devstack.Options{
		Root: testenv.RepoRoot(t), Port: testenv.FreePort(t), DataDir: t.TempDir(), Log: io.MultiWriter(testLog{t}, logs),
		Layout: "path", OTLPEndpoint: jaeger.OTLPHTTP,
		Services: []devstack.Service{{Name: "everything",
			Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")}}},
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	url := s.URLs["everything"]
	token := runClient(t, url).Tokens.AccessToken // the OAuth flow, /token included

	// A session of our own and one tools/call in it.
	post := func(body string, header map[string]string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := devstack.Client().Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Less(t, resp.StatusCode, 300, body)
		return resp
	}
	resp := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`, nil)
	session := map[string]string{"Mcp-Session-Id": resp.Header.Get("Mcp-Session-Id"), "MCP-Protocol-Version": "2025-11-25"}
	post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, session)
	post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"traced"}}}`, session)

	// The call's audit event names its trace.
	var event audit.Event
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			_, js, ok := strings.Cut(line, "{")
			if !ok || !strings.HasPrefix(line, "mcp-everything") {
				continue
			}
			var e audit.Event
			if json.Unmarshal([]byte("{"+js), &e) == nil && e.Name == "mcp.tools/call" && e.RPCID == "2" {
				event = e
				return true
			}
		}
		return false
	}, 10*time.Second, 100*time.Millisecond, "no audit event of the tools/call")
	require.Len(t, event.TraceID, 32, "the audit event has no trace id: %+v", event)
	assert.Equal(t, "echo", event.Target)
	assert.Equal(t, "1000001", event.UserID)
	assert.Equal(t, audit.OutcomeResult, event.Outcome)

	ctx := context.Background()
	var call jaegertest.Trace
	require.Eventually(t, func() bool {
		tr, err := jaeger.Trace(ctx, event.TraceID)
		if err != nil {
			require.ErrorIs(t, err, jaegertest.ErrNotFound)
			return false
		}
		call = tr
		return len(spansOf(tr, "streamproxy", "tools/call echo")) == 2 && len(spansOf(tr, "traefik", "")) > 0
	}, 20*time.Second, 250*time.Millisecond, "the tool call's trace in Jaeger lacks Traefik's or streamproxy's spans")
	entry := rootSpans(call)
	require.Len(t, entry, 1, "one trace with one root")
	assert.Equal(t, "traefik", call.Service(entry[0]), "the trace starts at Traefik's entry span")
	var tool jaegertest.Span
	for _, sp := range spansOf(call, "streamproxy", "tools/call echo") {
		if sp.Tag("span.kind") == "server" {
			tool = sp
		}
	}
	require.NotEmpty(t, tool.SpanID, "no server span of the tool")
	assert.Equal(t, "echo", tool.Tag("gen_ai.tool.name"))
	assert.Equal(t, "tools/call", tool.Tag("mcp.method.name"))
	assert.Equal(t, "1000001", tool.Tag("user.id"))
	assert.Equal(t, "traefik", call.Service(parentOf(call, tool)), "streamproxy's request span continues Traefik's")

	// The OAuth flow's /token request, from Traefik to the authserver's endpoint and its store calls.
	require.Eventually(t, func() bool {
		traces, err := jaeger.Traces(ctx, "authserver")
		if err != nil && !errors.Is(err, jaegertest.ErrNotFound) {
			require.NoError(t, err)
		}
		for _, tr := range traces {
			if tok := spansOf(tr, "authserver", "POST /token"); len(tok) > 0 && len(spansOf(tr, "traefik", "")) > 0 &&
				len(spansOf(tr, "authserver", "store.RedeemCode")) > 0 {
				return true
			}
		}
		return false
	}, 20*time.Second, 250*time.Millisecond, "no trace of a /token request from Traefik to the authserver and its store")
}

// spansOf returns the spans of service in t named name ("": any).
func spansOf(t jaegertest.Trace, service, name string) []jaegertest.Span {
	var out []jaegertest.Span
	for _, s := range t.Spans {
		if t.Service(s) == service && (name == "" || s.OperationName == name) {
			out = append(out, s)
		}
	}
	return out
}

// rootSpans are the spans of t with no parent in it.
func rootSpans(t jaegertest.Trace) []jaegertest.Span {
	var out []jaegertest.Span
	for _, s := range t.Spans {
		if len(s.References) == 0 {
			out = append(out, s)
		}
	}
	return out
}

// parentOf is the span s refers to as its parent in t (a zero Span when it has none in t).
func parentOf(t jaegertest.Trace, s jaegertest.Span) jaegertest.Span {
	for _, ref := range s.References {
		for _, p := range t.Spans {
			if ref.RefType == "CHILD_OF" && p.SpanID == ref.SpanID {
				return p
			}
		}
	}
	return jaegertest.Span{}
}

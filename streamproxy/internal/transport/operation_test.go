package transport

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/policy"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

const edgeTrace = "4bf92f3577b34da6a3ce929d0e0e4736"

// auditedHandler is a handler on the Go SDK's fixture whose audit trail goes to the returned buffer, behind the
// tracing wrapper the binary uses, with spans recorded.
func auditedHandler(t *testing.T) (http.Handler, *testenv.SyncBuffer, *audit.Logger, *tracetest.SpanRecorder) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	file := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(file, []byte("version: 1\ndefault: allow\nrules:\n  - name: no-images\n    tools: [test_image_content]\n    effect: deny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rules, err := policy.Open(file, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out testenv.SyncBuffer
	trail := audit.New(&out, nil, audit.Options{Service: "streamproxy", Log: slog.New(slog.DiscardHandler)})
	cfg := auditedConfig(trail, "everything", fixture)
	cfg.AuditArguments, cfg.Policy = []string{"test_simple_text"}, rules
	h := New(cfg)
	t.Cleanup(h.Close)
	traced := (&tracing.Tracing{}).Handler(h) // reads the edge's traceparent, as the binary does
	return traced, &out, trail, recordSpans()
}

var (
	spans     = tracetest.NewSpanRecorder()
	spansOnce sync.Once
)

// recordSpans installs a tracer provider that records every span, once for the package's tests (the package's
// tracer keeps the first provider installed), and returns its recorder, emptied.
func recordSpans() *tracetest.SpanRecorder {
	spansOnce.Do(func() {
		otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
		tracing.SetupPropagation()
	})
	spans.Reset()
	return spans
}

// testConfig is a handler's configuration in these tests: the MCP server's command, users named by X-User-Id, room
// for ten processes, and no log.
func testConfig(path string, args ...string) Config {
	return Config{Command: session.Command{Path: path, Args: args, Env: session.Env(nil, nil)}, UserHeader: "X-User-Id",
		MaxSessions: 10, KeepAlive: 15e9, MaxBody: 1 << 20, Logger: slog.New(slog.DiscardHandler)}
}

// auditedConfig is testConfig writing the audit trail of the server named server to trail, the user's login and
// client read from X-User-Name and X-Client-Id.
func auditedConfig(trail *audit.Logger, server, path string, args ...string) Config {
	cfg := testConfig(path, args...)
	cfg.Audit, cfg.ServerName, cfg.Identity = trail, server, IdentityHeaders{Login: "X-User-Name", Client: "X-Client-Id"}
	return cfg
}

func call(t *testing.T, h http.Handler, body string, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-User-Id", "1001")
	req.Header.Set("X-User-Name", "octo")
	req.Header.Set("X-Client-Id", "client-1")
	req.Header.Set("Traceparent", "00-"+edgeTrace+"-00f067aa0ba902b7-01")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// Each tools/call, on either path, is one audit event (who, which client, which server and tool, the outcome, the
// bytes, the edge's trace) and one span named after the tool with the MCP conventions' attributes, and a span of
// the call to the child under it. The arguments appear only for a tool the operator opted in, redacted.
func TestOperationsAreAuditedAndTraced(t *testing.T) {
	h, out, trail, rec := auditedHandler(t)
	w := call(t, h, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil)
	sid := w.Header().Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("no session: %d %s", w.Code, w.Body)
	}
	session := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
	call(t, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, session)
	call(t, h, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{"api_token":"tok-secret-1"}}}`, session)
	call(t, h, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_error_handling","arguments":{}}}`, session)
	call(t, h, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}`, session)
	call(t, h, `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`, session)
	call(t, h, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"test_image_content","arguments":{}}}`, session)
	stateless := `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	w = call(t, h, stateless, map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text"})
	if w.Code != http.StatusOK {
		t.Fatalf("stateless call: %d %s", w.Code, w.Body)
	}
	if err := trail.Close(); err != nil {
		t.Fatal(err)
	}

	var evs []audit.Event
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	type want struct {
		rpcID, target, outcome, protocol string
		code                             int
		decision                         string
	}
	wants := []want{
		{"2", "test_simple_text", audit.OutcomeResult, "2025-11-25", 0, "allow"},
		{"3", "test_error_handling", audit.OutcomeToolError, "2025-11-25", 0, "allow"},
		{"4", "no_such_tool", audit.OutcomeRPCError, "2025-11-25", -32602, "allow"},
		{"7", "test_image_content", audit.OutcomeRPCError, "2025-11-25", codeNotAllowed, "deny"},
		{"6", "test_simple_text", audit.OutcomeResult, "2026-07-28", 0, "allow"},
	}
	if len(evs) != len(wants) {
		t.Fatalf("%d events, want %d (one per tools/call, none for initialize or tools/list):\n%s", len(evs), len(wants), out.String())
	}
	if evs[3].Rule != "no-images" {
		t.Errorf("the denial names rule %q, want no-images", evs[3].Rule)
	}
	for i, e := range evs {
		w := wants[i]
		if e.Name != "mcp.tools/call" || e.Method != "tools/call" || e.RPCID != w.rpcID || e.Target != w.target ||
			e.Outcome != w.outcome || e.Protocol != w.protocol || e.ErrorCode != w.code || e.Decision != w.decision ||
			e.Rule == "" {
			t.Errorf("event %d = %+v, want %+v", i, e, w)
		}
		if e.UserID != "1001" || e.UserLogin != "octo" || e.ClientID != "client-1" || e.Server != "everything" {
			t.Errorf("event %d names the wrong user, client or server: %+v", i, e)
		}
		if e.TraceID != edgeTrace {
			t.Errorf("event %d trace %q, want the edge's", i, e.TraceID)
		}
		if e.BytesIn == 0 || e.BytesOut == 0 || e.DurationMS <= 0 {
			t.Errorf("event %d has no size or duration: %+v", i, e)
		}
	}
	if got := evs[0].Arguments["api_token"]; got != audit.Redacted {
		t.Errorf("opted-in arguments: api_token = %v, want it redacted", got)
	}
	if evs[1].Arguments != nil {
		t.Errorf("arguments of a tool not opted in were recorded: %v", evs[1].Arguments)
	}
	if strings.Contains(out.String(), "tok-secret-1") {
		t.Error("a secret argument reached the audit trail")
	}

	spans := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		spans[s.Name()] = append(spans[s.Name()], s)
	}
	tool := spans["tools/call test_simple_text"]
	if len(tool) != 4 { // the operation and its call to the child, on each path
		t.Fatalf("spans named tools/call test_simple_text: %d, want 4; all: %v", len(tool), names(rec.Ended()))
	}
	operations := map[trace.SpanID]bool{}
	for _, s := range tool {
		if s.SpanKind() == trace.SpanKindServer {
			operations[s.SpanContext().SpanID()] = true
		}
	}
	for _, s := range tool {
		if s.SpanContext().TraceID().String() != edgeTrace {
			t.Errorf("span %s is not in the edge's trace", s.Name())
		}
		a := attrs(s)
		switch s.SpanKind() {
		case trace.SpanKindServer:
			if a["mcp.method.name"] != "tools/call" || a["gen_ai.tool.name"] != "test_simple_text" || a["user.id"] != "1001" {
				t.Errorf("operation span %s attributes %v", s.Name(), a)
			}
		case trace.SpanKindClient:
			if !operations[s.Parent().SpanID()] {
				t.Errorf("the call to the child is not under its operation's span")
			}
			if a["mcp.method.name"] != "tools/call" {
				t.Errorf("the call to the child has attributes %v, want mcp.method.name (the MCP conventions require it of a client span)", a)
			}
		default:
			t.Errorf("span %s of kind %v", s.Name(), s.SpanKind())
		}
	}
	for _, s := range spans["tools/call test_error_handling"] {
		if s.SpanKind() == trace.SpanKindServer && attrs(s)["error.type"] != "tool_error" {
			t.Errorf("a tool error's span has error.type %q, want tool_error", attrs(s)["error.type"])
		}
	}
	if len(spans["tools/list"]) == 0 {
		t.Error("tools/list has no span")
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, a := range s.Attributes() {
		m[a.Key] = a.Value.String()
	}
	return m
}

// The outcome is read from the answer the client got, a JSON body or an SSE event, for the request's own id.
func TestOutcomeOfAnAnswer(t *testing.T) {
	for _, c := range []struct {
		answer  string
		id      string
		outcome string
		code    int
	}{
		{`{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}]}}`, "7", audit.OutcomeResult, 0},
		{`{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}`, "7", audit.OutcomeToolError, 0},
		{`{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":false}}`, "7", audit.OutcomeResult, 0},
		{`{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"bad","data":{"x":1}}}`, `"a"`, audit.OutcomeRPCError, -32602},
		{`{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"` + timedOutMessage + `"}}`, "7", audit.OutcomeTimedOut, -32001},
		{`{"jsonrpc":"2.0","id":7,"error":null,"result":{}}`, "7", audit.OutcomeResult, 0},
		{"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"isError\":true}}\n\n", "7", audit.OutcomeToolError, 0},
		{`{"jsonrpc":"2.0","id":8,"result":{}}`, "7", "", 0},                        // another request's answer
		{`{"jsonrpc":"2.0","id":7,"error":{"code":"x","message":"m"}}`, "7", "", 0}, // not a JSON-RPC error
		{`not json`, "7", "", 0},
		{"", "7", "", 0},
	} {
		a := &answerWatcher{ResponseWriter: httptest.NewRecorder()}
		if c.answer != "" {
			_, _ = a.Write([]byte(c.answer))
		}
		outcome, code := a.outcome(json.RawMessage(c.id))
		if outcome != c.outcome || code != c.code {
			t.Errorf("%s: outcome %q, code %d; want %q, %d", c.answer, outcome, code, c.outcome, c.code)
		}
	}
}

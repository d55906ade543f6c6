package transport

import (
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
)

// clientTrace is the trace a client's own context names in _meta, unlike the edge's (edgeTrace).
const (
	clientTrace  = "0af7651916cd43dd8448eb211c80319c"
	clientParent = "b7ad6b7169203331"
)

// metaHandler is a handler on metaserver, whose tool request-meta answers the _meta it got, behind the binary's
// tracing wrapper, with spans recorded.
func metaHandler(t *testing.T) (http.Handler, *tracetest.SpanRecorder) {
	server := testenv.BuildBinary(t, "./streamproxy/testdata/metaserver")
	h := New(testConfig(server))
	t.Cleanup(h.Close)
	return (&tracing.Tracing{}).Handler(h), recordSpans()
}

// metaOf calls request-meta with the _meta given (JSON), on the session path (sid) or the 2026-07-28 path (sid
// empty), with the edge's traceparent (sampled, or not) or none, and returns the _meta the child got.
func metaOf(t *testing.T, h http.Handler, sid, meta string, edge edgeContext) map[string]any {
	t.Helper()
	header := map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
	if sid == "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(meta), &m); err != nil {
			t.Fatal(err)
		}
		m[metaProtocolVersion], m[metaClientCapabilities] = "2026-07-28", map[string]any{}
		b, _ := json.Marshal(m)
		meta = string(b)
		header = map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "request-meta"}
	}
	switch edge {
	case noEdge:
		header["Traceparent"] = ""
	case unsampledEdge:
		header["Traceparent"] = "00-" + edgeTrace + "-00f067aa0ba902b7-00"
	}
	w := call(t, h, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"request-meta","arguments":{},"_meta":`+meta+`}}`, header)
	var resp struct {
		Result struct {
			Content []struct{ Text string } `json:"content"`
		} `json:"result"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp.Result.Content) != 1 {
		t.Fatalf("request-meta: %d %s", w.Code, w.Body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(resp.Result.Content[0].Text), &got); err != nil {
		t.Fatalf("request-meta answered %q: %v", resp.Result.Content[0].Text, err)
	}
	return got
}

type edgeContext int

const (
	sampledEdge edgeContext = iota
	unsampledEdge
	noEdge
)

func openSession(t *testing.T, h http.Handler) string {
	t.Helper()
	w := call(t, h, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil)
	sid := w.Header().Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("no session: %d %s", w.Code, w.Body)
	}
	call(t, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, map[string]string{"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"})
	return sid
}

// A request's trace context in params._meta (SEP-414) is the parent of its operation's span, the edge's HTTP
// context a link when both are present; and the child gets, in the same place, the context of the span of the
// call to it, with the request's other _meta members as they were.
func TestTraceContextInMeta(t *testing.T) {
	h, rec := metaHandler(t)
	sid := openSession(t, h)
	clientMeta := `{"traceparent":"00-` + clientTrace + `-` + clientParent + `-01","tracestate":"congo=t61rcWkgMzE","com.example/tag":7}`

	for _, c := range []struct {
		name string
		sid  string
		edge edgeContext
	}{
		{"session path, edge and _meta", sid, sampledEdge},
		{"session path, _meta only", sid, noEdge},
		{"2026-07-28 path, edge and _meta", "", sampledEdge},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec.Reset()
			got := metaOf(t, h, c.sid, clientMeta, c.edge)
			var op, child sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.Name() != "tools/call request-meta" {
					continue
				}
				switch s.SpanKind() {
				case trace.SpanKindServer:
					op = s
				case trace.SpanKindClient:
					child = s
				}
			}
			if op == nil || child == nil {
				t.Fatalf("spans: %v, want the operation's and the child call's", names(rec.Ended()))
			}
			if op.Parent().TraceID().String() != clientTrace || op.Parent().SpanID().String() != clientParent {
				t.Errorf("the operation's parent is %s/%s, want the one in _meta", op.Parent().TraceID(), op.Parent().SpanID())
			}
			links := op.Links()
			if c.edge == sampledEdge && (len(links) != 1 || links[0].SpanContext.TraceID().String() != edgeTrace) {
				t.Errorf("links %v, want the edge's context", links)
			}
			if c.edge == noEdge && len(links) != 0 {
				t.Errorf("links %v without an edge context", links)
			}
			want := "00-" + clientTrace + "-" + child.SpanContext().SpanID().String() + "-01"
			if got[metaTraceparent] != want {
				t.Errorf("the child got traceparent %v, want the child call's span, %s", got[metaTraceparent], want)
			}
			if got[metaTracestate] != "congo=t61rcWkgMzE" {
				t.Errorf("the child got tracestate %v, want the client's carried on", got[metaTracestate])
			}
			if got["com.example/tag"] != 7.0 {
				t.Errorf("the child got _meta %v: another member was lost", got)
			}
		})
	}

	t.Run("no context in _meta", func(t *testing.T) {
		rec.Reset()
		got := metaOf(t, h, sid, `{}`, sampledEdge)
		var child sdktrace.ReadOnlySpan
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindClient {
				child = s
			}
		}
		if child == nil {
			t.Fatal("no span of the call to the child")
		}
		want := "00-" + edgeTrace + "-" + child.SpanContext().SpanID().String() + "-01"
		if got[metaTraceparent] != want {
			t.Errorf("the child got traceparent %v, want the child call's span in the edge's trace, %s", got[metaTraceparent], want)
		}
		if _, ok := got[metaTracestate]; ok {
			t.Errorf("the child got a tracestate it was never given: %v", got)
		}
	})
}

// A request whose trace is not sampled (tracing off is the same: no span records) reaches the child as the client
// wrote it: its own trace context, nothing added.
func TestTraceContextUntouchedUnlessRecorded(t *testing.T) {
	h, _ := metaHandler(t)
	sid := openSession(t, h)
	clientMeta := `{"traceparent":"00-` + clientTrace + `-` + clientParent + `-00","com.example/tag":7}`
	got := metaOf(t, h, sid, clientMeta, sampledEdge)
	if got[metaTraceparent] != "00-"+clientTrace+"-"+clientParent+"-00" || len(got) != 2 {
		t.Errorf("the child got _meta %v, want the client's unchanged", got)
	}
	if got := metaOf(t, h, sid, `{}`, unsampledEdge); len(got) != 0 {
		t.Errorf("the child got _meta %v, want none added", got)
	}
}

// The trace context is written into the proxy's encoding of a message, the rest of it as it was.
func TestWithTraceMeta(t *testing.T) {
	tid, _ := trace.TraceIDFromHex(clientTrace)
	sid, _ := trace.SpanIDFromHex(clientParent)
	ts, _ := trace.ParseTraceState("congo=t61rcWkgMzE")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	tp := `"traceparent":"00-` + clientTrace + `-` + clientParent + `-01"`
	for _, c := range []struct {
		msg, want string
		sc        trace.SpanContext
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"ping"}`, `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{` + tp + `}}}`, sc},
		{`{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":[1,{"b":2}]}}`, `{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{` + tp + `},"a":[1,{"b":2}]}}`, sc},
		{`{"params":{"params":{"x":"\"params\":"}},"jsonrpc":"2.0","id":"\"params\":{","method":"m"}`,
			`{"params":{"_meta":{` + tp + `},"params":{"x":"\"params\":"}},"jsonrpc":"2.0","id":"\"params\":{","method":"m"}`, sc},
		{`{"jsonrpc":"2.0","id":"\"params\":{","method":"m\"params\":{"}`,
			`{"jsonrpc":"2.0","id":"\"params\":{","method":"m\"params\":{","params":{"_meta":{` + tp + `}}}`, sc},
		{`{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{"traceparent":"00-x","tracestate":"a=b","k\"q":{}},"z":0}}`,
			`{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{` + tp + `,"k\"q":{}},"z":0}}`, sc},
		{`{"jsonrpc":"2.0","id":1,"method":"m","params":{}}`,
			`{"jsonrpc":"2.0","id":1,"method":"m","params":{"_meta":{` + tp + `,"tracestate":"congo=t61rcWkgMzE"}}}`, sc.WithTraceState(ts)},
	} {
		msg, err := decodeIncoming([]byte(c.msg))
		if err != nil {
			t.Fatalf("%s: %v", c.msg, err)
		}
		_, hasMeta := msg.params["_meta"]
		got := withTraceMeta(msg.Raw, hasMeta, c.sc)
		if string(got) != c.want {
			t.Errorf("withTraceMeta(%s)\n= %s\nwant %s", c.msg, got, c.want)
		}
		if !hasMeta { // spliced: the same members as the walk writes, _meta first instead of last
			walked := withTraceMeta(msg.Raw, true, c.sc)
			var a, b any
			if json.Unmarshal(got, &a) != nil || json.Unmarshal(walked, &b) != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("withTraceMeta(%s): spliced %s, walked %s", c.msg, got, walked)
			}
		}
	}
}

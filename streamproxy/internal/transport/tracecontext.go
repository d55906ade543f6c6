package transport

import (
	"context"
	"encoding/json"

	"github.com/go-json-experiment/json/jsontext"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/jsonobj"
)

// MCP carries W3C trace context in a request's params._meta, under the unprefixed keys traceparent and tracestate
// (SEP-414; OpenTelemetry's MCP conventions). An MCP request's span continues the context its _meta carries; the
// HTTP request's (the edge's) only covers the HTTP exchange, so where both are present the _meta one is the parent
// and the HTTP one a link, as the conventions ask. The call to the child carries the child-call span's context in
// the same place, so that a server that traces joins the trace.

const (
	metaTraceparent = "traceparent"
	metaTracestate  = "tracestate"
)

var traceContext propagation.TraceContext

// metaCarrier reads trace context from params._meta's members.
type metaCarrier map[string]json.RawMessage

func (m metaCarrier) Get(key string) string {
	var v string
	if json.Unmarshal(m[key], &v) != nil {
		return ""
	}
	return v
}

func (m metaCarrier) Set(string, string) {}

func (m metaCarrier) Keys() []string { return []string{metaTraceparent, metaTracestate} }

// parentOf returns the context an operation's span starts in, and the span's start options: ctx (which carries
// the HTTP request's trace context) unless meta carries a valid traceparent, which then is the parent, with the
// HTTP request's context, if any, as a link.
func parentOf(ctx context.Context, meta map[string]json.RawMessage) (context.Context, []trace.SpanStartOption) {
	if _, ok := meta[metaTraceparent]; !ok {
		return ctx, serverSpan
	}
	edge := trace.SpanContextFromContext(ctx)
	inMeta := traceContext.Extract(ctx, metaCarrier(meta))
	sc := trace.SpanContextFromContext(inMeta)
	if !sc.IsValid() || !sc.IsRemote() || sc.Equal(edge) {
		return ctx, serverSpan // no usable context in _meta: the HTTP request's stays
	}
	if !edge.IsValid() {
		return inMeta, serverSpan
	}
	return inMeta, []trace.SpanStartOption{serverSpan[0], trace.WithLinks(trace.Link{SpanContext: edge})}
}

// childTraceContext is the context of the call to the child the request's operation is making, when that call's
// span records; ok is false otherwise, and then no message is changed.
func childTraceContext(ctx context.Context) (trace.SpanContext, bool) {
	op := operationOf(ctx)
	if op == nil || op.child == nil || !op.child.IsRecording() {
		return trace.SpanContext{}, false
	}
	return op.child.SpanContext(), true
}

// withTraceMeta returns the JSON-RPC message msg with sc in its params._meta, its other members as they were.
func withTraceMeta(msg []byte, sc trace.SpanContext) []byte {
	return withMember(msg, "params", func(params []byte) []byte { return paramsWithTraceMeta(params, sc) })
}

// paramsWithTraceMeta returns the params object params (nil: none) with sc in its _meta: traceparent, and
// tracestate when sc has one (a tracestate the client sent is otherwise removed: it went with another parent).
func paramsWithTraceMeta(params []byte, sc trace.SpanContext) []byte {
	if params == nil {
		params = []byte("{}")
	}
	return withMember(params, "_meta", func(meta []byte) []byte {
		if meta == nil {
			meta = []byte("{}")
		}
		carrier := propagation.MapCarrier{}
		traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), carrier)
		meta = withMember(meta, metaTraceparent, func([]byte) []byte {
			v, _ := jsontext.AppendQuote(nil, carrier[metaTraceparent])
			return v
		})
		return withMember(meta, metaTracestate, func([]byte) []byte {
			if ts := carrier[metaTracestate]; ts != "" {
				v, _ := jsontext.AppendQuote(nil, ts)
				return v
			}
			return nil
		})
	})
}

// withMember returns the JSON object obj with its member name's value replaced by edit's answer (edit gets nil when
// obj has no such member; a nil answer removes it), its other members in order and as written. obj is the proxy's
// own encoding, so it is an object; a value that is not is returned as it was.
func withMember(obj []byte, name string, edit func(value []byte) []byte) []byte {
	out := make([]byte, 0, len(obj)+96)
	out = append(out, '{')
	found := false
	add := func(n string, value []byte) {
		if value == nil {
			return
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out, _ = jsontext.AppendQuote(out, n)
		out = append(append(out, ':'), value...)
	}
	err := jsonobj.Each(obj, func(n, value []byte) error {
		if string(n) == name {
			found = true
			value = edit(value)
		}
		add(string(n), value)
		return nil
	})
	if err != nil {
		return obj
	}
	if !found {
		add(name, edit(nil))
	}
	return append(out, '}')
}

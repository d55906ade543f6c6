package transport

import (
	"bytes"
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

// withTraceMeta returns the JSON-RPC request msg, the proxy's own encoding, with sc in its params._meta, its other
// members as they were. hasMeta tells whether its params have a _meta already: when they have none (most requests),
// the context is spliced in without walking the message.
func withTraceMeta(msg []byte, hasMeta bool, sc trace.SpanContext) []byte {
	if !hasMeta {
		if out, ok := spliceTraceMeta(msg, sc); ok {
			return out
		}
	}
	out := make([]byte, 0, len(msg)+160)
	return appendWithMember(out, msg, "params", func(out, params []byte) []byte {
		return appendParamsWithTraceMeta(out, params, sc)
	})
}

// paramsMember is how the proxy's encoding (compact, no name twice) writes the start of a request's params.
var paramsMember = []byte(`"params":`)

// spliceTraceMeta writes sc into msg as its params' first member, _meta: msg is the proxy's encoding of a request
// whose params, if any, have no _meta. The first "params": in it is its params' name: a request's other members
// (jsonrpc, id, method; any other was refused) are strings and numbers, and a quote inside a string is escaped, so
// "params": can only be a member's name, and anything nested comes after it. ok is false when msg is not as
// expected (params not an object); withTraceMeta then walks it.
func spliceTraceMeta(msg []byte, sc trace.SpanContext) (out []byte, ok bool) {
	out = make([]byte, 0, len(msg)+128)
	i := bytes.Index(msg, paramsMember)
	switch {
	case i >= 0 && len(msg) > i+len(paramsMember)+1 && msg[i+len(paramsMember)] == '{':
		at := i + len(paramsMember) + 1
		out = appendTraceMeta(append(out, msg[:at]...), sc)
		if msg[at] != '}' {
			out = append(out, ',')
		}
		return append(out, msg[at:]...), true
	case i < 0 && len(msg) > 2 && msg[len(msg)-1] == '}': // no params: they are added last
		out = append(append(out, msg[:len(msg)-1]...), `,"params":{`...)
		return append(appendTraceMeta(out, sc), "}}"...), true
	}
	return nil, false
}

// appendTraceMeta appends the _meta member holding sc alone.
func appendTraceMeta(out []byte, sc trace.SpanContext) []byte {
	return append(appendTraceMembers(append(out, `"_meta":{`...), sc), '}')
}

// paramsWithTraceMeta returns the params object params (nil: none) with sc in its _meta.
func paramsWithTraceMeta(params []byte, sc trace.SpanContext) []byte {
	return appendParamsWithTraceMeta(make([]byte, 0, len(params)+160), params, sc)
}

// appendParamsWithTraceMeta appends params (nil: none) with sc in its _meta: traceparent, and tracestate when sc
// has one (a tracestate the client sent is otherwise dropped: it went with another parent).
func appendParamsWithTraceMeta(out, params []byte, sc trace.SpanContext) []byte {
	if params == nil {
		params = []byte("{}")
	}
	return appendWithMember(out, params, "_meta", func(out, meta []byte) []byte {
		out = appendTraceMembers(append(out, '{'), sc)
		if meta != nil {
			_ = jsonobj.Each(meta, func(n, value []byte) error {
				if string(n) != metaTraceparent && string(n) != metaTracestate {
					out = appendMember(out, n, value)
				}
				return nil
			})
		}
		return append(out, '}')
	})
}

// appendTraceMembers appends sc as members of a _meta object: traceparent, and tracestate when sc has one.
func appendTraceMembers(out []byte, sc trace.SpanContext) []byte {
	out = append(out, `"traceparent":"00-`...)
	out = append(out, sc.TraceID().String()...)
	out = append(append(out, '-'), sc.SpanID().String()...)
	out = append(append(out, '-'), sc.TraceFlags().String()...)
	out = append(out, '"')
	if ts := sc.TraceState().String(); ts != "" {
		out = append(out, `,"tracestate":`...)
		out, _ = jsontext.AppendQuote(out, ts)
	}
	return out
}

// appendWithMember appends the JSON object obj with its member name's value written by value instead (given the
// value as it was, or nil when obj has none: the member is then added last), its other members in order and as
// written. obj is the proxy's own encoding; should it not be an object, it is appended as it was.
func appendWithMember(out, obj []byte, name string, value func(out, old []byte) []byte) []byte {
	start := len(out)
	out = append(out, '{')
	found := false
	err := jsonobj.Each(obj, func(n, v []byte) error {
		if string(n) != name {
			out = appendMember(out, n, v)
			return nil
		}
		found = true
		out = value(appendMember(out, n, nil), v)
		return nil
	})
	if err != nil {
		return append(out[:start], obj...)
	}
	if !found {
		out = value(appendMember(out, []byte(name), nil), nil)
	}
	return append(out, '}')
}

// appendMember appends a member of an object being written: a comma unless it is the first, its name, and value.
func appendMember(out, name, value []byte) []byte {
	if out[len(out)-1] != '{' {
		out = append(out, ',')
	}
	out, _ = jsontext.AppendQuote(out, name)
	return append(append(out, ':'), value...)
}

package tracing

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestConfiguredOnlyByTheStandardVariables(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{map[string]string{}, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, false},
		{map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false},
	} {
		if got := configured(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("configured(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}

const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// mux is a server whose route names the span, and which reports the trace context its handler saw.
func mux(seen *trace.SpanContext) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		*seen = trace.SpanContextFromContext(r.Context())
	})
	return m
}

func TestARequestContinuesTheEdgesTrace(t *testing.T) {
	SetupPropagation()
	rec := tracetest.NewSpanRecorder()
	tr := &Tracing{provider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))}
	t.Cleanup(func() { _ = tr.provider.Shutdown(t.Context()) })
	var seen trace.SpanContext
	req := httptest.NewRequest(http.MethodPost, "/token", nil)
	req.Header.Set("Traceparent", traceparent)
	tr.Handler(mux(&seen)).ServeHTTP(httptest.NewRecorder(), req)

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.Name() != "POST /token" {
		t.Errorf("span name %q, want the route, POST /token", s.Name())
	}
	if got := s.Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("parent span %s, want the traceparent's", got)
	}
	if got := s.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace %s, want the traceparent's", got)
	}
	if seen.SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler's context does not carry the request's span")
	}
	var status attribute.Value
	for _, a := range s.Attributes() {
		if a.Key == "http.response.status_code" {
			status = a.Value
		}
	}
	if status.AsInt64() != http.StatusOK {
		t.Errorf("http.response.status_code = %v, want 200", status.String())
	}
}

// The wrapper sits between observe.Handler and the mux: the route the mux matched must still reach the request the
// wrapper was given, which observe reads for its log line and metrics.
func TestTheMatchedRouteReachesTheCallersRequest(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	on := &Tracing{provider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))}
	for name, tr := range map[string]*Tracing{"on": on, "off": {}} {
		var seen trace.SpanContext
		req := httptest.NewRequest(http.MethodPost, "/token", nil)
		tr.Handler(mux(&seen)).ServeHTTP(httptest.NewRecorder(), req)
		if req.Pattern != "POST /token" {
			t.Errorf("tracing %s: the caller's request has pattern %q, want POST /token", name, req.Pattern)
		}
	}
}

func TestOffItStillCarriesTheEdgesTraceID(t *testing.T) {
	SetupPropagation()
	var seen trace.SpanContext
	req := httptest.NewRequest(http.MethodPost, "/token", nil)
	req.Header.Set("Traceparent", traceparent)
	(&Tracing{}).Handler(mux(&seen)).ServeHTTP(httptest.NewRecorder(), req)
	if seen.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s, want the traceparent's (for the audit trail)", seen.TraceID())
	}
}

// Package tracing sets up OpenTelemetry traces for the gateway's binaries from the standard OTEL_* variables, and
// wraps an HTTP server so that each request is a span continuing the W3C trace context the edge (Traefik) sent.
// Tracing is off unless the environment names an exporter: with it off, a request still carries the trace id the
// edge sent (for the audit trail and the logs) and no span is made.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/otelenv"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing is what Setup configured: whether spans are made, and how to flush them at exit.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil: off
}

// Enabled reports whether spans are exported.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Close exports the spans still buffered, giving up after five seconds (a collector gone must not hold the exit),
// and stops the exporter.
func (t *Tracing) Close() {
	if !t.Enabled() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.provider.Shutdown(ctx)
}

// Setup installs the W3C trace-context and baggage propagators and, when getenv configures an exporter, a tracer
// provider exporting to it over OTLP. An exporter is configured by OTEL_TRACES_EXPORTER=otlp, or by an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with OTEL_TRACES_EXPORTER unset;
// OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true keep it off. The protocol is
// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf (the default) or grpc. Everything
// else (endpoint, headers, sampler, batching, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES) is read by the SDK
// from the same variables. service names the service when OTEL_SERVICE_NAME does not.
func Setup(ctx context.Context, service string, log *slog.Logger) (*Tracing, error) {
	SetupPropagation()
	if !configured(os.Getenv) {
		return &Tracing{}, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch p := otelenv.Protocol(os.Getenv, "TRACES"); p {
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, fmt.Errorf("OTLP protocol %q: want http/protobuf or grpc", p)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	res, err := otelenv.Resource(ctx, service)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(newBatcher(exp, batchOptionsFrom(os.Getenv))),
		sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	log.Info("tracing on", "protocol", otelenv.Protocol(os.Getenv, "TRACES"), "service", service)
	return &Tracing{provider: tp}, nil
}

// SetupPropagation installs the W3C trace-context and baggage propagators (Setup does it too).
func SetupPropagation() {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
}

// configured reads the standard variables the way the SDK's own autoexport does, except that nothing set means off.
func configured(getenv func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	switch strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")) {
	case "otlp":
		return true
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	}
	return false
}

// Handler wraps next, normally an http.ServeMux (its matched pattern names the span), so that each request is a
// server span continuing the trace context of the request's headers. With tracing off it only reads that context,
// so the trace id the edge sent still reaches the audit trail. Either way the pattern the mux matched is copied to
// the request Handler was given, as the mux itself would have set it, for a wrapper outside (observe.Handler).
func (t *Tracing) Handler(next http.Handler) http.Handler {
	if !t.Enabled() {
		return Extract(next)
	}
	traced := otelhttp.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, inner *http.Request) {
		next.ServeHTTP(w, inner)
		if outer, ok := inner.Context().Value(outerRequest{}).(*http.Request); ok {
			outer.Pattern = inner.Pattern
		}
	}), "", otelhttp.WithTracerProvider(t.provider), otelhttp.WithSpanNameFormatter(spanName))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		traced.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), outerRequest{}, r)))
	})
}

// Extract wraps next so that each request carries the trace context of its headers, without a span of its own: for
// a server whose handler makes the request's span itself (streamproxy's MCP operation). The pattern the mux matched
// is copied back as Handler does.
func Extract(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		inner := r.WithContext(ctx)
		next.ServeHTTP(w, inner)
		r.Pattern = inner.Pattern
	})
}

// outerRequest keys the request Handler was given, in the context of the one it passes on.
type outerRequest struct{}

// spanName is "METHOD route": the matched pattern, never the raw path (which can hold ids).
func spanName(_ string, r *http.Request) string {
	switch {
	case r.Pattern == "":
		return r.Method
	case strings.Contains(r.Pattern, " "):
		return r.Pattern // the pattern names its method: "POST /token"
	}
	return r.Method + " " + r.Pattern
}

// Tracer returns the tracer of one of the gateway's packages.
func Tracer(name string) trace.Tracer {
	return otel.Tracer("github.com/mcp-oauth-gateway/gateway/" + name)
}

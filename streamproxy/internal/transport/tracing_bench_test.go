package transport

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/jaegertest"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace/noop"
)

// What tracing adds to a tools/call on the session path, in the proxy's own CPU: compare the two benchmarks'
// cpu-ns/op, and the allocations, collections and page faults, which hardly move with the machine's other load.
// Both read an edge's traceparent as streamproxy's server does, a trace of its own for each call as Traefik sends
// them; with tracing on, every request is sampled and its spans are exported over OTLP/HTTP to a real Jaeger, as
// in the bench's section (or, without one built, to a server in this process that reads and discards them, whose
// CPU is then counted too). Run each in a process of its own (-run '^$' -bench '^BenchmarkCallTracingOn$'): the
// package's tracer keeps the first tracer provider a process installs.
func BenchmarkCallTracingOff(b *testing.B) { benchTraced(b, false) }

func BenchmarkCallTracingOn(b *testing.B) { benchTraced(b, true) }

func benchTraced(b *testing.B, on bool) {
	tracing.SetupPropagation()
	if on {
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", benchCollector(b))
		tr, err := tracing.Setup(b.Context(), "streamproxy", slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			tr.Close()
			otel.SetTracerProvider(noop.NewTracerProvider())
		})
	}
	h := tracing.Extract(benchHandler(b))
	w := do(b, h, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}`, nil)
	hdr := map[string]string{"Mcp-Session-Id": w.Header().Get("Mcp-Session-Id"), "MCP-Protocol-Version": "2025-11-25"}
	body := strings.Replace(simpleCall, "%s", "", 1)
	calls := 0
	b.ReportAllocs()
	// Page faults and collections are counted too: what tracing allocates costs most through them, and unlike the
	// CPU figure they hardly move with the machine's other load.
	var before, after syscall.Rusage
	var gcBefore, gcAfter runtime.MemStats
	runtime.ReadMemStats(&gcBefore)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	loop(b, func() {
		calls++
		hdr["Traceparent"] = fmt.Sprintf("00-%032x-00f067aa0ba902b7-01", calls)
		io.Discard.Write(do(b, h, body, hdr).Body.Bytes())
	})
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	runtime.ReadMemStats(&gcAfter)
	b.ReportMetric(float64(after.Minflt-before.Minflt)*1000/float64(b.N), "faults/1000op")
	b.ReportMetric(float64(gcAfter.NumGC-gcBefore.NumGC)*1000/float64(b.N), "GCs/1000op")
}

// benchCollector is the OTLP/HTTP endpoint of a Jaeger started for the benchmark, or, when none was built, of a
// server in this process that reads and discards what it is sent.
func benchCollector(b *testing.B) string {
	if bin, err := jaegertest.Find(); err == nil {
		j, err := jaegertest.Start(bin, b.TempDir(), 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(j.Stop)
		return j.OTLPHTTP
	}
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(collector.Close)
	return collector.URL
}

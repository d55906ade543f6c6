package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/internal/observe"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/jaegertest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

func TestEventsAreStampedOneJSONObjectALine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{Service: "authserver"})
	if err != nil {
		t.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(observe.WithRequestID(context.Background(), "req-1"),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	l.Record(ctx, Event{Name: "login", Outcome: OutcomeSuccess, UserID: "42", UserLogin: "octocat"})
	l.Record(context.Background(), Event{Name: "client.deleted", ClientID: "c1"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v, want 0600", fi.Mode().Perm())
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	first := lines[0]
	for k, want := range map[string]any{"v": float64(Version), "service": "authserver", "event": "login",
		"outcome": "success", "user_id": "42", "user_login": "octocat", "request_id": "req-1",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"} {
		if first[k] != want {
			t.Errorf("%s = %v, want %v", k, first[k], want)
		}
	}
	if _, ok := first["time"].(string); !ok {
		t.Errorf("no time in %v", first)
	}
	if _, ok := lines[1]["trace_id"]; ok {
		t.Errorf("an untraced event has a trace_id: %v", lines[1])
	}
	if _, ok := lines[1]["arguments"]; ok {
		t.Errorf("empty fields are written: %v", lines[1])
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not one JSON object: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// blockedWriter holds every write until released: a destination that stopped.
type blockedWriter struct{ release chan struct{} }

func (b blockedWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

func TestAFullBufferNeverBlocksAndIsCountedAndLogged(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs testenv.SyncBuffer
	w := blockedWriter{release: make(chan struct{})}
	l := New(w, nil, Options{Service: "streamproxy", Buffer: 4, Registerer: reg, Namespace: "streamproxy",
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	// The writer takes one event and blocks on it; four more fill the buffer; the rest have no room.
	for range 20 {
		l.Record(context.Background(), Event{Name: "mcp.tools/call"})
	}
	dropped := testutil.ToFloat64(l.dropped.WithLabelValues("buffer_full"))
	if dropped < 15 || dropped > 16 {
		t.Errorf("buffer_full drops = %v, want 15 or 16 (20 events, a buffer of 4, one in the writer)", dropped)
	}
	if n, err := testutil.GatherAndCount(reg, "streamproxy_audit_events_dropped_total"); err != nil || n != 1 {
		t.Errorf("the drop counter is not registered: %d series, %v", n, err)
	}
	if !strings.Contains(logs.String(), "audit events dropped") {
		t.Errorf("drops were not logged: %q", logs.String())
	}
	close(w.release)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), Event{Name: "after close"}) // must neither panic nor block
}

func TestANilLoggerRecordsNothing(t *testing.T) {
	var l *Logger
	l.Record(context.Background(), Event{Name: "x"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	off, err := Open(Off, Options{})
	if err != nil || off != nil {
		t.Fatalf("Open(off) = %v, %v; want nil, nil", off, err)
	}
}

func TestRedactHidesSecretsByNameAtAnyDepth(t *testing.T) {
	in := map[string]any{"query": "weather", "api_key": "k1", "Password": "p1",
		"nested": map[string]any{"refreshToken": "t1", "depth": 2.0},
		"list":   []any{map[string]any{"client_secret": "s1", "name": "n"}}}
	out := Redact(in)
	b, _ := json.Marshal(out)
	for _, secret := range []string{"k1", "p1", "t1", "s1"} {
		if bytes.Contains(b, []byte(`"`+secret+`"`)) {
			t.Errorf("%s survived redaction: %s", secret, b)
		}
	}
	for _, kept := range []string{`"weather"`, `"n"`, `2`} {
		if !bytes.Contains(b, []byte(kept)) {
			t.Errorf("%s was redacted: %s", kept, b)
		}
	}
	if in["api_key"] != "k1" {
		t.Error("Redact changed its input")
	}
}

// With --audit-log otlp the events go to a real OpenTelemetry Collector (Jaeger's) as log records named after the
// event, whose body is the event's object, from a resource named after the service.
func TestOTLPToACollector(t *testing.T) {
	bin, err := jaegertest.Find()
	if err != nil {
		testenv.Missing(t, "Jaeger", "run `go tool task deps`")
	}
	collector, err := jaegertest.Start(bin, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(collector.Stop)
	for _, protocol := range []string{"http/protobuf", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			endpoint := collector.OTLPHTTP
			if protocol == "grpc" {
				endpoint = "http://" + collector.OTLPGRPC
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
			service := "audit-" + strings.ReplaceAll(protocol, "/", "-")
			reg := prometheus.NewRegistry()
			l, err := Open(OTLP, Options{Service: service, Registerer: reg, Namespace: "test"})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 100 {
				l.Record(context.Background(), Event{Name: "mcp.tools/call", Outcome: OutcomeResult, UserID: "42", Target: fmt.Sprintf("tool-%d", i),
					DurationMS: 1.5, Arguments: map[string]any{"path": "/tmp", "depth": 2}})
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if n := testutil.CollectAndCount(l.dropped); n != 0 {
				t.Fatalf("events dropped: %d reasons counted", n)
			}
			received := func() int { return strings.Count(collector.Output(), `"service":"`+service+`"`) }
			for deadline := time.Now().Add(10 * time.Second); received() < 100 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			out := collector.Output()
			for _, want := range []string{"service.name: Str(" + service + ")", "SeverityText: INFO", "EventName: mcp.tools/call",
				`"event":"mcp.tools/call"`, `"user_id":"42"`, `"duration_ms":1.5`, `"arguments":{"depth":2,"path":"/tmp"}`, `"v":1`} {
				if !strings.Contains(out, want) {
					t.Errorf("the collector's records lack %s:\n%s", want, tail(out, 3000))
				}
			}
			if got := received(); got != 100 {
				t.Errorf("the collector received %d of the 100 events", got)
			}
		})
	}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	if _, err := Open(OTLP, Options{Service: "x"}); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_ENDPOINT") {
		t.Errorf("otlp without a collector: %v, want an error naming the variable", err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// heldSink holds what it is written until Flush, whose exports fail when failing is set.
type heldSink struct {
	gate       chan struct{} // the first Write waits for it
	held, most int
	flushes    int
	failing    bool
}

func (h *heldSink) Write(p []byte) (int, error) {
	if h.gate != nil {
		<-h.gate
		h.gate = nil
	}
	h.held++
	h.most = max(h.most, h.held)
	return len(p), nil
}

func (h *heldSink) Flush() (int, error) {
	n := h.held
	h.held = 0
	h.flushes++
	if h.failing {
		return n, errors.New("collector unreachable")
	}
	return 0, nil
}

// A destination that holds events until flushed (OTLP) is flushed whenever no event waits and at least every
// flushEvery events under a steady stream; what a failed flush loses is counted, each event.
func TestHeldEventsAreFlushedAndTheirLossCounted(t *testing.T) {
	sink := &heldSink{gate: make(chan struct{})}
	l := New(sink, nil, Options{Service: "streamproxy", Buffer: 2000, Log: slog.New(slog.DiscardHandler)})
	for range 1500 {
		l.Record(context.Background(), Event{Name: "mcp.tools/call"})
	}
	close(sink.gate)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// 1500 events in at most 512 each: 3 flushes, or 4 when the writer took a first batch (flushAt) before the
	// rest were recorded.
	if sink.most != flushEvery || sink.held != 0 || sink.flushes < 3 || sink.flushes > 4 {
		t.Errorf("held at most %d, %d left, %d flushes; want %d, 0, 3 or 4", sink.most, sink.held, sink.flushes, flushEvery)
	}

	sink = &heldSink{failing: true}
	l = New(sink, nil, Options{Service: "streamproxy", Log: slog.New(slog.DiscardHandler)})
	for range 3 {
		l.Record(context.Background(), Event{Name: "mcp.tools/call"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(l.dropped.WithLabelValues("write_error")); got != 3 {
		t.Errorf("write_error drops = %v, want 3 (every event a failed flush held)", got)
	}
}

// writes records each write it is given.
type writes struct {
	mu    sync.Mutex
	calls []string
	got   chan struct{}
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.calls = append(w.calls, string(p))
	w.mu.Unlock()
	w.got <- struct{}{}
	return len(p), nil
}

func (w *writes) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

func (w *writes) await(t *testing.T) {
	t.Helper()
	select {
	case <-w.got:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing written")
	}
}

// Events are written in batches, one write each: after the delay, when a batch is full, and on Close.
func TestEventsAreWrittenInBatches(t *testing.T) {
	out := &writes{got: make(chan struct{}, flushAt)}
	l := New(out, nil, Options{Service: "streamproxy", Log: slog.New(slog.DiscardHandler)})
	l.delay = time.Millisecond
	l.Record(context.Background(), Event{Name: "soon"})
	out.await(t) // no Close: the delay passed

	l.delay = time.Hour
	for range flushAt {
		l.Record(context.Background(), Event{Name: "full"})
	}
	out.await(t) // a full batch goes at once
	l.Record(context.Background(), Event{Name: "last"})
	l.Record(context.Background(), Event{Name: "last"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	calls := out.all()
	if len(calls) != 3 {
		t.Fatalf("%d writes, want 3 (the delayed event, the full batch, what Close found)", len(calls))
	}
	for i, want := range []int{1, flushAt, 2} {
		if n := strings.Count(calls[i], "\n"); n != want {
			t.Errorf("write %d holds %d events, want %d", i+1, n, want)
		}
	}
}

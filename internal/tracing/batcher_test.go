package tracing

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// exporter records the batches it was given.
type exporter struct {
	mu       sync.Mutex
	batches  [][]string
	shutdown bool
	got      chan struct{} // a signal per batch
}

func newExporter() *exporter { return &exporter{got: make(chan struct{}, 100)} }

func (e *exporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name()
	}
	e.mu.Lock()
	e.batches = append(e.batches, names)
	e.mu.Unlock()
	e.got <- struct{}{}
	return nil
}

func (e *exporter) Shutdown(context.Context) error {
	e.mu.Lock()
	e.shutdown = true
	e.mu.Unlock()
	return nil
}

func (e *exporter) seen() ([][]string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]string(nil), e.batches...), e.shutdown
}

func (e *exporter) await(t *testing.T) {
	t.Helper()
	select {
	case <-e.got:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch exported")
	}
}

func spans(tp *sdktrace.TracerProvider, names ...string) {
	for _, n := range names {
		_, s := tp.Tracer("t").Start(context.Background(), n)
		s.End()
	}
}

const never = time.Hour

// A full batch goes at once, without waiting for the schedule delay; the rest waits for it, or a flush.
func TestBatcherExportsAFullBatchAtOnce(t *testing.T) {
	exp := newExporter()
	b := newBatcher(exp, batchOptions{delay: never, timeout: time.Minute, queueSize: 10, batchSize: 2})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	spans(tp, "a", "b")
	exp.await(t)
	batches, _ := exp.seen()
	if len(batches) != 1 || len(batches[0]) != 2 || batches[0][0] != "a" || batches[0][1] != "b" {
		t.Fatalf("batches %v, want [[a b]]", batches)
	}
	spans(tp, "c")
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if batches, _ = exp.seen(); len(batches) != 2 || len(batches[1]) != 1 || batches[1][0] != "c" {
		t.Fatalf("after the flush: %v, want [[a b] [c]]", batches)
	}
}

// A span that fills no batch is exported once the schedule delay has passed.
func TestBatcherExportsOnItsSchedule(t *testing.T) {
	exp := newExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(
		newBatcher(exp, batchOptions{delay: 10 * time.Millisecond, timeout: time.Minute, queueSize: 10, batchSize: 5})))
	spans(tp, "a")
	exp.await(t)
	if batches, _ := exp.seen(); len(batches) != 1 || batches[0][0] != "a" {
		t.Fatalf("batches %v, want [[a]]", batches)
	}
}

// Shutdown exports what is queued, in batches, and shuts the exporter down; later spans are not exported.
func TestBatcherShutdownFlushes(t *testing.T) {
	exp := newExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(
		newBatcher(exp, batchOptions{delay: never, timeout: time.Minute, queueSize: 10, batchSize: 3})))
	spans(tp, "a", "b")
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans(tp, "late")
	batches, shut := exp.seen()
	if len(batches) != 1 || len(batches[0]) != 2 || !shut {
		t.Fatalf("batches %v, exporter shut down %v; want [[a b]], true", batches, shut)
	}
}

// With the queue full, a span is dropped and the drop reported through OpenTelemetry's error handler.
func TestBatcherDropsWhatTheQueueCannotHold(t *testing.T) {
	var mu sync.Mutex
	var reported []error
	prev := otel.GetErrorHandler()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { mu.Lock(); reported = append(reported, err); mu.Unlock() }))
	t.Cleanup(func() { otel.SetErrorHandler(prev) })
	exp := newExporter()
	b := newBatcher(exp, batchOptions{delay: never, timeout: time.Minute, queueSize: 2, batchSize: 3})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	spans(tp, "a", "b", "c", "d")
	if err := b.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	batches, _ := exp.seen()
	if len(batches) != 1 || len(batches[0]) != 2 {
		t.Fatalf("batches %v, want the two the queue held", batches)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 {
		t.Fatalf("reported %v, want one report of the 2 dropped", reported)
	}
}

// An unsampled span is never queued.
func TestBatcherSkipsUnsampledSpans(t *testing.T) {
	exp := newExporter()
	b := newBatcher(exp, batchOptions{delay: never, timeout: time.Minute, queueSize: 10, batchSize: 10})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b), sdktrace.WithSampler(sdktrace.NeverSample()))
	spans(tp, "a")
	_ = b.ForceFlush(context.Background())
	if batches, _ := exp.seen(); len(batches) != 0 {
		t.Fatalf("batches %v, want none", batches)
	}
}

// Shutdown gives up when its context ends while an export hangs (a collector that does not answer).
func TestBatcherShutdownKeepsItsDeadline(t *testing.T) {
	hung := &hangingExporter{started: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(hung.release) })
	b := newBatcher(hung, batchOptions{delay: never, timeout: time.Hour, queueSize: 10, batchSize: 1})
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b))
	spans(tp, "a")
	<-hung.started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v, want context.Canceled", err)
	}
}

type hangingExporter struct{ started, release chan struct{} }

func (h *hangingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	close(h.started)
	<-h.release
	return nil
}

func (h *hangingExporter) Shutdown(context.Context) error { return nil }

func TestBatchOptionsReadTheSDKsVariables(t *testing.T) {
	env := map[string]string{"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BSP_EXPORT_TIMEOUT": "x",
		"OTEL_BSP_MAX_QUEUE_SIZE": "100", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000"}
	o := batchOptionsFrom(func(k string) string { return env[k] })
	want := batchOptions{delay: 200 * time.Millisecond, timeout: 30 * time.Second, queueSize: 100, batchSize: 100}
	if o != want {
		t.Fatalf("%+v, want %+v", o, want)
	}
	if d := batchOptionsFrom(func(string) string { return "" }); d != (batchOptions{delay: 5 * time.Second, timeout: 30 * time.Second, queueSize: 2048, batchSize: 128}) {
		t.Fatalf("defaults %+v", d)
	}
}

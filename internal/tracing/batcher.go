package tracing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// batcher is the span processor Setup installs: it exports spans in batches as the SDK's BatchSpanProcessor does,
// from the same OTEL_BSP_* settings, without waking a goroutine for each span. The SDK's hands every ended span
// over a channel to its goroutine, so each span costs a goroutine wake-up; streamproxy's operation and child-call
// spans made two per tool call, on a path whose whole cost is a handful of wake-ups (docs/observability.md#cost).
// Here an ended span is appended under a lock, and the goroutine wakes when a batch is full or the schedule delay
// has passed.
type batcher struct {
	exp sdktrace.SpanExporter
	o   batchOptions

	mu      sync.Mutex
	queue   []sdktrace.ReadOnlySpan
	dropped int // since the last report
	stopped bool

	full     chan struct{} // holds one signal: a batch is ready
	stop     chan struct{}
	done     chan struct{} // closed when the goroutine has ended
	exportMu sync.Mutex    // one export at a time, in the order the spans ended
	stopOnce sync.Once
}

var _ sdktrace.SpanProcessor = (*batcher)(nil)

// batchOptions are the SDK's batch settings.
type batchOptions struct {
	delay     time.Duration // OTEL_BSP_SCHEDULE_DELAY: longest a span waits for its export
	timeout   time.Duration // OTEL_BSP_EXPORT_TIMEOUT: longest one export may take
	queueSize int           // OTEL_BSP_MAX_QUEUE_SIZE: spans waiting at most; beyond it they are dropped
	batchSize int           // OTEL_BSP_MAX_EXPORT_BATCH_SIZE: spans in one export at most
}

// defaultBatchSize is the batch exported at once when OTEL_BSP_MAX_EXPORT_BATCH_SIZE does not say: 128 spans, not the
// SDK's 512. An export turns its whole batch into protobuf objects and one encoded body at once, about a megabyte
// for 512 spans: on a proxy whose live heap is a megabyte or two, each such burst grew the heap past the garbage
// collector's goal, and the runtime gave those pages back to the kernel after the collection only to fault them in
// again at the next burst. With streamproxy's traced tool calls (the transport package's BenchmarkCallTracingOn,
// 8000 calls), 512 made about 600 page faults per 1000 calls (tracing off: 160) and 6 to 9% of tracing's CPU went
// to the runtime's scavenger; 128 makes about 260 and the scavenger's share is gone, for four times as many
// exports, which cost less than that (docs/observability.md#cost).
const defaultBatchSize = 128

// batchOptionsFrom reads the OTEL_BSP_* variables as the SDK does: milliseconds and counts, the SDK's defaults (but
// defaultBatchSize) for a value unset or not a positive number, a batch no larger than the queue.
func batchOptionsFrom(getenv func(string) string) batchOptions {
	read := func(name string, def int) int {
		if n, err := strconv.Atoi(getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	o := batchOptions{
		delay:     time.Duration(read("OTEL_BSP_SCHEDULE_DELAY", sdktrace.DefaultScheduleDelay)) * time.Millisecond,
		timeout:   time.Duration(read("OTEL_BSP_EXPORT_TIMEOUT", sdktrace.DefaultExportTimeout)) * time.Millisecond,
		queueSize: read("OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.DefaultMaxQueueSize),
		batchSize: read("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", defaultBatchSize),
	}
	o.batchSize = min(o.batchSize, o.queueSize)
	return o
}

func newBatcher(exp sdktrace.SpanExporter, o batchOptions) *batcher {
	b := &batcher{exp: exp, o: o, queue: make([]sdktrace.ReadOnlySpan, 0, o.batchSize),
		full: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues a sampled span; with the queue full it is dropped, and counted.
func (b *batcher) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		return
	}
	if len(b.queue) >= b.o.queueSize {
		b.dropped++
		b.mu.Unlock()
		return
	}
	b.queue = append(b.queue, s)
	full := len(b.queue) == b.o.batchSize
	b.mu.Unlock()
	if full {
		select {
		case b.full <- struct{}{}:
		default: // already signalled
		}
	}
}

func (b *batcher) run() {
	defer close(b.done)
	tick := time.NewTicker(b.o.delay)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		case <-b.full:
		}
		if err := b.export(context.Background()); err != nil {
			otel.Handle(err)
		}
	}
}

// export sends every queued span, a batch at a time, each batch within the export timeout (and ctx).
func (b *batcher) export(ctx context.Context) error {
	b.exportMu.Lock()
	defer b.exportMu.Unlock()
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.o.batchSize)
		batch := make([]sdktrace.ReadOnlySpan, n)
		copy(batch, b.queue)
		b.queue = append(b.queue[:0], b.queue[n:]...)
		dropped := b.dropped
		b.dropped = 0
		b.mu.Unlock()
		if dropped > 0 {
			otel.Handle(fmt.Errorf("%d spans dropped: more than %d waited for export (OTEL_BSP_MAX_QUEUE_SIZE)", dropped, b.o.queueSize))
		}
		if n == 0 {
			return nil
		}
		ectx, cancel := context.WithTimeout(ctx, b.o.timeout)
		err := b.exp.ExportSpans(ectx, batch)
		cancel()
		if err != nil {
			return fmt.Errorf("exporting %d spans: %w", n, err)
		}
	}
}

// ForceFlush exports every queued span.
func (b *batcher) ForceFlush(ctx context.Context) error {
	return b.export(ctx)
}

// Shutdown exports every queued span and shuts the exporter down; spans that end later are not exported.
func (b *batcher) Shutdown(ctx context.Context) error {
	var err error
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.stopped = true
		b.mu.Unlock()
		close(b.stop)
		select {
		case <-b.done:
		case <-ctx.Done(): // an export under way to a collector that does not answer
			err = ctx.Err()
			return
		}
		err = errors.Join(b.export(ctx), b.exp.Shutdown(ctx))
	})
	return err
}

package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBuffer is how many events may wait for the writer before new ones are dropped (and counted).
const DefaultBuffer = 4096

// Options configure a Logger.
type Options struct {
	Service string // the "service" of every event
	Buffer  int    // events that may wait for the writer (0: DefaultBuffer)
	// Registerer gets <Namespace>_audit_events_dropped_total (nil: not registered, still logged).
	Registerer prometheus.Registerer
	Namespace  string
	Log        *slog.Logger // where drops and write errors are reported (nil: slog.Default())
}

// Logger writes events to one destination from a goroutine of its own. A nil *Logger records nothing, so a part
// built without an audit trail (in tests) needs no checks.
//
// Events wait in a bounded buffer and are written in batches, at most flushDelay after the first of them: the writer
// wakes once per batch rather than once per event (a wake-up and a write per audited call were a visible share of
// streamproxy's cost per call), and a batch is one write (one flush for a flusher).
type Logger struct {
	service string
	out     io.Writer
	closer  io.Closer // nil for stdout
	log     *slog.Logger
	dropped *prometheus.CounterVec
	lost    atomic.Int64 // events dropped since the last warning
	warned  atomic.Int64 // unix nanoseconds of the last warning
	done    chan struct{}
	wake    chan struct{} // holds one signal: lines wait, or the logger closed
	flush   *time.Timer   // wakes the writer delay after a line arrives in an empty buffer
	delay   time.Duration // flushDelay; tests change it

	mu      sync.Mutex
	pending [][]byte // encoded lines, oldest first
	max     int      // lines pending at most
	closed  bool
}

// flushDelay is how long an event may wait for the ones after it before the batch is written; flushAt is the batch
// that is written at once.
const (
	flushDelay = 50 * time.Millisecond
	flushAt    = 256
)

// Destinations Open understands besides a file's path.
const (
	Stdout = "stdout"
	Off    = "off"
)

// Open returns a logger writing to dest: Stdout, Off (nil: nothing recorded), OTLP (log records to a collector) or
// a file's path, appended to and created with mode 0600 (an audit trail names users).
func Open(dest string, o Options) (*Logger, error) {
	switch dest {
	case Off:
		return nil, nil
	case Stdout, "":
		return New(os.Stdout, nil, o), nil
	case OTLP:
		sink, err := openOTLP(context.Background(), o.Service, os.Getenv)
		if err != nil {
			return nil, err
		}
		return New(sink, sink, o), nil
	}
	f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return New(f, f, o), nil
}

// New returns a logger writing lines to w; Close closes closer (may be nil) once the buffer is drained.
func New(w io.Writer, closer io.Closer, o Options) *Logger {
	if o.Buffer <= 0 {
		o.Buffer = DefaultBuffer
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	l := &Logger{service: o.Service, out: w, closer: closer, log: o.Log, max: o.Buffer, delay: flushDelay,
		done: make(chan struct{}), wake: make(chan struct{}, 1),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: o.Namespace,
			Name: "audit_events_dropped_total",
			Help: "Audit events not written: the buffer was full (buffer_full), the destination failed (write_error) or the logger was closed (closed)."},
			[]string{"reason"})}
	l.flush = time.AfterFunc(time.Hour, l.signal)
	l.flush.Stop()
	if o.Registerer != nil {
		o.Registerer.MustRegister(l.dropped)
	}
	go l.write()
	return l
}

// Record queues e, stamped with the schema version, the service, the time and the request and trace ids of ctx.
// It never blocks: with the buffer full the event is dropped, counted and reported.
func (l *Logger) Record(ctx context.Context, e Event) {
	if l == nil {
		return
	}
	e.fill(ctx, l.service, time.Now())
	line, err := json.Marshal(e)
	if err != nil { // only an argument that is not JSON can do this
		l.log.ErrorContext(ctx, "audit event not encodable", "event", e.Name, "err", err)
		l.drop("write_error", 1)
		return
	}
	l.mu.Lock()
	switch {
	case l.closed:
		l.mu.Unlock()
		l.drop("closed", 1)
		return
	case len(l.pending) >= l.max:
		l.mu.Unlock()
		l.drop("buffer_full", 1)
		return
	}
	l.pending = append(l.pending, append(line, '\n'))
	n := len(l.pending)
	l.mu.Unlock()
	switch n {
	case 1:
		l.flush.Reset(l.delay)
	case flushAt:
		l.signal()
	}
}

// signal wakes the writer, unless a wake is already waiting.
func (l *Logger) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// drop counts n lost events and warns, at most once a second, with how many were lost since the last warning.
func (l *Logger) drop(reason string, n int) {
	l.dropped.WithLabelValues(reason).Add(float64(n))
	l.lost.Add(int64(n))
	now := time.Now().UnixNano()
	last := l.warned.Load()
	if now-last < int64(time.Second) || !l.warned.CompareAndSwap(last, now) {
		return
	}
	l.log.Warn("audit events dropped", "reason", reason, "dropped_since_last_warning", l.lost.Swap(0))
}

// flusher is a destination that holds what it was given until Flush, which reports how many events it lost.
type flusher interface {
	Flush() (lost int, err error)
}

// flushEvery is how many events a flusher holds at most: the writer flushes after each batch, and at least this
// often within a long one, so that what the destination holds is bounded and each loss is counted.
const flushEvery = 512

func (l *Logger) write() {
	defer close(l.done)
	var batch [][]byte
	var buf bytes.Buffer
	for range l.wake {
		l.mu.Lock()
		batch, l.pending = l.pending, batch[:0]
		closed := l.closed
		l.mu.Unlock()
		if f, ok := l.out.(flusher); ok {
			l.emit(f, batch)
		} else {
			buf.Reset()
			for _, line := range batch {
				buf.Write(line)
			}
			if buf.Len() > 0 {
				if _, err := l.out.Write(buf.Bytes()); err != nil {
					l.log.Error("audit events not written", "events", len(batch), "err", err)
					l.drop("write_error", len(batch))
				}
			}
		}
		clear(batch) // written: the buffer must not keep them
		if closed {
			return
		}
	}
}

// emit gives a flusher the batch's events one at a time, flushing every flushEvery and at the end.
func (l *Logger) emit(f flusher, batch [][]byte) {
	held := 0
	for i, line := range batch {
		if _, err := l.out.Write(line); err != nil {
			l.log.Error("audit event not written", "err", err)
			l.drop("write_error", 1)
		} else {
			held++
		}
		if held == 0 || (i < len(batch)-1 && held < flushEvery) {
			continue
		}
		held = 0
		if lost, err := f.Flush(); err != nil {
			l.log.Error("audit events not written", "events", lost, "err", err)
			l.drop("write_error", lost)
		}
	}
}

// Close writes the events still buffered and closes the destination. Events recorded after Close are lost.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.flush.Stop()
	l.signal()
	<-l.done
	if l.closer != nil {
		return l.closer.Close()
	}
	return nil
}

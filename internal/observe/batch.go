package observe

import (
	"io"
	"sync"
	"time"
)

// BatchWriter holds what is written to it for up to its delay and passes it on in one write. A service that logs a
// line per request (Handler's access log) then makes one write to its log per batch rather than one per request:
// each is a system call, and a wake-up of whatever reads the log. A logger over it (NewLoggerAt) passes warnings
// and errors on at once. Flush passes on what waits; the process calls it before it exits, so no line is lost on
// shutdown.
type BatchWriter struct {
	out   io.Writer
	delay time.Duration
	timer *time.Timer // flushes delay after a write to an empty batch

	mu  sync.Mutex
	buf []byte
}

// LogDelay is how late a batched log line may reach its writer: as late as an audit event (internal/audit).
const LogDelay = 50 * time.Millisecond

// batchLimit is the batch written at once, without waiting for the delay.
const batchLimit = 64 << 10

// NewBatchWriter returns a writer that passes on to out what is written to it at most delay later.
func NewBatchWriter(out io.Writer, delay time.Duration) *BatchWriter {
	b := &BatchWriter{out: out, delay: delay}
	b.timer = time.AfterFunc(time.Hour, func() { _ = b.Flush() })
	b.timer.Stop()
	return b
}

// Write adds p to the batch; it fails only when a full batch could not be passed on.
func (b *BatchWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) == 0 {
		b.timer.Reset(b.delay) // one timer per batch, not per line
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= batchLimit {
		return len(p), b.flushLocked()
	}
	return len(p), nil
}

// Flush passes on what waits.
func (b *BatchWriter) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

func (b *BatchWriter) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.out.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// Unwrap is the writer the batches go to (NewLoggerAt looks through it for a terminal).
func (b *BatchWriter) Unwrap() io.Writer { return b.out }

package observe

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writes records each write it is given, and signals the first.
type writes struct {
	mu    sync.Mutex
	got   [][]byte
	first chan struct{}
}

func (w *writes) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, bytes.Clone(p))
	if len(w.got) == 1 {
		close(w.first)
	}
	return len(p), nil
}

func (w *writes) all() [][]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.got
}

func TestBatchWriterPassesLinesOnInOneWrite(t *testing.T) {
	out := &writes{first: make(chan struct{})}
	b := NewBatchWriter(out, 20*time.Millisecond)
	_, err := b.Write([]byte("one\n"))
	require.NoError(t, err)
	_, err = b.Write([]byte("two\n"))
	require.NoError(t, err)
	select {
	case <-out.first:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch never reached the writer without a Flush")
	}
	assert.Equal(t, [][]byte{[]byte("one\ntwo\n")}, out.all(), "lines written within the delay are one write")
}

func TestBatchWriterFlushLosesNothing(t *testing.T) {
	out := &writes{first: make(chan struct{})}
	b := NewBatchWriter(out, time.Hour)
	_, _ = b.Write([]byte("last words\n"))
	require.NoError(t, b.Flush())
	assert.Equal(t, [][]byte{[]byte("last words\n")}, out.all())
	require.NoError(t, b.Flush())
	assert.Len(t, out.all(), 1, "an empty batch is no write")
}

func TestBatchWriterWritesAFullBatchAtOnce(t *testing.T) {
	out := &writes{first: make(chan struct{})}
	b := NewBatchWriter(out, time.Hour)
	line := bytes.Repeat([]byte("x"), 1024)
	for range batchLimit / len(line) {
		_, _ = b.Write(line)
	}
	assert.Len(t, out.all(), 1, "a full batch does not wait for the delay")
	assert.Len(t, out.all()[0], batchLimit)
}

func TestLoggerThroughABatchWriter(t *testing.T) {
	var out bytes.Buffer
	b := NewBatchWriter(&out, time.Hour)
	log, err := NewLogger("auto", b)
	require.NoError(t, err)
	log.Info("hello")
	assert.Empty(t, out.String(), "the line waits for its batch")
	require.NoError(t, b.Flush())
	assert.Contains(t, out.String(), `"msg":"hello"`)
}

func TestLoggerPassesWarningsOnAtOnce(t *testing.T) {
	var out bytes.Buffer
	b := NewBatchWriter(&out, time.Hour)
	log, err := NewLogger("json", b)
	require.NoError(t, err)
	log.Info("before")
	log.With("session", "s1").Warn("trouble")
	assert.Contains(t, out.String(), `"msg":"before"`, "the lines before a warning go with it, in order")
	assert.Contains(t, out.String(), `"msg":"trouble"`, "a warning is not held back")
}

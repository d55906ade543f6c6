package session

import (
	"bytes"
	"log/slog"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// logBuffer is a log's output that goroutines may write while a test reads it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Close closes the child's stdin first, so a server that exits at the end of its input ends on its own, before any
// signal. The child here ignores SIGTERM, so only its stdin can end it before the SIGKILL after grace.
func TestCloseEndsTheChildByItsStdin(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	var logs logBuffer
	s, err := Start(Config{Command: Command{Path: sh, Args: []string{"-c", `trap "" TERM; cat >/dev/null`}},
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	s.Close(5 * time.Second)
	assert.Regexp(t, `msg="MCP server exited" .*status="exit status 0"`, logs.String())
}

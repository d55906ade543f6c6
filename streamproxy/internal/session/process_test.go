package session

import (
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Close closes the child's stdin first, so a server that exits at the end of its input ends on its own, before any
// signal. The child here ignores SIGTERM, so only its stdin can end it before the SIGKILL after grace.
func TestCloseEndsTheChildByItsStdin(t *testing.T) {
	sh, err := exec.LookPath("sh")
	require.NoError(t, err)
	var logs testenv.SyncBuffer
	s, err := Start(Config{Command: Command{Path: sh, Args: []string{"-c", `trap "" TERM; cat >/dev/null`}},
		Log: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	s.Close(5 * time.Second)
	assert.Regexp(t, `msg="MCP server exited" .*status="exit status 0"`, logs.String())
}

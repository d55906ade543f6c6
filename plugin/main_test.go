package plugin

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// TestMain silences the middleware's logs: tests start and drop many issuers, and the refresh loops of finished
// tests report their vanished servers. MCP_OAUTH_TEST_LOGS=1 shows them.
func TestMain(m *testing.M) {
	if os.Getenv("MCP_OAUTH_TEST_LOGS") == "" {
		registry.info = slog.New(slog.NewTextHandler(io.Discard, nil))
		registry.errs = registry.info
	}
	os.Exit(m.Run())
}

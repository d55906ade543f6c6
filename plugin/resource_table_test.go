package plugin

import (
	"testing"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The plugin's side of the table the authserver is held to as well (authserver/internal/oauth/resource_test.go).
func TestCanonicalResourceTable(t *testing.T) {
	testenv.CheckCanonicalResources(t, "plugin", canonicalResource)
}

package oauth

import (
	"testing"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The authserver's side of the table the plugin is held to as well (plugin/resource_table_test.go).
func TestCanonicalResourceTable(t *testing.T) {
	testenv.CheckCanonicalResources(t, "authserver", canonicalResource)
}

package plugin

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
)

// compiled runs the middleware as ordinary Go. The same tests run interpreted by Yaegi in the module
// plugin/yaegitest, so that Yaegi stays out of the gateway's go.mod (the Traefik Plugin Catalog refuses it there).
var compiled = plugintest.Mode{Name: "compiled", Build: buildCompiled, StopAll: registry.stopAll}

func buildCompiled(t testing.TB, cfg map[string]interface{}, next http.Handler) (http.Handler, error) {
	c := CreateConfig()
	if err := plugintest.DecodeLikeTraefik(c, cfg); err != nil {
		return nil, fmt.Errorf("failed to decode configuration: %w", err)
	}
	return New(context.Background(), next, c, "test")
}

// TestCompiled runs the tests every mode shares (internal/plugintest): the behaviour table, key rotation,
// revocation, reloads, configuration errors and decoding.
func TestCompiled(t *testing.T) {
	plugintest.Run(t, compiled)
}

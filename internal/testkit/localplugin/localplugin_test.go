package localplugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Setup lays out the working tree's plugin without its tests, the reference plugins beside it, and a static
// configuration that names them all.
func TestSetup(t *testing.T) {
	dir := t.TempDir()
	// A previous run's files are replaced.
	stale := filepath.Join(dir, "plugins-local", "src", "example.test", "gone")
	require.NoError(t, os.MkdirAll(stale, 0o755))

	path, err := Setup(dir, Static{Address: "127.0.0.1:1", DynamicFile: "/d.yml", Plugins: []Plugin{Gateway(testenv.RepoRoot(t)), Noop()},
		Extra: map[string]any{"ping": map[string]any{"entryPoint": "web"}}})
	require.NoError(t, err)
	assert.NoDirExists(t, stale)

	mod := filepath.Join(dir, "plugins-local", "src", "github.com", "mcp-oauth-gateway", "gateway")
	for _, f := range []string{".traefik.yml", "go.mod", "plugin/middleware.go"} {
		assert.FileExists(t, filepath.Join(mod, f))
	}
	tests, err := filepath.Glob(filepath.Join(mod, "plugin", "*_test.go"))
	require.NoError(t, err)
	assert.Empty(t, tests)
	assert.FileExists(t, filepath.Join(dir, "plugins-local", "src", "example.test", "noop", "noop.go"))

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var static struct {
		Experimental struct {
			LocalPlugins map[string]struct{ ModuleName string }
		}
		Ping map[string]string
		Log  *struct{}
	}
	require.NoError(t, json.Unmarshal(b, &static))
	assert.Equal(t, Module, static.Experimental.LocalPlugins["mcpoauth"].ModuleName)
	assert.Equal(t, "example.test/noop", static.Experimental.LocalPlugins["noop"].ModuleName)
	assert.Equal(t, "web", static.Ping["entryPoint"])
	assert.Nil(t, static.Log, "no log level: Traefik's default")
}

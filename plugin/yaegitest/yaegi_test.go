package yaegitest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/localplugin"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/plugintest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

const importPath = "github.com/mcp-oauth-gateway/gateway/plugin"

// interpreted runs the middleware under Yaegi loaded as Traefik loads a local plugin.
var interpreted = plugintest.Mode{Name: "yaegi", Build: buildYaegi, StopAll: stopAll}

var yaegiInterp *interp.Interpreter

var yaegiPlugin struct {
	once         sync.Once
	err          error
	gopath       string // the interpreter's source tree, removed by TestMain
	fnNew        reflect.Value
	createConfig reflect.Value
}

// TestMain removes the interpreter's source tree.
func TestMain(m *testing.M) {
	code := m.Run()
	if yaegiPlugin.gopath != "" {
		_ = os.RemoveAll(yaegiPlugin.gopath)
	}
	os.Exit(code)
}

// loadYaegi interprets the plugin the way Traefik does (pkg/plugins: newInterpreter and newYaegiMiddlewareBuilder):
// a GOPATH with the sources under src/<import path>, the stdlib symbols only, then New and CreateConfig by name.
func loadYaegi(t testing.TB) (reflect.Value, reflect.Value) {
	t.Helper()
	yp := &yaegiPlugin
	yp.once.Do(func() {
		gopath, err := os.MkdirTemp("", "mcp-oauth-yaegi-")
		if err != nil {
			yp.err = err
			return
		}
		yp.gopath = gopath
		root, err := testenv.Root()
		if err == nil {
			err = localplugin.CopySources(root, filepath.Join(gopath, "src", filepath.FromSlash(importPath)))
		}
		if err != nil {
			yp.err = err
			return
		}
		env := os.Environ()
		if os.Getenv("MCP_OAUTH_TEST_LOGS") == "" {
			env = append(env, "MCP_OAUTH_PLUGIN_LOGS=off")
		}
		i := interp.New(interp.Options{GoPath: gopath, Env: env})
		if err := i.Use(stdlib.Symbols); err != nil {
			yp.err = err
			return
		}
		if _, err := i.Eval(`import "` + importPath + `"`); err != nil {
			yp.err = fmt.Errorf("yaegi cannot import the plugin: %w", err)
			return
		}
		yaegiInterp = i
		if yp.fnNew, err = i.Eval("plugin.New"); err != nil {
			yp.err = err
			return
		}
		yp.createConfig, yp.err = i.Eval("plugin.CreateConfig")
	})
	require.NoError(t, yp.err)
	return yp.createConfig, yp.fnNew
}

func buildYaegi(t testing.TB, cfg map[string]interface{}, next http.Handler) (http.Handler, error) {
	createConfig, fnNew := loadYaegi(t)
	res := createConfig.Call(nil)
	if len(res) != 1 {
		return nil, fmt.Errorf("CreateConfig returned %d values", len(res))
	}
	vConfig := res[0]
	if err := plugintest.DecodeLikeTraefik(vConfig.Interface(), cfg); err != nil {
		return nil, fmt.Errorf("failed to decode configuration: %w", err)
	}
	out := fnNew.Call([]reflect.Value{reflect.ValueOf(context.Background()), reflect.ValueOf(next), vConfig, reflect.ValueOf("test")})
	if len(out) > 1 && out[1].Interface() != nil {
		return nil, out[1].Interface().(error)
	}
	h, ok := out[0].Interface().(http.Handler)
	if !ok {
		return nil, fmt.Errorf("New returned %T, not an http.Handler", out[0].Interface())
	}
	return h, nil
}

// stopAll ends the refresh loops of the interpreted registry.
func stopAll() {
	if yaegiInterp != nil {
		_, _ = yaegiInterp.Eval("plugin.registry.stopAll()")
	}
}

func TestYaegiLoadsPlugin(t *testing.T) {
	createConfig, fnNew := loadYaegi(t)
	require.True(t, createConfig.IsValid())
	require.Equal(t, 4, fnNew.Type().NumIn(), "New(ctx, next, config, name)")
	require.Equal(t, 2, fnNew.Type().NumOut(), "New returns (http.Handler, error)")
	_, err := yaegiInterp.Eval("plugin.registry.stopAll()")
	require.NoError(t, err, "tests stop the interpreted refresh loops this way")
}

// TestYaegi runs the tests every mode shares (internal/plugintest) with the middleware interpreted by Yaegi.
func TestYaegi(t *testing.T) {
	plugintest.Run(t, interpreted)
}

func BenchmarkCachedToken(b *testing.B) { plugintest.BenchCachedToken(b, interpreted) }

func BenchmarkFirstSeenToken(b *testing.B) { plugintest.BenchFirstSeenToken(b, interpreted) }

// TestYaegiCacheMemoryPerToken holds the cache's memory estimate (the plugin's entryOverhead plus the Authorization
// value) to what a cached token really costs under Yaegi.
func TestYaegiCacheMemoryPerToken(t *testing.T) {
	t.Cleanup(stopAll)
	per := plugintest.CacheMemoryPerToken(t, buildYaegi, 5000)
	v, err := yaegiInterp.Eval("plugin.entryOverhead")
	require.NoError(t, err)
	overhead := v.Int()
	t.Logf("yaegi: %.0f bytes per cached token beyond its Authorization value (entryOverhead %d)", per, overhead)
	require.LessOrEqual(t, per, float64(overhead))
}

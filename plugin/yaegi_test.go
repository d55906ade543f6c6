package plugin

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mitchellh/mapstructure"
	"github.com/stretchr/testify/require"
	"github.com/traefik/yaegi/interp"
	"github.com/traefik/yaegi/stdlib"
)

const importPath = "github.com/mcp-oauth-gateway/gateway/plugin"

// buildFunc builds the middleware from a Traefik-style dynamic configuration (the map Traefik hands to plugins).
type buildFunc func(t testing.TB, cfg map[string]interface{}, next http.Handler) (http.Handler, error)

// modes are the two ways the behaviour tests run the middleware: compiled, and interpreted by Yaegi as in Traefik.
var modes = []struct {
	name  string
	build buildFunc
}{
	{"compiled", buildCompiled},
	{"yaegi", buildYaegi},
}

// decodeLikeTraefik fills config from a dynamic-configuration map exactly as Traefik 3.6's plugin loader does
// (pkg/plugins/middlewareyaegi.go, createConfig).
func decodeLikeTraefik(config interface{}, m map[string]interface{}) error {
	if len(m) == 0 {
		return nil
	}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.StringToSliceHookFunc(","),
		WeaklyTypedInput: true,
		Result:           config,
	})
	if err != nil {
		return err
	}
	return dec.Decode(m)
}

func buildCompiled(t testing.TB, cfg map[string]interface{}, next http.Handler) (http.Handler, error) {
	c := CreateConfig()
	if err := decodeLikeTraefik(c, cfg); err != nil {
		return nil, fmt.Errorf("failed to decode configuration: %w", err)
	}
	return New(context.Background(), next, c, "test")
}

var yaegiInterp *interp.Interpreter

var yaegiPlugin struct {
	once         sync.Once
	err          error
	fnNew        reflect.Value
	createConfig reflect.Value
}

// pluginSources copies the plugin's non-test Go files into dir, as Traefik finds them in plugins-local/src/<module>.
func pluginSources(t testing.TB, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o755))
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, f), b, 0o644))
		n++
	}
	require.NotZero(t, n, "no plugin sources found")
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
		yaegiGopath = gopath
		pluginSources(t, filepath.Join(gopath, "src", filepath.FromSlash(importPath)))
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
	if err := decodeLikeTraefik(vConfig.Interface(), cfg); err != nil {
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

// stopAllIssuers ends the refresh loops of both registries, the compiled one and the interpreted one, so finished
// tests leave no pollers behind.
func stopAllIssuers() {
	registry.stopAll()
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

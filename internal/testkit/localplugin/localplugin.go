// Package localplugin runs the plugin in a real Traefik the way the dev stack and a published plugin have it: it
// lays out Traefik's local plugins (plugins-local/src/<module>) from the working tree, with reference plugins beside
// them, and writes the static configuration that loads them (experimental.localPlugins). The dev stack, the
// benchmark suite and the plugin's Traefik tests use it.
package localplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Module is the gateway's module, the plugin's import path in Traefik.
const Module = "github.com/mcp-oauth-gateway/gateway"

// Plugin is one local plugin.
type Plugin struct {
	Name   string // its key under experimental.localPlugins, which middlewares name
	Module string
	write  func(modDir string) error // writes the module's files into plugins-local/src/<Module>
}

// Gateway is the gateway's plugin from the working tree at root: the manifest and go.mod at the module root and the
// non-test sources of plugin/, as a published plugin has them.
func Gateway(root string) Plugin {
	return Plugin{Name: "mcpoauth", Module: Module, write: func(modDir string) error {
		for _, f := range []string{".traefik.yml", "go.mod"} {
			if err := copyFile(filepath.Join(root, f), filepath.Join(modDir, f)); err != nil {
				return err
			}
		}
		return CopySources(root, filepath.Join(modDir, "plugin"))
	}}
}

// Reference is a one-file plugin, module example.test/<name>, whose source is a package <name>.
func Reference(name, source string) Plugin {
	return Plugin{Name: name, Module: "example.test/" + name, write: func(modDir string) error {
		manifest := fmt.Sprintf("displayName: %s\ntype: middleware\nimport: example.test/%s\nsummary: reference plugin\ntestData: {}\n", name, name)
		if err := os.WriteFile(filepath.Join(modDir, ".traefik.yml"), []byte(manifest), 0o644); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(modDir, name+".go"), []byte(source), 0o644)
	}}
}

// Noop is the do-nothing Yaegi plugin: what any interpreted middleware costs in Traefik, the floor under the
// plugin's cost.
func Noop() Plugin { return Reference("noop", noopSource) }

const noopSource = `package noop

import (
	"context"
	"net/http"
)

type Config struct{}

func CreateConfig() *Config { return &Config{} }

type noop struct{ next http.Handler }

func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	return &noop{next: next}, nil
}

func (n *noop) ServeHTTP(w http.ResponseWriter, r *http.Request) { n.next.ServeHTTP(w, r) }
`

// CopySources copies the plugin's non-test Go files from root/plugin into dst, as Traefik finds them under
// plugins-local/src/<module>/plugin (and Yaegi under a GOPATH).
func CopySources(root, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("plugin sources: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(root, "plugin", "*.go"))
	if err != nil {
		return fmt.Errorf("plugin sources: %w", err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if err := copyFile(f, filepath.Join(dst, filepath.Base(f))); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("no plugin sources in %s", filepath.Join(root, "plugin"))
	}
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return fmt.Errorf("plugin layout: %w", err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		return fmt.Errorf("plugin layout: %w", err)
	}
	return nil
}

// Static is Traefik's static configuration for a run with local plugins.
type Static struct {
	Address     string // of the one entry point, web
	DynamicFile string // the file provider's file
	LogLevel    string // Traefik's default when empty
	Plugins     []Plugin
	Extra       map[string]any // further top-level sections (ping, accessLog)
}

// Setup lays out st's plugins under dir/plugins-local (replacing what a previous run left there) and writes the
// static configuration to dir/traefik.yml, whose path it returns. Traefik must run with dir as its working
// directory: it reads local plugins from ./plugins-local.
func Setup(dir string, st Static) (string, error) {
	local := filepath.Join(dir, "plugins-local")
	if err := os.RemoveAll(local); err != nil {
		return "", fmt.Errorf("plugin layout: %w", err)
	}
	plugins := map[string]any{}
	for _, p := range st.Plugins {
		modDir := filepath.Join(local, "src", filepath.FromSlash(p.Module))
		if err := os.MkdirAll(modDir, 0o755); err != nil {
			return "", fmt.Errorf("plugin layout: %w", err)
		}
		if err := p.write(modDir); err != nil {
			return "", fmt.Errorf("local plugin %s: %w", p.Name, err)
		}
		plugins[p.Name] = map[string]string{"moduleName": p.Module}
	}
	if len(plugins) == 0 {
		return "", errors.New("no local plugins to load")
	}
	static := map[string]any{
		"global":       map[string]bool{"checkNewVersion": false, "sendAnonymousUsage": false},
		"entryPoints":  map[string]any{"web": map[string]string{"address": st.Address}},
		"providers":    map[string]any{"file": map[string]string{"filename": st.DynamicFile}},
		"experimental": map[string]any{"localPlugins": plugins},
	}
	if st.LogLevel != "" {
		static["log"] = map[string]string{"level": st.LogLevel}
	}
	for k, v := range st.Extra {
		static[k] = v
	}
	// YAML is a superset of JSON.
	b, err := json.MarshalIndent(static, "", "  ")
	if err != nil {
		return "", fmt.Errorf("static configuration: %w", err)
	}
	path := filepath.Join(dir, "traefik.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", fmt.Errorf("static configuration: %w", err)
	}
	return path, nil
}

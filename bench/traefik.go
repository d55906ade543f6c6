package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/localplugin"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// startBackend starts the trivial backend in its own process and returns its port.
func startBackend(e *env) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("find own executable: %w", err)
	}
	port, err := freeport.Pick()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(self)
	cmd.Env = testenv.Env(backendEnv + "=127.0.0.1:" + strconv.Itoa(port))
	if _, err := e.start("backend", cmd); err != nil {
		return 0, err
	}
	if err := testenv.AwaitTCP("127.0.0.1:"+strconv.Itoa(port), 10*time.Second); err != nil {
		return 0, fmt.Errorf("backend: %w", err)
	}
	return port, nil
}

// traefikRoute is one router of the benchmark Traefik: a path prefix and the middleware YAML it uses (empty: none).
type traefikRoute struct {
	Name       string
	Prefix     string
	Middleware string // YAML of one middleware definition, indented under its name
}

// startTraefik runs Traefik 3.6 on port with the plugin of the working tree loaded as a local plugin (the way the
// dev stack loads it), two reference plugins beside it, and one router per route, all to the same backend.
func startTraefik(e *env, port, backendPort int, routes []traefikRoute) (*testenv.Process, error) {
	bin, err := testenv.FindTraefik()
	if err != nil {
		return nil, err
	}
	root, err := testenv.Root()
	if err != nil {
		return nil, err
	}
	dir, err := e.tempDir()
	if err != nil {
		return nil, err
	}

	var dyn strings.Builder
	dyn.WriteString("http:\n  routers:\n")
	for _, r := range routes {
		fmt.Fprintf(&dyn, "    %s:\n      entryPoints: [web]\n      rule: \"PathPrefix(`%s`)\"\n      service: backend\n", r.Name, r.Prefix)
		if r.Middleware != "" {
			fmt.Fprintf(&dyn, "      middlewares: [%s]\n", r.Name)
		}
	}
	dyn.WriteString("  middlewares:\n")
	for _, r := range routes {
		if r.Middleware != "" {
			fmt.Fprintf(&dyn, "    %s:\n%s\n", r.Name, r.Middleware)
		}
	}
	fmt.Fprintf(&dyn, "  services:\n    backend:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:%d\n", backendPort)
	dynPath := filepath.Join(dir, "dynamic.yml")
	if err := os.WriteFile(dynPath, []byte(dyn.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write Traefik's dynamic configuration: %w", err)
	}

	// The reference plugins: one that does nothing (what any interpreted middleware costs in Traefik, the floor
	// under the plugin's cost) and one that only writes the identity headers (the floor of a plugin that must).
	static, err := localplugin.Setup(dir, localplugin.Static{
		Address:     "127.0.0.1:" + strconv.Itoa(port),
		DynamicFile: dynPath,
		LogLevel:    "ERROR",
		Plugins:     []localplugin.Plugin{localplugin.Gateway(root), localplugin.Noop(), localplugin.Reference("headers", headersSource)},
	})
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(bin, "--configFile="+static)
	cmd.Dir = dir // Traefik reads local plugins from ./plugins-local
	p, err := e.start("traefik", cmd)
	if err != nil {
		return nil, err
	}
	if err := testenv.AwaitTCP("127.0.0.1:"+strconv.Itoa(port), 30*time.Second); err != nil {
		return nil, fmt.Errorf("traefik: %w", err)
	}
	// The routers appear once the file provider's configuration is applied; wait for every route to answer
	// something other than 404.
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range routes {
		for {
			resp, err := http.Get(testenv.URL(port, r.Prefix))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					break
				}
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("route %s of Traefik never came up; its output:\n%s", r.Prefix, p.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return p, nil
}

// pluginMiddleware is the dynamic configuration of the mcp-oauth plugin for a route.
func pluginMiddleware(issuer, resource string) string {
	return fmt.Sprintf("      plugin:\n        mcpoauth:\n          issuer: %q\n          resource: %q\n", issuer, resource)
}

// forwardAuthMiddleware is Traefik's ForwardAuth to the authserver's /verify, passing the identity headers on.
func forwardAuthMiddleware(verifyURL string) string {
	return fmt.Sprintf("      forwardAuth:\n        address: %q\n        authResponseHeaders: [X-User-Id, X-User-Name, X-User-Email, X-Client-Id, X-Scopes]\n", verifyURL)
}

// noopMiddleware is the dynamic configuration of the do-nothing plugin.
const noopMiddleware = "      plugin:\n        noop: {}\n"

// headersMiddleware is the dynamic configuration of the reference plugin that writes the identity headers.
const headersMiddleware = "      plugin:\n        headers: {}\n"

// headersSource writes the identity headers of one user and removes Authorization on every request, as the plugin
// does on a cached token (precomputed values, one map assignment each), and looks nothing up.
const headersSource = `package headers

import (
	"context"
	"net/http"
)

type Config struct{}

func CreateConfig() *Config { return &Config{} }

type headerOp struct {
	name string
	vals []string
}

type headers struct {
	next http.Handler
	ops  []headerOp
}

func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	return &headers{next: next, ops: []headerOp{{"X-User-Id", []string{"1"}}, {"X-User-Name", []string{"bench-user-1"}},
		{"X-User-Email", []string{"bench@example.com"}}, {"X-Client-Id", []string{"bench-client"}}, {"X-Scopes", []string{"mcp"}},
		{"Authorization", nil}}}, nil
}

func (m *headers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	for _, op := range m.ops {
		h[op.name] = op.vals
	}
	m.next.ServeHTTP(w, r)
}
`

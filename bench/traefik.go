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

	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

const pluginModule = "github.com/mcp-oauth-gateway/gateway"

// startBackend starts the trivial backend in its own process and returns its port.
func startBackend(e *env) int {
	self, err := os.Executable()
	e.check(err, "find own executable")
	port := testenv.FreePort(e)
	cmd := exec.Command(self)
	cmd.Env = testenv.Env(backendEnv + "=127.0.0.1:" + strconv.Itoa(port))
	testenv.Start(e, "backend", cmd)
	testenv.WaitTCP(e, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)
	return port
}

// traefikRoute is one router of the benchmark Traefik: a path prefix and the middleware YAML it uses (empty: none).
type traefikRoute struct {
	Name       string
	Prefix     string
	Middleware string // YAML of one middleware definition, indented under its name
}

// startTraefik runs Traefik 3.6 on a free port with the plugin loaded as a local plugin (the way the dev stack
// loads it, from plugins-local/src/<module>) and one router per route, all to the same backend.
func startTraefik(e *env, port, backendPort int, routes func(port int) []traefikRoute) *testenv.Process {
	bin := testenv.TraefikBin(e)
	dir := e.TempDir()

	// The local plugin layout: the manifest at the module root, the sources under their import path.
	modDir := filepath.Join(dir, "plugins-local", "src", filepath.FromSlash(pluginModule))
	e.check(os.MkdirAll(filepath.Join(modDir, "plugin"), 0o755), "plugin dir")
	// The committed plugin (HEAD), not the working tree: the report names the commit it measured, and a
	// half-written file of someone else's must not break the run.
	manifest, err := gitShow(".traefik.yml")
	e.check(err, "read the plugin manifest .traefik.yml")
	e.check(os.WriteFile(filepath.Join(modDir, ".traefik.yml"), manifest, 0o644), "write manifest")
	out, err := exec.Command("git", "ls-tree", "--name-only", "HEAD", "plugin/").Output()
	e.check(err, "list plugin sources")
	n := 0
	for _, f := range strings.Fields(string(out)) {
		if !strings.HasSuffix(f, ".go") || strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := gitShow(f)
		e.check(err, "read plugin source")
		e.check(os.WriteFile(filepath.Join(modDir, "plugin", filepath.Base(f)), b, 0o644), "copy plugin source")
		n++
	}
	if n == 0 {
		e.Fatalf("no plugin sources in HEAD:plugin/")
	}

	// Two reference Yaegi plugins: one that does nothing (what any interpreted middleware costs in Traefik, the floor
	// under the plugin's cost) and one that only writes the identity headers (the floor of a plugin that must).
	for _, ref := range []struct{ name, source string }{{"noop", noopSource}, {"headers", headersSource}} {
		refDir := filepath.Join(dir, "plugins-local", "src", "example.test", ref.name)
		e.check(os.MkdirAll(refDir, 0o755), ref.name+" plugin dir")
		manifest := strings.ReplaceAll(referenceManifest, "NAME", ref.name)
		e.check(os.WriteFile(filepath.Join(refDir, ".traefik.yml"), []byte(manifest), 0o644), ref.name+" manifest")
		e.check(os.WriteFile(filepath.Join(refDir, ref.name+".go"), []byte(ref.source), 0o644), ref.name+" source")
	}

	var dyn strings.Builder
	dyn.WriteString("http:\n  routers:\n")
	for _, r := range routes(port) {
		fmt.Fprintf(&dyn, "    %s:\n      entryPoints: [web]\n      rule: \"PathPrefix(`%s`)\"\n      service: backend\n", r.Name, r.Prefix)
		if r.Middleware != "" {
			fmt.Fprintf(&dyn, "      middlewares: [%s]\n", r.Name)
		}
	}
	dyn.WriteString("  middlewares:\n")
	for _, r := range routes(port) {
		if r.Middleware != "" {
			fmt.Fprintf(&dyn, "    %s:\n%s\n", r.Name, r.Middleware)
		}
	}
	fmt.Fprintf(&dyn, "  services:\n    backend:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:%d\n", backendPort)
	dynPath := filepath.Join(dir, "dynamic.yml")
	e.check(os.WriteFile(dynPath, []byte(dyn.String()), 0o644), "write dynamic config")

	static := fmt.Sprintf(`global:
  checkNewVersion: false
  sendAnonymousUsage: false
log:
  level: ERROR
entryPoints:
  web:
    address: "127.0.0.1:%d"
providers:
  file:
    filename: %q
experimental:
  localPlugins:
    mcpoauth:
      moduleName: %s
    noop:
      moduleName: example.test/noop
    headers:
      moduleName: example.test/headers
`, port, dynPath, pluginModule)
	staticPath := filepath.Join(dir, "traefik.yml")
	e.check(os.WriteFile(staticPath, []byte(static), 0o644), "write static config")

	cmd := exec.Command(bin, "--configFile="+staticPath)
	cmd.Dir = dir // Traefik reads local plugins from ./plugins-local
	p := testenv.Start(e, "traefik", cmd)
	testenv.WaitTCP(e, "127.0.0.1:"+strconv.Itoa(port), 30*time.Second)
	// The routers appear once the file provider's configuration is applied; wait for every route to answer
	// something other than 404.
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range routes(port) {
		for {
			resp, err := http.Get(testenv.URL(port, r.Prefix))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					break
				}
			}
			if time.Now().After(deadline) {
				e.Fatalf("Traefik route %s never came up; Traefik output:\n%s", r.Prefix, p.Output())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return p
}

// gitShow reads a file as committed at HEAD.
func gitShow(path string) ([]byte, error) {
	b, err := exec.Command("git", "show", "HEAD:"+path).Output()
	if err != nil {
		return nil, fmt.Errorf("git show HEAD:%s: %w", path, err)
	}
	return b, nil
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

const referenceManifest = `displayName: NAME
type: middleware
import: example.test/NAME
summary: benchmark reference
testData: {}
`

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

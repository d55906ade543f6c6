// Command devstack runs the whole gateway locally for development: Traefik with the plugin, the authorization
// server on its embedded store, a fake GitHub that logs in a dev user, and MCP servers behind streamproxy, at
// http://localhost:8080/<service>/mcp (or http://<service>.localhost:8080/mcp with -layout subdomain).
// `go tool task dev` runs it; Ctrl-C stops everything.
//
// -oidc-issuer points it at a real OpenID provider instead of the fake GitHub (the client id and secret registered
// there come from DEVSTACK_OIDC_CLIENT_ID and DEVSTACK_OIDC_CLIENT_SECRET): `go tool task dev -- -oidc-issuer
// https://accounts.google.com`.
//
// -terminal and -browser add the riskier servers, each user in their own box under --sandbox required, as compose's
// terminal and browser profiles run them: `go tool task dev -- -terminal -browser`.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/jaegertest"
)

func main() {
	port := flag.Int("port", envInt("DEVSTACK_PORT", 8080), "public port of the gateway (env DEVSTACK_PORT)")
	layout := flag.String("layout", envString("DEVSTACK_LAYOUT", "path"),
		"routing layout: path (localhost:PORT/<service>/mcp) or subdomain (<service>.localhost:PORT/mcp) (env DEVSTACK_LAYOUT)")
	oidcIssuer := flag.String("oidc-issuer", envString("DEVSTACK_OIDC_ISSUER", ""),
		"log in through this OpenID provider instead of the fake GitHub (env DEVSTACK_OIDC_ISSUER); its client id and secret come "+
			"from -oidc-client-id and DEVSTACK_OIDC_CLIENT_SECRET")
	oidcClientID := flag.String("oidc-client-id", envString("DEVSTACK_OIDC_CLIENT_ID", ""), "the client id registered at the OpenID provider (env DEVSTACK_OIDC_CLIENT_ID)")
	oidcName := flag.String("oidc-name", envString("DEVSTACK_OIDC_NAME", "sso"), "the OpenID provider's name in the callback path (env DEVSTACK_OIDC_NAME)")
	withGitHub := flag.Bool("with-github", false, "with -oidc-issuer: keep the fake GitHub too, behind a chooser")
	tracing := flag.Bool("tracing", false, "start Jaeger (built by go tool task deps) beside the stack and send every service's traces to it; its UI's URL is printed")
	terminal := flag.Bool("terminal", false, "also offer a terminal (mcp-shell-server) at /terminal/mcp: any command, in each user's own home, confined by the sandbox")
	browser := flag.Bool("browser", false, "also offer a browser (@playwright/mcp with Debian's Chromium, headless) at /browser/mcp: any site, each user's own profile, confined by the sandbox")
	flag.Parse()
	root, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fail(fmt.Errorf("run devstack from the repository root (go tool task dev)"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	servers := filepath.Join(root, "testdata", "node", "node_modules", "@modelcontextprotocol")
	everything := filepath.Join(servers, "server-everything", "dist", "index.js")
	memory := filepath.Join(servers, "server-memory", "dist", "index.js")
	shell := filepath.Join(root, "testdata", "node", "node_modules", "@mako10k", "mcp-shell-server", "dist", "index.js")
	playwright := filepath.Join(root, "testdata", "node", "node_modules", "@playwright", "mcp", "cli.js")
	for _, p := range []string{everything, memory, shell, playwright} {
		if _, err := os.Stat(p); err != nil {
			fail(fmt.Errorf("%s is not installed: run `go tool task deps`", p))
		}
	}
	data := filepath.Join(root, ".cache", "dev")
	var sso *devstack.OIDC
	who := "dev-user (fake GitHub: every login succeeds, development only)"
	if *oidcIssuer != "" {
		secret := os.Getenv("DEVSTACK_OIDC_CLIENT_SECRET")
		if *oidcClientID == "" || secret == "" {
			fail(fmt.Errorf("-oidc-issuer needs the client registered at the provider: set DEVSTACK_OIDC_CLIENT_ID and "+
				"DEVSTACK_OIDC_CLIENT_SECRET (its redirect URI: %s)", devstack.OIDCCallbackURL(*layout, *port, *oidcName)))
		}
		display := *oidcIssuer
		if u, err := url.Parse(*oidcIssuer); err == nil && u.Host != "" {
			display = u.Host
		}
		sso = &devstack.OIDC{Name: *oidcName, DisplayName: display, Issuer: *oidcIssuer, ClientID: *oidcClientID, ClientSecret: secret,
			WithGitHub: *withGitHub}
		who = "anyone " + *oidcIssuer + " authenticates (this stack listens on loopback only)"
		if *withGitHub {
			who += ", or dev-user through the fake GitHub"
		}
	}
	var jaeger *jaegertest.Jaeger
	otlp := ""
	if *tracing {
		bin, err := jaegertest.Find()
		if err != nil {
			fail(err)
		}
		dir := filepath.Join(data, "jaeger")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fail(err)
		}
		if jaeger, err = jaegertest.Start(bin, dir, envInt("DEVSTACK_JAEGER_PORT", 16686)); err != nil {
			fail(err)
		}
		defer jaeger.Stop()
		otlp = jaeger.OTLPHTTP
	}
	services := []devstack.Service{
		// get-env needs everything:admin (policies/everything.yaml): the dev user gets it by step-up consent. It keeps
		// nothing of a user's between calls: shared, as compose.yaml runs it.
		{Name: "everything", Command: []string{"node", everything}, ScopesSupported: []string{"mcp", "everything:admin"},
			Flags: []string{"--policy", filepath.Join(root, "policies", "everything.yaml"), "--share", "2"}},
		// A stateful server keeps each user's graph in a file of their own.
		{Name: "memory", Command: []string{"node", memory},
			Flags: []string{"--env", "MEMORY_FILE_PATH=" + filepath.Join(data, "memory", "users", "{user}", "memory.json")}},
	}
	var boxes []string
	if *terminal {
		// As compose's terminal profile: the server's own command check (it asks the client's model) is no boundary.
		services = append(services, devstack.Service{Name: "terminal", Command: []string{"node", shell},
			Flags: append(box(filepath.Join(data, "terminal", "users", "{user}")), "--env", "MCP_SHELL_ENHANCED_MODE=false")})
		boxes = append(boxes, "terminal")
	}
	if *browser {
		// As compose's browser profile: config/playwright-mcp.json starts Chromium; it reads its fonts' configuration.
		services = append(services, devstack.Service{Name: "browser",
			Command: []string{"node", playwright, "--config", filepath.Join(root, "config", "playwright-mcp.json"), "--user-data-dir", "profile"},
			Flags:   append(box(filepath.Join(data, "browser", "users", "{user}")), "--sandbox-allow-read", "/etc/fonts")})
		boxes = append(boxes, "browser")
	}
	fmt.Println("Starting the MCP OAuth Gateway dev stack (first start builds the binaries)...")
	s, err := devstack.Start(ctx, devstack.Options{
		Root: root, Port: *port, DataDir: data, Log: os.Stderr, Layout: *layout, OIDC: sso, OTLPEndpoint: otlp,
		// The fake GitHub's dev user is in dev-org and its team dev-team: their tokens carry them as groups.
		AuthserverFlags: []string{"--scopes", "mcp,everything:admin", "--scope-descriptions", everythingAdmin,
			"--groups", "dev-org,dev-org/dev-team"},
		Services: services,
	})
	if err != nil {
		fail(err)
	}
	defer s.Stop()
	u := s.URLs["everything"]
	fmt.Printf(`
MCP OAuth Gateway (development) is running.

  MCP server (server-everything):  %s
  MCP server (server-memory):      %s   (each user's graph is their own)
  Authorization server (issuer):   %s
  Who may log in:                  %s
  Step-up:                         everything's get-env needs the scope everything:admin (policies/everything.yaml):
                                   the first call gets 403 insufficient_scope, and the client asks you to consent to it

Connect a client:
  Claude Code:    claude mcp add --transport http everything %s
  MCP Inspector:  npx @modelcontextprotocol/inspector   (Transport: Streamable HTTP, URL: %s, then "Open Auth Settings" -> Quick OAuth Flow)
  Check:          curl -i %s   (401 with a WWW-Authenticate challenge)

Operator commands work while it runs (through the authserver's admin socket), e.g.
  AUTHSERVER_DATA_FILE=.cache/dev/authserver.jsonl go run ./authserver clients list

State is kept in .cache/dev. Press Ctrl-C to stop.
`, u, s.URLs["memory"], s.Issuer, who, u, u, u)
	if sso != nil {
		fmt.Printf("OpenID provider %s: its client's redirect URI must be %s\n", sso.Issuer, devstack.OIDCCallbackURL(*layout, *port, sso.ProviderName()))
	}
	for _, name := range boxes {
		fmt.Printf("MCP server (%s): %s   (each user in their own box, confined: docs/security.md)\n", name, s.URLs[name])
	}
	if jaeger != nil {
		fmt.Printf("Traces (Jaeger):                 %s   (services traefik, authserver, streamproxy)\n", jaeger.UI)
	}
	if *layout == "subdomain" {
		fmt.Println("Subdomain layout: browsers resolve *.localhost to this machine; other programs may need /etc/hosts entries for" +
			" auth.localhost, everything.localhost and memory.localhost.")
	}
	<-ctx.Done()
	fmt.Println("\nStopping...")
}

// box is the streamproxy flags of a server each user gets a box of: the sandbox required, and home the user's
// working directory, which is also their temporary directory.
func box(home string) []string {
	return []string{"--sandbox", "required", "--workdir", home, "--env", "HOME=" + home, "--env", "TMPDIR=" + home}
}

// everythingAdmin describes the scope server-everything's get-env needs, for the consent page.
const everythingAdmin = "everything:admin=read the environment of the everything server (get-env), which can hold secrets"

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "devstack:", err)
	os.Exit(1)
}

package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// authserverProc is a running authserver.
type authserverProc struct {
	issuer  string
	command string
}

const (
	fakeClientID     = "bench-github-app"
	fakeClientSecret = "bench-github-secret"
)

// startAuthserver starts the authserver as its own process on the given store ("redis": a private redis-server;
// "embedded": a data file), protecting resources, with the fake GitHub (in this process) as identity provider.
func startAuthserver(e *env, store string, resources []string) (*authserverProc, error) {
	if _, err := os.Stat(filepath.Join("authserver", "main.go")); err != nil {
		return nil, fmt.Errorf("%w: the authserver has not landed in this checkout (no authserver/main.go)", errSkipped)
	}
	bin, err := testenv.Build("./authserver")
	if err != nil {
		return nil, err
	}
	gh, err := startFakeGitHub(e)
	if err != nil {
		return nil, err
	}
	port, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	issuer := testenv.URL(port, "")
	args, err := authserverArgs(e, port, issuer, gh, store, resources)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = testenv.Env()
	if _, err := e.start("authserver-"+store, cmd); err != nil {
		return nil, err
	}
	if err := testenv.AwaitTCP("127.0.0.1:"+strconv.Itoa(port), 30*time.Second); err != nil {
		return nil, fmt.Errorf("authserver: %w", err)
	}
	// Ready when the metadata answers (keys are created on first start).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(issuer + "/.well-known/oauth-authorization-server")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("authserver metadata never answered 200 (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return &authserverProc{issuer: issuer, command: "go build -o authserver ./authserver && ./authserver " + strings.Join(redactArgs(args), " ")}, nil
}

// startFakeGitHub serves the fake GitHub, with the bench's user and app, on a loopback port until the section ends.
func startFakeGitHub(e *env) (*fakegithub.Server, error) {
	gh, err := fakegithub.New(fakegithub.Config{
		Users: []fakegithub.User{{ID: 4242, Login: "bench-user", Name: "Bench User",
			Emails: []fakegithub.Email{{Email: "bench@example.test", Primary: true, Verified: true}}}},
		Apps: []fakegithub.App{{ClientID: fakeClientID, ClientSecret: fakeClientSecret}},
	})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake GitHub: listen: %w", err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: gh, ReadHeaderTimeout: 5 * time.Second}}
	srv.Start()
	e.onEnd(srv.Close)
	gh.URL = srv.URL
	return gh, nil
}

// authserverArgs is the authserver's command line for the benchmark.
func authserverArgs(e *env, port int, issuer string, gh *fakegithub.Server, store string, resources []string) ([]string, error) {
	args := []string{
		"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--issuer", issuer,
		"--resources", strings.Join(resources, ","),
		"--github-client-id", fakeClientID,
		"--github-client-secret", fakeClientSecret,
		"--github-web-url", gh.WebURL(),
		"--github-api-url", gh.APIURL(),
		"--allowed-github-users", "*",
		// Registration is measured as throughput; the per-IP limit that guards open registration would cap it.
		"--register-rate", "0",
		// Codes are prepared in bulk before the timed exchange; the default 1 minute could expire the first ones.
		"--code-lifetime", "10m",
		// Refresh rotation is measured as throughput, each client rotating its chain back to back: the per-grant limit
		// that stops a runaway client (--refresh-limit, 30 per access-token lifetime) would answer slow_down.
		"--refresh-limit", "0",
		// Codes are prepared by thousands of browser flows from one address: the per-address limit on /authorize that
		// bounds what anonymous callers can make the store hold (--authorize-rate, 30 a minute) would refuse them.
		"--authorize-rate", "0",
	}
	switch store {
	case "redis":
		r, err := e.startRedis()
		if err != nil {
			return nil, err
		}
		args = append(args, "--redis-url", r.URL)
	default:
		dir, err := e.tempDir()
		if err != nil {
			return nil, err
		}
		args = append(args, "--data-file", filepath.Join(dir, "authserver.db"))
	}
	return args, nil
}

// redactArgs hides secrets in a command line written to the report.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if i > 0 && strings.Contains(args[i-1], "secret") {
			out[i] = "$SECRET"
		}
	}
	return out
}

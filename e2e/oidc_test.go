package e2e

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/hydratest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The whole gateway with a real OpenID provider (ORY Hydra) beside the fake GitHub: the TypeScript SDK client goes
// from the bare MCP URL through Traefik and the plugin, chooses the provider on the sign-in page, logs in at Hydra
// (PKCE, nonce, a signed ID token), consents, and calls tools; the backend sees the provider's user; the claim rules
// refuse who they must; mcp-token's device flow goes through the same provider; nothing secret reaches a log.
func TestOIDCEndToEnd(t *testing.T) {
	testenv.TraefikBin(t)
	hydra := hydratest.Start(t)
	alice := hydratest.User{Subject: "a-100", Claims: map[string]any{"email": "alice@corp.example", "email_verified": true,
		"preferred_username": "alice", "name": "Alice Liddell", "groups": []string{"mcp-users"}}}
	hydra.SetUser(alice)
	redis := testenv.StartRedis(t)
	nm := testenv.NodeModules(t)
	diag := testenv.BuildBinary(t, "./cmd/mcp-diagnostic")
	diagAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	testenv.Start(t, "mcp-diagnostic", exec.Command(diag, "-addr", diagAddr, "-allowed-hosts", "*"))
	testenv.WaitTCP(t, diagAddr, 10*time.Second)
	port := testenv.FreePort(t)
	clientID, clientSecret := hydra.Client(t, devstack.OIDCCallbackURL("path", port, "corp"))
	logs := &testenv.SyncBuffer{}
	s, err := devstack.Start(context.Background(), devstack.Options{
		Root: testenv.RepoRoot(t), Port: port, DataDir: t.TempDir(), RedisURL: redis.URL, Layout: "path",
		Log: io.MultiWriter(testLog{t}, logs),
		OIDC: &devstack.OIDC{Name: "corp", DisplayName: "Corp SSO", Issuer: hydra.Issuer, ClientID: clientID, ClientSecret: clientSecret,
			WithGitHub: true, Flags: []string{"--oidc-corp-allowed-email-domains", "corp.example", "--oidc-corp-allowed-groups", "mcp-users"}},
		Services: []devstack.Service{
			{Name: "everything", Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")}},
			{Name: "diagnostic", Addr: diagAddr},
		},
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	everything, diagnostic := s.URLs["everything"], s.URLs["diagnostic"]
	corp := []string{"LOGIN_PROVIDER=Corp SSO"}
	var runs []clientRun

	t.Run("client from the bare URL through the OpenID provider", func(t *testing.T) {
		before := hydra.Logins()
		run := runClientWith(t, corp, everything)
		runs = append(runs, run)
		assert.Equal(t, before+1, hydra.Logins(), "the user logged in at the provider")
		require.NotEmpty(t, run.Result.Content)
		assert.Equal(t, "Echo: hello through the gateway", run.Result.Content[0].Text)
		assert.True(t, run.Refreshed, "the client refreshed its tokens (rotation)")
		assert.Len(t, run.Secrets.OIDCCodes, 1, "the provider's code came back to its callback")
	})

	t.Run("identity at the backend", func(t *testing.T) {
		who := runClientWith(t, corp, diagnostic, "whoami", "{}", "424242")
		runs = append(runs, who)
		require.NotNil(t, who.Result.StructuredContent, "whoami result: %+v", who.Result)
		assert.Equal(t, "corp:a-100", who.Result.StructuredContent["userId"], "the provider's sub, namespaced, not the spoofed id")
		assert.Equal(t, "alice", who.Result.StructuredContent["userName"])
		assert.Equal(t, "alice@corp.example", who.Result.StructuredContent["userEmail"])
		assert.Equal(t, false, who.Result.StructuredContent["authorizationReceived"])
	})

	t.Run("GitHub beside it is unchanged", func(t *testing.T) {
		who := runClientWith(t, []string{"LOGIN_PROVIDER=GitHub"}, diagnostic, "whoami", "{}")
		runs = append(runs, who)
		require.NotNil(t, who.Result.StructuredContent)
		assert.Equal(t, "1000001", who.Result.StructuredContent["userId"], "GitHub users keep their numeric ids")
		assert.Equal(t, "dev-user", who.Result.StructuredContent["userName"])
	})

	t.Run("claim rules refuse", func(t *testing.T) {
		defer hydra.SetUser(alice)
		hydra.SetUser(hydratest.User{Subject: "m-666", Claims: map[string]any{"email": "alice@corp.example", "email_verified": false,
			"preferred_username": "mallory", "groups": []string{"staff"}}})
		out := runClientFailing(t, corp, everything)
		assert.Contains(t, out, "HTTP 403")
		assert.Contains(t, out, "Corp SSO user mallory is not allowed to use this server")
		assert.Contains(t, out, "is verified", "an unverified address admits nobody")

		hydra.SetUser(hydratest.User{Subject: "b-1", Claims: map[string]any{"email": "bob@elsewhere.example", "email_verified": true,
			"preferred_username": "bob", "groups": []string{"staff"}}})
		out = runClientFailing(t, corp, everything)
		assert.Contains(t, out, "HTTP 403")
		assert.Contains(t, out, "they are in none of the allowed groups")
	})

	t.Run("mcp-token through the OpenID provider", func(t *testing.T) {
		bin := testenv.BuildBinary(t, "./cmd/mcp-token")
		file := filepath.Join(t.TempDir(), "everything.json")
		tokenGet(t, bin, everything, file, "Corp SSO")
		out, err := exec.Command(bin, "print", "--file", file).Output()
		require.NoError(t, err)
		token := strings.TrimSpace(string(out))
		assert.Equal(t, http.StatusOK, mcpRequest(t, everything, token).StatusCode, "the device's token works through the gateway")
		assert.NotContains(t, logs.String(), token)
	})

	t.Run("logs without secrets", func(t *testing.T) {
		all := logs.String()
		for _, run := range runs {
			for what, secret := range run.secrets() {
				if secret != "" {
					assert.NotContains(t, all, secret, "a log line holds the %s", what)
				}
			}
		}
		assert.NotContains(t, all, clientSecret, "a log line holds the OpenID client secret")
		assert.NotContains(t, all, "/oidc/corp/callback?", "the provider's callback query reached a log")
		assert.NotContains(t, all, "/login?request=", "the chooser's links reached a log")
		assert.Contains(t, all, "login refused", "the refusals are logged")
		assert.Regexp(t, `authserver\s+time=\S+ level=INFO msg=request method=GET path=/oidc/corp/callback route="GET /oidc/corp/callback" status=200`, all)
	})
}

// runClientFailing runs the TypeScript SDK client, which must fail; it returns what it printed.
func runClientFailing(t *testing.T, env []string, mcpURL string) string {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "node")
	cmd := exec.Command(testenv.NodeBin(t), "--import", filepath.Join(dir, "localhost-resolver.mjs"), filepath.Join(dir, "e2e-client.mjs"), mcpURL)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "the client should have been refused:\n%s", out)
	return string(out)
}

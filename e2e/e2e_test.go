// Package e2e runs the whole gateway (Traefik + plugin + authserver on Redis + fake GitHub + streamproxy) and drives
// it with a real OAuth-capable MCP client, the TypeScript SDK.
package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

type clientRun struct {
	AuthorizationURL string   `json:"authorizationUrl"`
	Tools            []string `json:"tools"`
	Result           struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		StructuredContent map[string]any `json:"structuredContent"`
	} `json:"result"`
	Refreshed bool   `json:"refreshed"`
	ClientID  string `json:"clientId"`
	Tokens    struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	} `json:"tokens"`
}

// runClient runs the TypeScript SDK client against an MCP URL and returns what it did.
func runClient(t *testing.T, mcpURL string, args ...string) clientRun {
	t.Helper()
	script := filepath.Join(testenv.RepoRoot(t), "testdata", "node", "e2e-client.mjs")
	cmd := exec.Command(testenv.NodeBin(t), append([]string{script, mcpURL}, args...)...)
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "client failed:\n%s\n%s", out, stderr)
	var r clientRun
	require.NoError(t, json.Unmarshal(out, &r), "%s", out)
	return r
}

func startStack(t *testing.T) (*devstack.Stack, *testenv.Redis) {
	t.Helper()
	testenv.TraefikBin(t)
	redis := testenv.StartRedis(t)
	nm := testenv.NodeModules(t)
	diag := testenv.BuildBinary(t, "./cmd/mcp-diagnostic")
	diagAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	testenv.Start(t, "mcp-diagnostic", exec.Command(diag, "-addr", diagAddr, "-allowed-hosts", "*"))
	testenv.WaitTCP(t, diagAddr, 10*time.Second)
	s, err := devstack.Start(context.Background(), devstack.Options{
		Root: testenv.RepoRoot(t), Port: testenv.FreePort(t), DataDir: t.TempDir(), RedisURL: redis.URL,
		Log: testLog{t},
		Services: []devstack.Service{
			{Name: "everything", Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")}},
			{Name: "diagnostic", Addr: diagAddr},
			// The suite opens a few dozen sessions per run and never ends them; a test may run it three times.
			{Name: "conformance", Flags: []string{"--max-sessions", "500"},
				Command: []string{testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")}},
		},
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return s, redis
}

// testLog sends the stack's output to the test log (shown when a test fails or with -v).
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mcpRequest(t *testing.T, url, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestGatewayEndToEnd(t *testing.T) {
	s, redis := startStack(t)
	everything, diagnostic := s.URLs["everything"], s.URLs["diagnostic"]

	// No token: 401 with the challenge MCP clients parse.
	resp := mcpRequest(t, everything, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+s.Issuer+`/.well-known/oauth-protected-resource/everything/mcp"`)

	// The TypeScript SDK client goes from the bare URL to tool calls, and refreshes.
	run := runClient(t, everything)
	auth, err := url.Parse(run.AuthorizationURL)
	require.NoError(t, err)
	assert.Equal(t, everything, auth.Query().Get("resource"), "the client sent the RFC 8707 resource")
	assert.Equal(t, "S256", auth.Query().Get("code_challenge_method"))
	assert.Contains(t, run.Tools, "echo")
	require.NotEmpty(t, run.Result.Content)
	assert.Equal(t, "Echo: hello through the gateway", run.Result.Content[0].Text)
	assert.True(t, run.Refreshed, "the client refreshed its tokens (rotation)")

	// A token for one MCP server is refused by another (RFC 8707 audience).
	resp = mcpRequest(t, diagnostic, run.Tokens.AccessToken)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
	assert.Equal(t, http.StatusOK, mcpRequest(t, everything, run.Tokens.AccessToken).StatusCode)

	// The backend sees the real identity, never a spoofed one, and never the token.
	who := runClient(t, diagnostic, "whoami", "{}", "424242")
	require.NotNil(t, who.Result.StructuredContent, "whoami result: %+v", who.Result)
	assert.Equal(t, "1000001", who.Result.StructuredContent["userId"], "the plugin replaced the spoofed X-User-Id")
	assert.Equal(t, "dev-user", who.Result.StructuredContent["userName"])
	assert.Equal(t, false, who.Result.StructuredContent["authorizationReceived"], "the backend never receives the token")

	// Revocation reaches the edge within 10 s, with no call per request.
	revoke, err := http.PostForm(s.Issuer+"/revoke", url.Values{"client_id": {run.ClientID}, "token": {run.Tokens.AccessToken}})
	require.NoError(t, err)
	revoke.Body.Close()
	require.Equal(t, http.StatusOK, revoke.StatusCode)
	revokedAt := time.Now()
	require.Eventually(t, func() bool {
		return mcpRequest(t, everything, run.Tokens.AccessToken).StatusCode == http.StatusUnauthorized
	}, 15*time.Second, 250*time.Millisecond)
	t.Logf("revoked token refused after %s", time.Since(revokedAt).Round(100*time.Millisecond))

	// Restarting the authorization server keeps issued tokens valid (keys and state are in Redis).
	fresh := runClient(t, everything)
	require.NoError(t, s.Restart(context.Background(), "authserver", "authserver listening"))
	assert.Equal(t, http.StatusOK, mcpRequest(t, everything, fresh.Tokens.AccessToken).StatusCode)
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {fresh.ClientID}, "refresh_token": {fresh.Tokens.RefreshToken}}
	r, err := http.PostForm(s.Issuer+"/token", form)
	require.NoError(t, err)
	r.Body.Close()
	assert.Equal(t, http.StatusOK, r.StatusCode, "the refresh token survived the restart")

	// Restarting Redis in the middle of a session loses nothing: the edge keeps accepting the token it verified, and
	// the authorization server finds its grants again once Redis is back.
	again := runClient(t, everything)
	redis.Restart(t)
	assert.Equal(t, http.StatusOK, mcpRequest(t, everything, again.Tokens.AccessToken).StatusCode)
	form = url.Values{"grant_type": {"refresh_token"}, "client_id": {again.ClientID}, "refresh_token": {again.Tokens.RefreshToken}}
	require.Eventually(t, func() bool {
		r, err := http.PostForm(s.Issuer+"/token", form)
		if err != nil {
			return false
		}
		r.Body.Close()
		// 503 while the store reconnects; anything else is final.
		require.NotEqual(t, http.StatusBadRequest, r.StatusCode, "the refresh token was lost with the Redis restart")
		return r.StatusCode == http.StatusOK
	}, 15*time.Second, 250*time.Millisecond)
}

// The MCP conformance suite's server scenarios pass through Traefik and the plugin: the edge does not break streaming,
// sessions or SSE. The suite cannot send a token, so a preload adds one to its fetch.
func TestConformanceThroughTheGateway(t *testing.T) {
	s, _ := startStack(t)
	target := s.URLs["conformance"]
	run := runClient(t, target, "test_simple_text", "{}")
	node := testenv.NodeBin(t)
	root := testenv.RepoRoot(t)
	suite := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "conformance", "dist", "index.js")
	suiteRun := func() (string, error) {
		cmd := exec.Command(node, "--import", filepath.Join(root, "testdata", "node", "bearer-preload.mjs"), suite,
			"server", "--url", target, "-o", t.TempDir())
		cmd.Env = append(cmd.Environ(), "MCP_BEARER_TOKEN="+run.Tokens.AccessToken)
		out, err := cmd.CombinedOutput()
		summary := string(out)
		if i := strings.Index(summary, "=== SUMMARY ==="); i >= 0 {
			summary = summary[i:]
		}
		return summary, err
	}
	// Known issue: now and then a scenario whose tool waits on the client (sampling, elicitation) or sends logs
	// times out through Traefik and the plugin, never against streamproxy alone; not yet pinned down. Up to three
	// runs tell that flake from a broken edge, which fails every run.
	summary, err := suiteRun()
	for attempt := 2; err != nil && attempt <= 3; attempt++ {
		t.Logf("conformance run %d failed, running again:\n%s", attempt-1, summary)
		summary, err = suiteRun()
	}
	require.NoError(t, err, "conformance suite failed through the gateway:\n%s", summary)
	assert.Regexp(t, `Total: \d+ passed, 0 failed`, summary)
	assert.GreaterOrEqual(t, strings.Count(summary, "✓"), 30, "every server scenario ran:\n%s", summary)
}

// Package e2e runs the whole gateway (Traefik + plugin + authserver on Redis + fake GitHub + streamproxy) and drives
// it with a real OAuth-capable MCP client, the TypeScript SDK.
package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
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
	Refreshed bool       `json:"refreshed"`
	Race      raceResult `json:"race"` // with REFRESH_RACE
	ClientID  string     `json:"clientId"`
	Tokens    struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	} `json:"tokens"`
	Secrets struct {
		GitHubCodes       []string `json:"githubCodes"`
		OIDCCodes         []string `json:"oidcCodes"`
		Codes             []string `json:"codes"`
		Cookies           []string `json:"cookies"`
		CodeVerifier      string   `json:"codeVerifier"`
		FirstAccessToken  string   `json:"firstAccessToken"`
		FirstRefreshToken string   `json:"firstRefreshToken"`
	} `json:"secrets"`
}

// secrets lists every secret the run handled, for the log check.
func (r clientRun) secrets() map[string]string {
	m := map[string]string{
		"access token": r.Tokens.AccessToken, "refresh token": r.Tokens.RefreshToken, "PKCE verifier": r.Secrets.CodeVerifier,
		"first access token": r.Secrets.FirstAccessToken, "first refresh token": r.Secrets.FirstRefreshToken,
	}
	for i, c := range r.Secrets.GitHubCodes {
		m["GitHub code "+strconv.Itoa(i)] = c
	}
	for i, c := range r.Secrets.OIDCCodes {
		m["OpenID provider code "+strconv.Itoa(i)] = c
	}
	for i, c := range r.Secrets.Codes {
		m["authorization code "+strconv.Itoa(i)] = c
	}
	for i, c := range r.Secrets.Cookies {
		m["cookie "+strconv.Itoa(i)] = c
	}
	return m
}

// runClient runs the TypeScript SDK client against an MCP URL and returns what it did.
func runClient(t *testing.T, mcpURL string, args ...string) clientRun {
	t.Helper()
	return runClientWith(t, nil, mcpURL, args...)
}

// runClientWith runs the client with extra environment variables.
func runClientWith(t *testing.T, env []string, mcpURL string, args ...string) clientRun {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "node")
	cmd := exec.Command(testenv.NodeBin(t), append([]string{"--import", filepath.Join(dir, "localhost-resolver.mjs"),
		filepath.Join(dir, "e2e-client.mjs"), mcpURL}, args...)...)
	cmd.Env = append(cmd.Environ(), env...)
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

// stack is a running gateway and everything its components wrote.
type stack struct {
	*devstack.Stack
	redis *testenv.Redis
	logs  *testenv.SyncBuffer
	state string // where the stateful MCP servers keep each user's state
}

func startStack(t *testing.T, layout string, authserverFlags ...string) stack {
	t.Helper()
	testenv.TraefikBin(t)
	redis := testenv.StartRedis(t)
	nm := testenv.NodeModules(t)
	logs := &testenv.SyncBuffer{}
	diag := testenv.BuildBinary(t, "./cmd/mcp-diagnostic")
	diagAddr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	testenv.Start(t, "mcp-diagnostic", exec.Command(diag, "-addr", diagAddr, "-allowed-hosts", "*"))
	testenv.WaitTCP(t, diagAddr, 10*time.Second)
	state := t.TempDir()
	s, err := devstack.Start(context.Background(), devstack.Options{
		Root: testenv.RepoRoot(t), Port: testenv.FreePort(t), DataDir: t.TempDir(), RedisURL: redis.URL,
		Log: io.MultiWriter(testLog{t}, logs), Layout: layout, AuthserverFlags: authserverFlags,
		Services: []devstack.Service{
			{Name: "everything", Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")}},
			{Name: "diagnostic", Addr: diagAddr},
			// The suite opens a few dozen sessions per run, all one user's, and never ends them; a test may run it
			// three times.
			{Name: "conformance", Flags: []string{"--max-sessions", "500", "--max-per-user", "0"},
				Command: []string{testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")}},
			// Stateful servers as compose.yaml runs them: each user's state apart.
			{Name: "memory", Flags: []string{"--env", "MEMORY_FILE_PATH=" + state + "/memory/users/{user}/memory.json"},
				Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-memory", "dist", "index.js")}},
			{Name: "filesystem", Flags: []string{"--workdir", state + "/files/users/{user}", "--hide-client-roots"},
				Command: []string{"node", filepath.Join(nm, "@modelcontextprotocol", "server-filesystem", "dist", "index.js"), "."}},
		},
	})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return stack{s, redis, logs, state}
}

// accessLog returns Traefik's access log entries (JSON lines) from the stack's output.
func accessLog(logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		rest, ok := strings.CutPrefix(line, "traefik")
		if !ok {
			continue
		}
		var e map[string]any
		if json.Unmarshal([]byte(strings.TrimSpace(rest)), &e) == nil && e["RequestMethod"] != nil {
			out = append(out, e)
		}
	}
	return out
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
	resp, err := devstack.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

func TestGatewayEndToEnd(t *testing.T) {
	s := startStack(t, "path")
	everything, diagnostic := s.URLs["everything"], s.URLs["diagnostic"]
	// One stack, one story: each step a subtest, so that one failure does not hide the others. Steps use what the
	// earlier ones made (a client's tokens), so a step whose input is missing fails on that.
	var run, who, fresh, again, removed clientRun
	var as scrape
	var firstScrape []string

	t.Run("challenge without a token", func(t *testing.T) {
		// No token: 401 with the challenge MCP clients parse.
		resp := mcpRequest(t, everything, "")
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+s.Issuer+`/.well-known/oauth-protected-resource/everything/mcp"`)
	})

	t.Run("client from the bare URL to tools and a refresh", func(t *testing.T) {
		// The TypeScript SDK client goes from the bare URL to tool calls, and refreshes.
		run = runClient(t, everything)
		auth, err := url.Parse(run.AuthorizationURL)
		require.NoError(t, err)
		assert.Equal(t, everything, auth.Query().Get("resource"), "the client sent the RFC 8707 resource")
		assert.Equal(t, "S256", auth.Query().Get("code_challenge_method"))
		assert.Contains(t, run.Tools, "echo")
		require.NotEmpty(t, run.Result.Content)
		assert.Equal(t, "Echo: hello through the gateway", run.Result.Content[0].Text)
		assert.True(t, run.Refreshed, "the client refreshed its tokens (rotation)")
	})

	t.Run("audience and CORS", func(t *testing.T) {
		// A token for one MCP server is refused by another (RFC 8707 audience).
		resp := mcpRequest(t, diagnostic, run.Tokens.AccessToken)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`)
		assert.Equal(t, http.StatusOK, mcpRequest(t, everything, run.Tokens.AccessToken).StatusCode)
		checkCORS(t, everything, run.Tokens.AccessToken)
	})

	t.Run("identity at the backend", func(t *testing.T) {
		// The backend sees the real identity, never a spoofed one, and never the token.
		who = runClient(t, diagnostic, "whoami", "{}", "424242")
		require.NotNil(t, who.Result.StructuredContent, "whoami result: %+v", who.Result)
		assert.Equal(t, "1000001", who.Result.StructuredContent["userId"], "the plugin replaced the spoofed X-User-Id")
		assert.Equal(t, "dev-user", who.Result.StructuredContent["userName"])
		assert.Equal(t, false, who.Result.StructuredContent["authorizationReceived"], "the backend never receives the token")
	})

	t.Run("revocation at the edge", func(t *testing.T) {
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
		// The plugin read that from the authserver's internal feed listener; the public origin has no feed (anyone
		// could otherwise make it too large to read), and its root protected-resource metadata, which no one of
		// several MCP servers owns, is 404, not 405.
		assert.Equal(t, http.StatusForbidden, getStatus(t, s.Issuer+"/revocations?since=0"), "the feed is not public")
		assert.Equal(t, http.StatusNotFound, getStatus(t, s.Issuer+"/.well-known/oauth-protected-resource"))
	})

	t.Run("metrics", func(t *testing.T) {
		// The authserver's metrics saw the two clients' traffic, by endpoint and outcome.
		as = scrapeMetrics(t, s.Metrics["authserver"])
		assert.Equal(t, 2.0, as.value("authserver_tokens_issued_total", "grant_type", "authorization_code"), "%s", as)
		assert.Equal(t, 2.0, as.value("authserver_tokens_issued_total", "grant_type", "refresh_token"))
		assert.Equal(t, 2.0, as.value("authserver_client_registrations_total", "outcome", "registered"))
		assert.Equal(t, 2.0, as.value("authserver_logins_total", "outcome", "allowed"))
		assert.Equal(t, 1.0, as.value("authserver_revocations_total", "reason", "revoke_endpoint"))
		assert.Equal(t, 4.0, as.value("authserver_http_request_duration_seconds", "route", "POST /token"))
		assert.Equal(t, 2.0, as.value("authserver_http_requests_total", "route", "POST /register", "code", "201"))
		firstScrape = as.labelValues()
	})

	t.Run("authserver restart", func(t *testing.T) {
		// Restarting the authorization server keeps issued tokens valid (keys and state are in Redis).
		fresh = runClient(t, everything)
		require.NoError(t, s.Restart(context.Background(), "authserver", "authserver listening"))
		assert.Equal(t, http.StatusOK, mcpRequest(t, everything, fresh.Tokens.AccessToken).StatusCode)
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {fresh.ClientID}, "refresh_token": {fresh.Tokens.RefreshToken}}
		r, err := http.PostForm(s.Issuer+"/token", form)
		require.NoError(t, err)
		r.Body.Close()
		assert.Equal(t, http.StatusOK, r.StatusCode, "the refresh token survived the restart")
	})

	t.Run("Redis restart", func(t *testing.T) {
		// Restarting Redis in the middle of a session loses nothing: the edge keeps accepting the token it verified, and
		// the authorization server finds its grants again once Redis is back.
		again = runClient(t, everything)
		s.redis.Restart(t)
		assert.Equal(t, http.StatusOK, mcpRequest(t, everything, again.Tokens.AccessToken).StatusCode)
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {again.ClientID}, "refresh_token": {again.Tokens.RefreshToken}}
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
	})

	t.Run("removal from the allow list", func(t *testing.T) {
		// A user taken off the allow list loses access at the next refresh.
		removed = runClient(t, everything)
		require.NoError(t, s.SetAllowedUsers(context.Background(), "someone-else"))
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {removed.ClientID}, "refresh_token": {removed.Tokens.RefreshToken}}
		r, err := http.PostForm(s.Issuer+"/token", form)
		require.NoError(t, err)
		var refused struct {
			Error string `json:"error"`
		}
		require.NoError(t, json.NewDecoder(r.Body).Decode(&refused))
		r.Body.Close()
		assert.Equal(t, http.StatusBadRequest, r.StatusCode)
		assert.Equal(t, "invalid_grant", refused.Error, "the refresh of a user no longer allowed is refused")
	})

	t.Run("metrics without ids or secrets", func(t *testing.T) {
		// The metrics saw the traffic, by endpoint and outcome, with no id or secret in a label. (The authserver was
		// restarted since the first scrape: its counters start again.)
		as = scrapeMetrics(t, s.Metrics["authserver"])
		assert.Equal(t, 1.0, as.value("authserver_oauth_errors_total", "route", "POST /token", "error", "invalid_grant"),
			"the refused refresh of the removed user")
		sp := scrapeMetrics(t, s.Metrics["mcp-everything"])
		assert.GreaterOrEqual(t, sp.value("streamproxy_children_started_total"), 8.0, "%s", sp)
		assert.Equal(t, sp.value("streamproxy_children_started_total")-sp.value("streamproxy_children_exited_total"),
			sp.value("streamproxy_children_running"), "running children = started - exited")
		assert.Zero(t, sp.value("streamproxy_children_exited_total", "how", "crashed"))
		assert.Greater(t, sp.value("streamproxy_messages_total", "direction", "to_server"), 20.0)
		assert.Greater(t, sp.value("streamproxy_messages_total", "direction", "to_client"), 20.0)
		assert.GreaterOrEqual(t, sp.value("streamproxy_http_requests_total", "route", "/mcp", "method", "POST", "code", "200"), 20.0)
		checkDashboard(t, as, sp)
		for _, lv := range slices.Concat(firstScrape, as.labelValues(), sp.labelValues()) {
			assert.NotContains(t, lv, "1000001", "a metric label holds a user id")
			for _, r := range []clientRun{run, who, fresh, again, removed} {
				assert.NotContains(t, lv, r.ClientID, "a metric label holds a client id")
				assert.NotContains(t, lv, r.Tokens.AccessToken)
			}
		}
	})

	t.Run("logs without secrets, joined by request id", func(t *testing.T) {
		// No component logged a token, code, verifier, cookie or secret; the access log covered the flow but kept the
		// GitHub callback (its query carries GitHub's code) out.
		logs := s.logs.String()
		for _, run := range []clientRun{run, who, fresh, again, removed} {
			for what, secret := range run.secrets() {
				if secret != "" {
					assert.NotContains(t, logs, secret, "a log line holds the %s", what)
				}
			}
		}
		assert.NotContains(t, logs, "fake-github-client-secret", "a log line holds the GitHub client secret")
		assert.NotContains(t, strings.ToLower(logs), "bearer ", "a log line holds an Authorization header")
		var tokenID string
		mcpLogged := false
		for _, e := range accessLog(logs) {
			switch {
			case e["RequestMethod"] == "POST" && e["RequestPath"] == "/token" && e["DownstreamStatus"] == 200.0:
				tokenID, _ = e["downstream_X-Request-Id"].(string)
			case e["RequestMethod"] == "POST" && e["RequestPath"] == "/everything/mcp" && e["DownstreamStatus"] == 200.0:
				mcpLogged = true
			}
		}
		require.NotEmpty(t, tokenID, "Traefik's access log recorded the token endpoint with the authserver's request id")
		assert.Contains(t, logs, "request_id="+tokenID, "the access log line and the authserver's line share the id")
		assert.True(t, mcpLogged, "Traefik's access log recorded MCP requests")
		assert.NotContains(t, logs, "/github/callback?", "the GitHub callback's query reached a log")

		// Every request the authserver and streamproxy answered is one log line, with a request id.
		assert.Regexp(t, `authserver\s+time=\S+ level=INFO msg=request method=POST path=/token route="POST /token" status=200 duration_ms=\S+ request_id=\S+`, logs)
		assert.Regexp(t, `mcp-everything\s+time=\S+ level=INFO msg=request method=POST path=/mcp route=/mcp status=200 duration_ms=\S+ session=\S{8} request_id=\S{16}`, logs)
	})

}

// The MCP conformance suites' server scenarios pass through Traefik and the plugin, for both generations of the
// protocol: the edge does not break streaming, sessions, SSE, or 2026-07-28's stateless requests and their
// mirrored headers. The suite cannot send a token, so a preload adds one to its fetch.
func TestConformanceThroughTheGateway(t *testing.T) {
	s := startStack(t, "path")
	target := s.URLs["conformance"]
	token := runClient(t, target, "test_simple_text", "{}").Tokens.AccessToken
	// Known issue: now and then a session-revision scenario whose tool waits on the client (sampling, elicitation) or
	// sends logs times out through Traefik and the plugin, never against streamproxy alone; not yet pinned down. Up
	// to three runs tell that flake from a broken edge, which fails every run.
	run := func(suite string, args ...string) testenv.ConformanceResult {
		r := testenv.RunConformance(t, suite, target, token, args...)
		for attempt := 2; r.Err != nil && attempt <= 3; attempt++ {
			t.Logf("conformance run %d failed, running again:\n%s", attempt-1, r.Summary)
			r = testenv.RunConformance(t, suite, target, token, args...)
		}
		return r
	}
	latest := run(testenv.ConformanceLatest)
	require.NoError(t, latest.Err, "conformance suite failed through the gateway:\n%s", latest.Summary)
	assert.Regexp(t, `Total: \d+ passed, 0 failed`, latest.Summary)
	assert.GreaterOrEqual(t, len(latest.Passed), 30, "every server scenario ran:\n%s", latest.Summary)

	stateless := run(testenv.ConformanceAlpha, "--requirements", "2026-07-28")
	assert.Empty(t, stateless.Failed(testenv.Required2026), "2026-07-28 required scenarios through the gateway:\n%s", stateless.Summary)
	assert.NoError(t, stateless.Err, "%s", stateless.Summary)

	sessions := run(testenv.ConformanceAlpha, "--requirements", "2025-11-25")
	assert.NoError(t, sessions.Err, "2025-11-25 required scenarios through the gateway:\n%s", sessions.Summary)
	assert.GreaterOrEqual(t, len(sessions.Passed), 30, "%s", sessions.Summary)
}

// Each user's MCP server state is their own, through the whole gateway: alice's memory entity and file are
// invisible to bob, bob's forged identity header does not reach them, and alice finds them again in a later session.
func TestPerUserStateThroughTheGateway(t *testing.T) {
	s := startStack(t, "path")
	ctx := context.Background()
	require.NoError(t, s.SetAllowedUsers(ctx, "alice,bob"))
	const aliceID, bobID = 2000001, 2000002
	memory, files := s.URLs["memory"], s.URLs["filesystem"]
	text := func(r clientRun) string {
		var b strings.Builder
		for _, c := range r.Result.Content {
			b.WriteString(c.Text)
		}
		return b.String()
	}

	require.NoError(t, s.SetGitHubUser(ctx, "alice", aliceID))
	runClient(t, memory, "create_entities", `{"entities":[{"name":"alice-secret","entityType":"note","observations":["only for alice"]}]}`)
	runClient(t, files, "write_file", `{"path":"diary.txt","content":"alice was here"}`)

	require.NoError(t, s.SetGitHubUser(ctx, "bob", bobID))
	assert.NotContains(t, text(runClient(t, memory, "read_graph", "{}")), "alice-secret", "bob does not see alice's graph")
	assert.NotContains(t, text(runClient(t, memory, "read_graph", "{}", strconv.Itoa(aliceID))), "alice-secret",
		"nor with alice's id in a forged X-User-Id")
	assert.NotContains(t, text(runClient(t, files, "list_directory", `{"path":"."}`, strconv.Itoa(aliceID))), "diary.txt")
	denied := runClient(t, files, "read_file", `{"path":"`+s.state+`/files/users/`+strconv.Itoa(aliceID)+`/diary.txt"}`)
	assert.NotContains(t, text(denied), "alice was here", "bob cannot name alice's directory either")

	require.NoError(t, s.SetGitHubUser(ctx, "alice", aliceID))
	assert.Contains(t, text(runClient(t, memory, "read_graph", "{}")), "alice-secret", "alice's graph outlives her session")
	assert.Contains(t, text(runClient(t, files, "read_file", `{"path":"diary.txt"}`)), "alice was here")
	for _, dir := range []string{"memory/users/", "files/users/"} {
		info, err := os.Stat(filepath.Join(s.state, dir+strconv.Itoa(aliceID)))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	}
}

// bearer adds an access token to every request, as an OAuth-capable client does after its authorization.
type bearer string

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}

// The official Go SDK client (v1.8.0), which speaks 2026-07-28 first, through the whole gateway: with the current
// revision (not the fallback) to a server that speaks it, and to a server of the session revisions through streamproxy's
// bridging, including a multi round-trip request.
func TestGoSDKClientThroughTheGateway(t *testing.T) {
	s := startStack(t, "path")
	ctx := context.Background()
	elicit := &mcp.ClientOptions{ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada Lovelace", "check": true}}, nil
	}}
	connect := func(url, token string) *mcp.ClientSession {
		client := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, elicit)
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: &http.Client{Transport: bearer(token)}}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cs.Close() })
		require.Equal(t, "2026-07-28", cs.InitializeResult().ProtocolVersion, "the client kept the current revision")
		return cs
	}
	textOf := func(res *mcp.CallToolResult, err error) string {
		require.NoError(t, err)
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}
	for name, c := range map[string]struct{ tool, args, elicit, resource, prompt string }{
		"conformance": {"test_simple_text", "{}", "test_input_required_result_elicitation", "test://static-text", "test_simple_prompt"},
		"everything":  {"echo", `{"message":"hi"}`, "trigger-elicitation-request", "", "simple-prompt"},
	} {
		t.Run(name, func(t *testing.T) {
			url := s.URLs[name]
			cs := connect(url, runClient(t, url, c.tool, c.args).Tokens.AccessToken)
			tools, err := cs.ListTools(ctx, nil)
			require.NoError(t, err)
			assert.NotEmpty(t, tools.Tools)
			var args map[string]any
			require.NoError(t, json.Unmarshal([]byte(c.args), &args))
			assert.NotEmpty(t, textOf(cs.CallTool(ctx, &mcp.CallToolParams{Name: c.tool, Arguments: args})))
			uri := c.resource
			if uri == "" {
				list, err := cs.ListResources(ctx, nil)
				require.NoError(t, err)
				require.NotEmpty(t, list.Resources)
				uri = list.Resources[0].URI
			}
			read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
			require.NoError(t, err)
			assert.NotEmpty(t, read.Contents)
			prompt, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: c.prompt})
			require.NoError(t, err)
			assert.NotEmpty(t, prompt.Messages)
			assert.Contains(t, textOf(cs.CallTool(ctx, &mcp.CallToolParams{Name: c.elicit})), "Ada",
				"the elicitation answer came back through the edge")
		})
	}
}

// The subdomain layout, like the reference system's: https://<service>.example.com/mcp and https://auth.example.com,
// here http://<service>.localhost:PORT/mcp and http://auth.localhost:PORT.
// getStatus is the status of a GET through the gateway.
func getStatus(t *testing.T, u string) int {
	t.Helper()
	resp, err := devstack.Client().Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestSubdomainLayout(t *testing.T) {
	s := startStack(t, "subdomain")
	everything, diagnostic := s.URLs["everything"], s.URLs["diagnostic"]
	port := strings.TrimPrefix(s.Issuer, "http://auth.localhost:")
	require.Equal(t, "http://everything.localhost:"+port+"/mcp", everything)

	resp := mcpRequest(t, everything, "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	prmURL := "http://everything.localhost:" + port + "/.well-known/oauth-protected-resource/mcp"
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+prmURL+`"`)
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	getJSON(t, prmURL, &prm)
	assert.Equal(t, everything, prm.Resource)
	assert.Equal(t, []string{s.Issuer}, prm.AuthorizationServers)
	var asm struct {
		Issuer string `json:"issuer"`
	}
	getJSON(t, s.Issuer+"/.well-known/oauth-authorization-server", &asm)
	assert.Equal(t, s.Issuer, asm.Issuer)

	run := runClient(t, everything)
	auth, err := url.Parse(run.AuthorizationURL)
	require.NoError(t, err)
	assert.Equal(t, "auth.localhost:"+port, auth.Host)
	assert.Equal(t, everything, auth.Query().Get("resource"))
	require.NotEmpty(t, run.Result.Content)
	assert.Equal(t, "Echo: hello through the gateway", run.Result.Content[0].Text)
	assert.True(t, run.Refreshed)

	// Audience isolation between subdomains.
	resp = mcpRequest(t, diagnostic, run.Tokens.AccessToken)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	checkCORS(t, everything, run.Tokens.AccessToken)

	assert.Equal(t, http.StatusForbidden, getStatus(t, s.Issuer+"/revocations"), "the feed is not public")

	// Revocation reaches the edge.
	revoke, err := devstack.Client().PostForm(s.Issuer+"/revoke", url.Values{"client_id": {run.ClientID}, "token": {run.Tokens.AccessToken}})
	require.NoError(t, err)
	revoke.Body.Close()
	require.Equal(t, http.StatusOK, revoke.StatusCode)
	require.Eventually(t, func() bool {
		return mcpRequest(t, everything, run.Tokens.AccessToken).StatusCode == http.StatusUnauthorized
	}, 15*time.Second, 250*time.Millisecond)
}

// checkCORS plays a browser client on another origin (MCP Inspector): the preflight is answered without a token, and
// the headers the client must read are exposed on a 401 and on an initialize.
func checkCORS(t *testing.T, mcpURL, token string) {
	t.Helper()
	const origin = "http://localhost:6274"
	pre, _ := http.NewRequest(http.MethodOptions, mcpURL, nil)
	pre.Header.Set("Origin", origin)
	pre.Header.Set("Access-Control-Request-Method", "POST")
	pre.Header.Set("Access-Control-Request-Headers", "authorization,content-type,mcp-protocol-version,mcp-session-id,mcp-method,mcp-name,mcp-param-region")
	resp, err := devstack.Client().Do(pre)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Less(t, resp.StatusCode, 300, "preflight answered")
	assert.Contains(t, []string{"*", origin}, resp.Header.Get("Access-Control-Allow-Origin"))
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "mcp-method", "mcp-name"} {
		assert.Contains(t, allowed, h, "preflight allows %s", h)
	}
	assert.Contains(t, strings.Split(strings.ReplaceAll(allowed, " ", ""), ","), "*", "and any Mcp-Param-<name> a tool declares")
	// Except streamproxy's own headers, which Traefik and the replicas alone set.
	pre.Header.Set("Access-Control-Request-Headers", "authorization,content-type,x-streamproxy-forwarded")
	resp, err = devstack.Client().Do(pre)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a preflight that asks to send X-Streamproxy-Forwarded is refused")
	assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"))

	post := func(token string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(
			`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"browser","version":"1"}}}`))
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		// Only streamproxy replicas set it (with a proof): Traefik removes a client's, which streamproxy would refuse.
		req.Header.Set("X-Streamproxy-Forwarded", "from-a-browser")
		resp, err := devstack.Client().Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp = post("")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate")
	assert.NotEmpty(t, resp.Header.Get("Access-Control-Allow-Origin"))
	resp = post(token)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("Mcp-Session-Id"))
	assert.Contains(t, resp.Header.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id")
	assert.Equal(t, 1, len(resp.Header.Values("Access-Control-Allow-Origin")), "one Access-Control-Allow-Origin header")
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := devstack.Client().Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, u)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

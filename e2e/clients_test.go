package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/clientprofile"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// documentHost serves the profiles' Client ID Metadata Documents and key sets on an https test server that the
// authorization server trusts (the documents are on loopback, which only the development flag allows). It returns
// the server's origin and the authserver flags that trust it.
func documentHost(t *testing.T, profiles []clientprofile.Profile) (string, []string) {
	t.Helper()
	docs := httptest.NewTLSServer(clientprofile.DocumentHandler(profiles))
	t.Cleanup(docs.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: docs.Certificate().Raw}), 0o600))
	return docs.URL, []string{"--cimd-ca-file", ca, "--cimd-allow-private-addresses"}
}

// connect runs one profile from the bare MCP URL to a tool call, then a refresh and another call.
func connect(t *testing.T, p clientprofile.Profile, env clientprofile.Env) *clientprofile.Session {
	t.Helper()
	ctx := context.Background()
	s := clientprofile.New(p, env)
	require.NoError(t, s.Connect(ctx))
	text, err := s.CallTool(ctx, "echo", map[string]any{"message": "hello from " + p.Name})
	require.NoError(t, err)
	assert.Equal(t, "Echo: hello from "+p.Name, text)
	firstRefresh := s.Res.RefreshToken
	require.NotEmpty(t, firstRefresh, "a refresh token was issued")
	require.NoError(t, s.Refresh(ctx))
	assert.NotEqual(t, firstRefresh, s.Res.RefreshToken, "refresh tokens rotate")
	text, err = s.CallTool(ctx, "echo", map[string]any{"message": "again"})
	require.NoError(t, err)
	assert.Equal(t, "Echo: again", text, "the refreshed token works through the edge")
	return s
}

// Every client the gateway is for, replayed through Traefik, the plugin, the authserver (Redis) and streamproxy:
// discovery, its registration (metadata document or DCR), authorization through GitHub and the consent page,
// token, MCP calls, refresh. What each profile sends is in internal/clientprofile; docs/clients.md lists them.
func TestClientProfiles(t *testing.T) {
	profiles := clientprofile.All()
	docs, flags := documentHost(t, profiles)
	s := startStack(t, "path", flags...)
	mcpURL := s.URLs["everything"]
	env := clientprofile.Env{MCPURL: mcpURL, HTTP: devstack.Client(), DocumentBase: docs, Port: testenv.FreePort(t)}
	ran := map[string]*clientprofile.Session{}
	for _, p := range profiles {
		t.Run(p.Name, func(t *testing.T) { ran[p.Name] = connect(t, p, env) })
	}
	res := func(name string) clientprofile.Result {
		require.Contains(t, ran, name)
		return ran[name].Res
	}

	t.Run("what each client got", func(t *testing.T) {
		// Claude.ai: its document (the server lists none), its scope string trimmed to what is granted.
		claude := res("Claude.ai")
		assert.True(t, claude.UsedDocument)
		assert.Equal(t, docs+"/oauth/mcp-oauth-client-metadata", claude.ClientID)
		assert.Equal(t, " mcp  offline_access profile", claude.RequestedScope)
		assert.Equal(t, "mcp offline_access", claude.GrantedScope)
		assert.Contains(t, claude.ConsentPage, "It also asked for profile which this server does not offer")
		assert.Equal(t, "https://claude.ai/api/mcp/auth_callback", claude.RedirectURI)

		// ChatGPT: private_key_jwt with its document's key, no fallback.
		chatgpt := res("ChatGPT")
		assert.True(t, chatgpt.UsedDocument)
		assert.Equal(t, "private_key_jwt", chatgpt.AuthMethod)
		assert.Equal(t, 1, chatgpt.Refreshes)
		assert.Equal(t, "https://chatgpt.com/connector/oauth/e2e-connector", chatgpt.RedirectURI)

		// Claude Code and VS Code: documents with loopback redirects, used on another port.
		code := res("Claude Code")
		assert.True(t, code.UsedDocument)
		assert.Regexp(t, `^http://localhost:\d+/callback$`, code.RedirectURI)
		assert.NotContains(t, code.RedirectURI, ":33418")
		assert.Contains(t, code.AuthorizationURL, "resource=")
		vscode := res("VS Code")
		assert.True(t, vscode.UsedDocument)
		assert.Regexp(t, `^http://127\.0\.0\.1:\d+/$`, vscode.RedirectURI)

		// Cursor: DCR and its private-use scheme; no scope sent, the default granted.
		cursor := res("Cursor")
		assert.False(t, cursor.UsedDocument)
		assert.Equal(t, 1, cursor.Registrations)
		assert.Equal(t, "cursor://anysphere.cursor-mcp/oauth/callback", cursor.RedirectURI)
		assert.Empty(t, cursor.RequestedScope)
		assert.Equal(t, "mcp", cursor.GrantedScope)

		// Codex: DCR with an ephemeral loopback port and its callback id.
		codex := res("Codex")
		assert.Equal(t, 1, codex.Registrations)
		assert.Regexp(t, `^http://127\.0\.0\.1:\d+/callback/`+regexp.QuoteMeta(clientprofile.CallbackID(mcpURL))+`$`, codex.RedirectURI)

		// MCP Inspector: every request from its browser origin, readable there; the ones with non-simple headers
		// preflighted and allowed (the form-encoded token request is a simple one, as in a browser).
		inspector := res("MCP Inspector")
		assert.Equal(t, 1, inspector.Registrations)
		assert.NotContains(t, inspector.Preflights, "/token")
		for _, path := range []string{"/.well-known/oauth-protected-resource/everything/mcp", "/.well-known/oauth-authorization-server",
			"/register", "/everything/mcp"} {
			assert.Contains(t, inspector.Preflights, path, "the browser preflighted %s", path)
		}
	})

	t.Run("each client is named on the consent page and in its tokens", func(t *testing.T) {
		for name, r := range map[string]clientprofile.Result{"Claude.ai": res("Claude.ai"), "ChatGPT": res("ChatGPT")} {
			assert.Contains(t, r.ConsentPage, strings.TrimSuffix(strings.Split(docs, "//")[1], "/"), "%s: the publishing host is shown", name)
		}
		for name, r := range ran {
			claims := jwtClaims(t, r.Res.AccessToken)
			assert.Equal(t, r.Res.ClientID, claims["client_id"], name)
			assert.Equal(t, mcpURL, claims["aud"], "%s: the token is for this MCP server only", name)
		}
	})

	// No secret any client handled reached a log.
	logs := s.logs.String()
	for name, r := range ran {
		for _, secret := range r.Res.Secrets {
			if len(secret) > 8 {
				assert.NotContains(t, logs, secret, "%s: a log line holds a secret", name)
			}
		}
	}
	as := scrapeMetrics(t, s.Metrics["authserver"])
	assert.Equal(t, 3.0, as.value("authserver_client_registrations_total", "outcome", "registered"), "Cursor, Codex and MCP Inspector registered")
}

// Claude.ai against a server without metadata documents registers dynamically, a new client per fresh connection,
// and registers again when the token endpoint no longer knows it. `authserver clients purge` clears the
// registrations nobody used and keeps the ones in use.
func TestClaudeDynamicRegistrationChurn(t *testing.T) {
	s := startStack(t, "path", "--cimd=false")
	ctx := context.Background()
	env := clientprofile.Env{MCPURL: s.URLs["everything"], HTTP: devstack.Client()}
	first := connect(t, clientprofile.ClaudeAI(), env)
	assert.False(t, first.Res.UsedDocument)
	assert.Equal(t, "client_secret_post", first.Res.AuthMethod)
	assert.Equal(t, 1, first.Res.Registrations)
	second := connect(t, clientprofile.ClaudeAI(), env) // a fresh connection: another registration
	assert.NotEqual(t, first.Res.ClientID, second.Res.ClientID)

	// An abandoned attempt: registered, never authorized.
	req, _ := http.NewRequest(http.MethodPost, s.Issuer+"/register", strings.NewReader(
		`{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"token_endpoint_auth_method":"client_secret_post"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := devstack.Client().Do(req)
	require.NoError(t, err)
	var abandoned struct {
		ClientID string `json:"client_id"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&abandoned))
	resp.Body.Close()

	authserver := testenv.BuildBinary(t, "./authserver")
	admin := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(authserver, args...)
		cmd.Env = testenv.Env("REDIS_URL=" + s.redis.URL)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "%s%s", out, stderr.String())
		return string(out)
	}
	time.Sleep(1100 * time.Millisecond)
	out := admin("clients", "purge", "--unused-for", "1s", "--yes", "--json")
	var purged struct {
		Clients []struct {
			ID string `json:"client_id"`
		} `json:"clients"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &purged), out)
	require.Len(t, purged.Clients, 1, out)
	assert.Equal(t, abandoned.ClientID, purged.Clients[0].ID, "only the never-used registration went")

	// The operator deletes the first client; at its next refresh Claude gets 401 invalid_client, registers again,
	// and is back (after the user approves again).
	admin("clients", "delete", first.Res.ClientID, "--yes")
	require.NoError(t, first.Refresh(ctx))
	assert.Equal(t, 2, first.Res.Registrations, "it registered again")
	text, err := first.CallTool(ctx, "echo", map[string]any{"message": "back"})
	require.NoError(t, err)
	assert.Equal(t, "Echo: back", text)
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	require.NoError(t, err)
	return b
}

// jwtClaims reads a JWT's claims (the test trusts the token it was just given).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	var claims map[string]any
	require.NoError(t, json.Unmarshal(mustB64(t, parts[1]), &claims))
	return claims
}

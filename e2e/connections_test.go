package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/hydratest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The two halves of connected accounts meet: the authserver binary (its broker on the internal listener, its connect
// pages, a second ORY Hydra as the upstream "gitlab") and the streamproxy binary in front of the real GitLab MCP
// server, which calls a stand-in of GitLab's API that records each call's credential. A user's first call meets the
// connect link; the link is driven in a browser (the login through the fake GitHub, then Hydra); the retry reaches
// the API with that user's own Hydra token, alice's with alice's and bob's with bob's.

const connBrokerSecret = "e2e-broker-secret-of-at-least-32-chars"

type recordingAPI struct {
	mu   sync.Mutex
	auth []string
}

func (a *recordingAPI) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.auth) == 0 {
		return ""
	}
	return a.auth[len(a.auth)-1]
}

// mcpPost sends one JSON-RPC message to streamproxy as user (what the plugin would pass in X-User-Id) and returns the
// answer's headers and its last message.
func mcpPost(t *testing.T, url, session, user, body string) (http.Header, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-User-Id", user)
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Less(t, resp.StatusCode, 300, "%s", raw)
	var last map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				require.NoError(t, json.Unmarshal([]byte(data), &last))
			}
		}
	} else if len(bytes.TrimSpace(raw)) > 0 {
		require.NoError(t, json.Unmarshal(raw, &last), "%s", raw)
	}
	return resp.Header, last
}

const initWithURLElicitation = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",` +
	`"capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"e2e","version":"1"}}}`

func TestConnectedAccountReachesTheUsersProcess(t *testing.T) {
	gitlabMCP := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-gitlab", "dist", "index.js")
	if _, err := os.Stat(gitlabMCP); err != nil {
		testenv.Missing(t, "@modelcontextprotocol/server-gitlab", "run `go tool task deps`")
	}
	hydra := hydratest.Start(t)
	gh := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{
			{ID: 1001, Login: "alice", Emails: []fakegithub.Email{{Email: "alice@example.com", Primary: true, Verified: true}}},
			{ID: 1002, Login: "bob", Emails: []fakegithub.Email{{Email: "bob@example.com", Primary: true, Verified: true}}},
		},
		Apps: []fakegithub.App{{ClientID: "gh-app", ClientSecret: "gh-secret"}},
	})
	asPort, feedPort, spPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", asPort)
	hydraClient, hydraSecret := hydra.Client(t, issuer+"/connect/gitlab/callback")
	key := make([]byte, 32)
	_, _ = rand.Read(key)

	asBin, dataFile := testenv.BuildBinary(t, "./authserver"), filepath.Join(t.TempDir(), "as.jsonl")
	as := exec.Command(asBin, "--listen", fmt.Sprintf("127.0.0.1:%d", asPort),
		"--issuer", issuer, "--resources", issuer+"/gitlab/mcp", "--data-file", dataFile,
		"--feed-listen", fmt.Sprintf("127.0.0.1:%d", feedPort), "--log-format", "text",
		"--github-client-id", "gh-app", "--github-web-url", gh.WebURL(), "--github-api-url", gh.APIURL(),
		"--allowed-github-users", "alice,bob",
		"--upstreams", "gitlab", "--upstream-gitlab-issuer", hydra.Issuer, "--upstream-gitlab-client-id", hydraClient,
		"--upstream-gitlab-scopes", "openid,offline_access", "--upstream-gitlab-display-name", "GitLab")
	as.Env = append(os.Environ(), "AUTHSERVER_GITHUB_CLIENT_SECRET=gh-secret", "AUTHSERVER_UPSTREAM_GITLAB_CLIENT_SECRET="+hydraSecret,
		"AUTHSERVER_CONNECTIONS_KEY=k1:"+base64.StdEncoding.EncodeToString(key), "AUTHSERVER_BROKER_SECRET="+connBrokerSecret)
	asProc := testenv.Start(t, "authserver", as)
	asProc.WaitLine(t, "authserver listening", 30*time.Second)

	api := &recordingAPI{}
	apiSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		api.auth = append(api.auth, r.Header.Get("Authorization"))
		api.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Total", "0")
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(apiSrv.Close)
	sp := exec.Command(testenv.BuildBinary(t, "./streamproxy"), "--listen", fmt.Sprintf("127.0.0.1:%d", spPort),
		"--broker-url", fmt.Sprintf("http://127.0.0.1:%d", feedPort), "--token-dir", filepath.Join(t.TempDir(), "tokens"),
		"--env", "GITLAB_PERSONAL_ACCESS_TOKEN={token:gitlab}", "--env", "GITLAB_API_URL="+apiSrv.URL+"/api/v4",
		"--", "node", gitlabMCP)
	sp.Env = append(os.Environ(), "STREAMPROXY_BROKER_SECRET="+connBrokerSecret)
	spProc := testenv.Start(t, "streamproxy", sp)
	spProc.WaitLine(t, "streamproxy listening", 30*time.Second)
	mcpURL := fmt.Sprintf("http://127.0.0.1:%d/mcp", spPort)

	search, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call",
		"params": map[string]any{"name": "search_repositories", "arguments": map[string]any{"search": "gateway"}}})
	subjects := map[string]string{}
	for _, u := range []struct{ login, id string }{{"alice", "1001"}, {"bob", "1002"}} {
		// First use: no connection, so no process, and the connect link of the real broker.
		_, msg := mcpPost(t, mcpURL, "", u.id, initWithURLElicitation)
		rpcErr, _ := msg["error"].(map[string]any)
		require.NotNil(t, rpcErr, "%v", msg)
		assert.EqualValues(t, -32042, rpcErr["code"])
		link := rpcErr["data"].(map[string]any)["elicitations"].([]any)[0].(map[string]any)["url"].(string)
		require.True(t, strings.HasPrefix(link, issuer+"/connect/gitlab?ticket="), link)

		// The user opens it: logs in as themselves (fake GitHub), authorizes at Hydra, is connected.
		require.NoError(t, gh.SetLogin(u.login))
		hydra.SetUser(hydratest.User{Subject: u.login + "-at-gitlab", Claims: map[string]any{"email": u.login + "@gitlab.example"}})
		res, err := webbrowser.New(nil).Run(context.Background(), link)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.Status, res.Page)
		assert.Contains(t, res.Page, "GitLab connected")

		// The retry starts the user's process with their token; the server's call carries it.
		h, msg := mcpPost(t, mcpURL, "", u.id, initWithURLElicitation)
		require.Nil(t, msg["error"], "%v", msg)
		sid := h.Get("Mcp-Session-Id")
		require.NotEmpty(t, sid)
		mcpPost(t, mcpURL, sid, u.id, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
		_, msg = mcpPost(t, mcpURL, sid, u.id, string(search))
		require.NotNil(t, msg["result"], "%v", msg)
		token, ok := strings.CutPrefix(api.last(), "Bearer ")
		require.True(t, ok, "the API was called with a bearer token: %q", api.last())

		req, _ := http.NewRequest(http.MethodGet, hydra.Issuer+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var info struct {
			Sub string `json:"sub"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
		resp.Body.Close()
		subjects[u.login] = info.Sub
	}
	assert.Equal(t, map[string]string{"alice": "alice-at-gitlab", "bob": "bob-at-gitlab"}, subjects,
		"each user's call reached the API with that user's own upstream token")

	// The operator disconnects alice (through the running server's admin socket): her next process meets the
	// connect link again; bob's connection is untouched.
	revoke := exec.Command(asBin, "connections", "revoke", "--user", "1001", "--upstream", "gitlab", "--yes")
	revoke.Env = append(os.Environ(), "AUTHSERVER_DATA_FILE="+dataFile)
	out, err := revoke.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "deleted 1 connection(s) of user 1001")
	_, msg := mcpPost(t, mcpURL, "", "1001", initWithURLElicitation)
	rpcErr, _ := msg["error"].(map[string]any)
	require.NotNil(t, rpcErr, "%v", msg)
	assert.EqualValues(t, -32042, rpcErr["code"], "alice must connect again")
	h, msg := mcpPost(t, mcpURL, "", "1002", initWithURLElicitation)
	assert.Nil(t, msg["error"], "%v", msg)
	assert.NotEmpty(t, h.Get("Mcp-Session-Id"))

	for _, out := range []string{asProc.Output(), spProc.Output()} {
		assert.NotContains(t, out, "ory_at_", "no upstream token in a log")
	}
}

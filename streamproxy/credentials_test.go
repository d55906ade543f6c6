package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker/brokertest"
)

// Each user's MCP server process gets that user's upstream credential: a real third-party server (the GitLab MCP
// server, which reads its personal access token from its environment) calls a stand-in of GitLab's API that records
// the credential of every call; the tokens come from a stand-in of the authserver's broker.

const brokerSecret = "shared-with-the-authserver"

// gitlabAPI is the stand-in of GitLab's REST API: it records the Authorization of each call.
type gitlabAPI struct {
	URL  string
	mu   sync.Mutex
	auth []string
}

func newGitlabAPI(t *testing.T) *gitlabAPI {
	api := &gitlabAPI{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.mu.Lock()
		api.auth = append(api.auth, r.Header.Get("Authorization"))
		api.mu.Unlock()
		if r.URL.Path != "/api/v4/projects" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Total", "0")
		_, _ = w.Write([]byte("[]"))
	}))
	t.Cleanup(srv.Close)
	api.URL = srv.URL + "/api/v4"
	return api
}

// calls returns the Authorization of every call so far.
func (a *gitlabAPI) calls() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auth...)
}

func gitlabServer(t *testing.T) string {
	p := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-gitlab", "dist", "index.js")
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "@modelcontextprotocol/server-gitlab in "+testenv.NodeModules(t), "run `go tool task deps`")
	}
	return p
}

// gitlabProxy runs streamproxy in front of the GitLab MCP server, its token from the broker.
func gitlabProxy(t *testing.T, b *brokertest.Broker, api *gitlabAPI, extra ...string) (*testenv.Process, string) {
	t.Setenv("STREAMPROXY_BROKER_SECRET", brokerSecret)
	flags := append([]string{"--broker-url", b.URL, "--env", "GITLAB_API_URL=" + api.URL}, extra...)
	if len(extra) == 0 {
		flags = append(flags, "--env", "GITLAB_PERSONAL_ACCESS_TOKEN={token:gitlab}")
	}
	p, url, _ := proxyProcess(t, testenv.FreePort(t), flags, "node", gitlabServer(t))
	return p, url
}

var searchCall = map[string]any{"name": "search_repositories", "arguments": map[string]any{"search": "gateway"}}

// openSession initializes a session as a user and returns its id.
func openSession(t *testing.T, url, user string) string {
	t.Helper()
	r := post(t, url, "", initBody, "X-User-Id", user)
	require.Equal(t, 200, r.status)
	require.Nil(t, r.messages[len(r.messages)-1]["error"], "%v", r.messages)
	sid := r.header.Get("Mcp-Session-Id")
	require.NotEmpty(t, sid)
	post(t, url, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "X-User-Id", user)
	return sid
}

// sessionSearch calls the search tool in a session and requires it to succeed.
func sessionSearch(t *testing.T, url, sid, user string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": searchCall})
	r := post(t, url, sid, string(body), "X-User-Id", user)
	require.Equal(t, 200, r.status)
	res, _ := json.Marshal(r.messages[len(r.messages)-1])
	require.NotContains(t, string(res), `"isError":true`, "%s", res)
	require.Contains(t, string(res), `count`, "the tool called the API: %s", res)
}

func TestEachUsersProcessCarriesTheirToken(t *testing.T) {
	b := brokertest.New(t, brokerSecret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	b.Connect("bob", "gitlab", "glpat-bob", time.Time{})
	api := newGitlabAPI(t)
	p, url := gitlabProxy(t, b, api)

	// Sessions, interleaved: each call reaches the API with its own user's token.
	alice := openSession(t, url, "alice")
	bob := openSession(t, url, "bob")
	sessionSearch(t, url, alice, "alice")
	sessionSearch(t, url, bob, "bob")
	sessionSearch(t, url, alice, "alice")
	assert.Equal(t, []string{"Bearer glpat-alice", "Bearer glpat-bob", "Bearer glpat-alice"}, api.calls())

	// 2026-07-28, through the Go SDK's client: each user's worker has that user's token.
	for _, user := range []string{"bob", "alice"} {
		cs := connect(t, url, user, nil)
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "search_repositories", Arguments: map[string]any{"search": "gateway"}})
		require.NoError(t, err)
		require.False(t, res.IsError, text(t, res))
		calls := api.calls()
		assert.Equal(t, "Bearer glpat-"+user, calls[len(calls)-1])
	}
	assert.Equal(t, 2, b.Asked("alice", "gitlab"), "one fetch per process: alice's session and alice's worker")
	assert.NotContains(t, p.Output(), "glpat-", "no token in the proxy's log")
}

// A user who has not connected the upstream meets the connect page instead of a process; once they connect, the
// retried initialize starts one with their token.
func TestConnectOnFirstUseSession(t *testing.T) {
	b := brokertest.New(t, brokerSecret, "gitlab")
	api := newGitlabAPI(t)
	p, url := gitlabProxy(t, b, api)
	connectURL := brokertest.ConnectURL("carol", "gitlab")

	withURL := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{"form":{},"url":{}}},"clientInfo":{"name":"test","version":"1"}}}`
	r := post(t, url, "", withURL, "X-User-Id", "carol")
	require.Equal(t, 200, r.status)
	assert.Empty(t, r.header.Get("Mcp-Session-Id"), "no session without the process")
	e := rpcErrorOf(t, r)
	assert.EqualValues(t, -32042, e["code"], "URLElicitationRequiredError")
	elicitations := e["data"].(map[string]any)["elicitations"].([]any)
	require.Len(t, elicitations, 1)
	el := elicitations[0].(map[string]any)
	assert.Equal(t, "url", el["mode"])
	assert.Equal(t, connectURL, el["url"])
	assert.NotEmpty(t, el["elicitationId"])
	assert.Contains(t, el["message"], "gitlab")

	// Without URL-mode elicitation (form only, or a revision before 2025-11-25): an error that holds the URL.
	for _, body := range []string{initBody,
		strings.Replace(withURL, "2025-11-25", "2025-06-18", 1),
		strings.Replace(withURL, `"form":{},"url":{}`, "", 1)} {
		r := post(t, url, "", body, "X-User-Id", "carol")
		e := rpcErrorOf(t, r)
		assert.NotEqualValues(t, -32042, e["code"], body)
		assert.Contains(t, e["message"], connectURL, body)
	}
	assert.Empty(t, api.calls())
	assert.Contains(t, health(t, url), `"sessions":0`, "no process was started")

	b.Connect("carol", "gitlab", "glpat-carol", time.Time{})
	sid := openSession(t, url, "carol")
	sessionSearch(t, url, sid, "carol")
	assert.Equal(t, []string{"Bearer glpat-carol"}, api.calls())
	assert.NotContains(t, p.Output(), "glpat-")
}

// On 2026-07-28 the connect page comes as a URL-mode elicitation in an InputRequiredResult; the retry, with the
// request state, runs once the user has connected.
func TestConnectOnFirstUseStateless(t *testing.T) {
	b := brokertest.New(t, brokerSecret, "gitlab")
	api := newGitlabAPI(t)
	_, url := gitlabProxy(t, b, api)
	urlCaps := map[string]any{"elicitation": map[string]any{"url": map[string]any{}}}

	r := postStateless(t, url, "dave", statelessBody(1, "tools/call", maps.Clone(searchCall), urlCaps))
	require.Equal(t, 200, r.status)
	res := r.messages[0]["result"].(map[string]any)
	assert.Equal(t, "input_required", res["resultType"])
	req := res["inputRequests"].(map[string]any)["connect-gitlab"].(map[string]any)
	assert.Equal(t, "elicitation/create", req["method"])
	params := req["params"].(map[string]any)
	assert.Equal(t, "url", params["mode"])
	assert.Equal(t, brokertest.ConnectURL("dave", "gitlab"), params["url"])
	assert.NotEmpty(t, params["elicitationId"])
	state := res["requestState"].(string)
	require.NotEmpty(t, state)

	// A request that cannot carry input requests gets the error form; a client without URL elicitation the URL.
	e := rpcErrorOf(t, postStateless(t, url, "dave", statelessBody(2, "server/discover", nil, urlCaps)))
	assert.EqualValues(t, -32042, e["code"])
	e = rpcErrorOf(t, postStateless(t, url, "dave", statelessBody(3, "tools/call", maps.Clone(searchCall), map[string]any{})))
	assert.Contains(t, e["message"], brokertest.ConnectURL("dave", "gitlab"))

	retry := func(user, action string) reply {
		p := maps.Clone(searchCall)
		p["requestState"] = state
		p["inputResponses"] = map[string]any{"connect-gitlab": map[string]any{"action": action}}
		return postStateless(t, url, user, statelessBody(4, "tools/call", p, urlCaps))
	}
	// Retried before connecting: asked again.
	r = retry("dave", "accept")
	assert.Equal(t, "input_required", r.messages[0]["result"].(map[string]any)["resultType"])
	assert.Empty(t, api.calls(), "no process without the connection")

	b.Connect("dave", "gitlab", "glpat-dave", time.Time{})
	r = retry("dave", "accept")
	out, _ := json.Marshal(r.messages[len(r.messages)-1])
	require.Contains(t, string(out), `count`, "the retried call ran: %s", out)
	assert.Equal(t, []string{"Bearer glpat-dave"}, api.calls())

	// A user who declines gets an error, not another round.
	e = rpcErrorOf(t, retry("erin", "decline"))
	assert.Contains(t, e["message"], "did not connect gitlab")
}

// {token_file:...}: the process reads its user's token from a 0600 file, which is gone once the process ends.
func TestTokenFileReachesTheServer(t *testing.T) {
	b := brokertest.New(t, brokerSecret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	api := newGitlabAPI(t)
	dir := filepath.Join(t.TempDir(), "tokens")
	t.Setenv("STREAMPROXY_BROKER_SECRET", brokerSecret)
	// The server reads its token from the environment: a shell reads the file into it, as a wrapper script would
	// (the sandbox does not see the server's script among a shell's arguments: --sandbox-allow-read names it).
	script := fmt.Sprintf(`GITLAB_PERSONAL_ACCESS_TOKEN=$(cat "$GITLAB_TOKEN_FILE") exec node %s`, gitlabServer(t))
	_, url, _ := proxyProcess(t, testenv.FreePort(t), []string{"--broker-url", b.URL, "--token-dir", dir,
		"--env", "GITLAB_API_URL=" + api.URL, "--env", "GITLAB_TOKEN_FILE={token_file:gitlab}",
		"--sandbox-allow-read", testenv.NodeModules(t)}, "sh", "-c", script)

	sid := openSession(t, url, "alice")
	sessionSearch(t, url, sid, "alice")
	assert.Equal(t, []string{"Bearer glpat-alice"}, api.calls())
	files, err := filepath.Glob(filepath.Join(dir, "alice", "*", "gitlab"))
	require.NoError(t, err)
	require.Len(t, files, 1)
	info, err := os.Stat(files[0])
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	req, err := http.NewRequest(http.MethodDelete, url, nil)
	require.NoError(t, err)
	req.Header.Set("Mcp-Session-Id", sid)
	require.Equal(t, http.StatusNoContent, send(t, req, "X-User-Id", "alice").status)
	require.Eventually(t, func() bool {
		_, err := os.Stat(files[0])
		return errors.Is(err, os.ErrNotExist)
	}, 10*time.Second, 50*time.Millisecond, "the token file is removed when the process ends")
}

// health returns the proxy's /health answer.
func health(t *testing.T, mcpURL string) string {
	resp, err := http.Get(strings.TrimSuffix(mcpURL, "/mcp") + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var m map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
	out, _ := json.Marshal(m)
	return string(out)
}

// A user who disconnects the upstream stops their running process's use of it: the token file's refresh finds the
// connection gone, the process ends, and the next initialize meets the connect page.
func TestDisconnectEndsTheProcess(t *testing.T) {
	b := brokertest.New(t, brokerSecret, "gitlab")
	// Expiring just past the refresh lead (45 s): the file is refreshed every few seconds.
	b.Connect("alice", "gitlab", "glpat-alice", time.Now().Add(46*time.Second))
	api := newGitlabAPI(t)
	dir := filepath.Join(t.TempDir(), "tokens")
	t.Setenv("STREAMPROXY_BROKER_SECRET", brokerSecret)
	script := fmt.Sprintf(`GITLAB_PERSONAL_ACCESS_TOKEN=$(cat "$GITLAB_TOKEN_FILE") exec node %s`, gitlabServer(t))
	p, url, _ := proxyProcess(t, testenv.FreePort(t), []string{"--broker-url", b.URL, "--token-dir", dir,
		"--env", "GITLAB_API_URL=" + api.URL, "--env", "GITLAB_TOKEN_FILE={token_file:gitlab}",
		"--sandbox-allow-read", testenv.NodeModules(t)}, "sh", "-c", script)
	sid := openSession(t, url, "alice")
	sessionSearch(t, url, sid, "alice")

	b.Disconnect("alice", "gitlab")
	require.Eventually(t, func() bool {
		return strings.Contains(health(t, url), `"sessions":0`)
	}, 30*time.Second, 100*time.Millisecond, "the process of a disconnected user ends")
	r := post(t, url, sid, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`, "X-User-Id", "alice")
	assert.Equal(t, http.StatusNotFound, r.status)
	files, _ := filepath.Glob(filepath.Join(dir, "alice", "*", "gitlab"))
	assert.Empty(t, files)
	e := rpcErrorOf(t, post(t, url, "", initBody, "X-User-Id", "alice"))
	assert.Contains(t, e["message"], brokertest.ConnectURL("alice", "gitlab"))
	assert.NotContains(t, p.Output(), "glpat-")
}

// Under the sandbox a server cannot read another process's token file, even one of its own account: alice's server
// can neither list the token directory nor read bob's file, told its path (which it could not guess: each process's
// directory has a random name).
func TestTokenFilesOfOthersStayClosed(t *testing.T) {
	b := brokertest.New(t, brokerSecret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	b.Connect("bob", "gitlab", "glpat-bob", time.Time{})
	api := newGitlabAPI(t)
	dir := filepath.Join(t.TempDir(), "tokens")
	targets := filepath.Join(t.TempDir(), "targets")
	require.NoError(t, os.WriteFile(targets, nil, 0o644))
	t.Setenv("STREAMPROXY_BROKER_SECRET", brokerSecret)
	script := fmt.Sprintf(`ls "$TOKENS" >&2 || echo "refused: listing" >&2
for f in $(cat "$TARGETS"); do cat "$f" >&2 || echo "refused: $f" >&2; done
GITLAB_PERSONAL_ACCESS_TOKEN=$(cat "$GITLAB_TOKEN_FILE") exec node %s`, gitlabServer(t))
	p, url, _ := proxyProcess(t, testenv.FreePort(t), []string{"--broker-url", b.URL, "--token-dir", dir,
		"--env", "GITLAB_API_URL=" + api.URL, "--env", "GITLAB_TOKEN_FILE={token_file:gitlab}",
		"--env", "TOKENS=" + dir, "--env", "TARGETS=" + targets,
		"--sandbox", "required", "--sandbox-allow-read", testenv.NodeModules(t) + "," + targets}, "sh", "-c", script)

	bob := openSession(t, url, "bob")
	sessionSearch(t, url, bob, "bob")
	bobs, err := filepath.Glob(filepath.Join(dir, "bob", "*", "gitlab"))
	require.NoError(t, err)
	require.Len(t, bobs, 1)
	require.NoError(t, os.WriteFile(targets, []byte(bobs[0]), 0o644))
	alice := openSession(t, url, "alice")
	sessionSearch(t, url, alice, "alice")
	p.WaitLine(t, "refused: "+bobs[0], 10*time.Second)
	assert.Contains(t, p.Output(), "refused: listing")
	assert.Equal(t, []string{"Bearer glpat-bob", "Bearer glpat-alice"}, api.calls())
	assert.NotContains(t, p.Output(), "glpat-", "no process read another's token")
}

package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// headerTransport adds fixed headers to every request, as the gateway's plugin does for the backend.
type headerTransport struct {
	header http.Header
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

func startServer(t *testing.T, opts options) *httptest.Server {
	t.Helper()
	if opts.path == "" {
		opts.path = "/mcp"
	}
	h, err := newHandler(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func connect(t *testing.T, url string, header http.Header) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: headerTransport{header: header}},
	}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

func call(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err)
	return res
}

func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	require.NotEmpty(t, res.Content)
	tc, ok := res.Content[0].(*mcp.TextContent)
	require.True(t, ok, "first content is %T, want text", res.Content[0])
	return tc.Text
}

func TestToolsAreListed(t *testing.T) {
	srv := startServer(t, options{})
	cs := connect(t, srv.URL+"/mcp", nil)
	res, err := cs.ListTools(context.Background(), nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	assert.ElementsMatch(t, []string{"echo", "whoami", "replayLastEcho"}, names)
	assert.Equal(t, "mcp-diagnostic", cs.InitializeResult().ServerInfo.Name)
}

func TestEchoAndReplayArePerSession(t *testing.T) {
	srv := startServer(t, options{})
	a := connect(t, srv.URL+"/mcp", nil)
	b := connect(t, srv.URL+"/mcp", nil)

	res := call(t, a, "echo", map[string]any{"message": "hello from a"})
	assert.False(t, res.IsError)
	assert.Equal(t, "hello from a", textOf(t, res))
	assert.Equal(t, map[string]any{"message": "hello from a"}, res.StructuredContent)

	res = call(t, a, "replayLastEcho", map[string]any{})
	assert.False(t, res.IsError)
	assert.Equal(t, "hello from a", textOf(t, res))

	// Session b has echoed nothing: a's state must not leak into it.
	res = call(t, b, "replayLastEcho", map[string]any{})
	assert.True(t, res.IsError)
	assert.Contains(t, textOf(t, res), "call echo first")

	call(t, b, "echo", map[string]any{"message": "b"})
	assert.Equal(t, "b", textOf(t, call(t, b, "replayLastEcho", map[string]any{})))
	assert.Equal(t, "hello from a", textOf(t, call(t, a, "replayLastEcho", map[string]any{})))
}

func TestWhoamiShowsIdentityHeadersButNoToken(t *testing.T) {
	srv := startServer(t, options{})
	secret := "eyJhbGciOiJFUzI1NiJ9.secret-token-value.sig"
	cs := connect(t, srv.URL+"/mcp", http.Header{
		"X-User-Id":     {"583231"},
		"X-User-Name":   {"octocat"},
		"X-User-Email":  {"octocat@github.com"},
		"X-Client-Id":   {"client-123"},
		"X-Scopes":      {"mcp"},
		"X-User-Groups": {"acme,acme/platform"},
		"Authorization": {"Bearer " + secret},
	})
	res := call(t, cs, "whoami", map[string]any{})
	require.False(t, res.IsError)
	out := res.StructuredContent.(map[string]any)
	assert.Equal(t, "583231", out["userId"])
	assert.Equal(t, "octocat", out["userName"])
	assert.Equal(t, "octocat@github.com", out["userEmail"])
	assert.Equal(t, "client-123", out["clientId"])
	assert.Equal(t, "mcp", out["scopes"])
	assert.Equal(t, "acme,acme/platform", out["userGroups"])
	assert.Equal(t, true, out["authorizationReceived"])
	assert.Equal(t, cs.ID(), out["sessionId"])
	assert.Contains(t, textOf(t, res), "user name: octocat")
	assert.Contains(t, textOf(t, res), "groups: acme,acme/platform")
	assert.NotContains(t, textOf(t, res), secret)
	assert.NotContains(t, textOf(t, res), "secret-token-value")
}

func TestWhoamiWithoutGateway(t *testing.T) {
	srv := startServer(t, options{})
	res := call(t, connect(t, srv.URL+"/mcp", nil), "whoami", map[string]any{})
	out := res.StructuredContent.(map[string]any)
	assert.Equal(t, "", out["userId"])
	assert.Equal(t, false, out["authorizationReceived"])
	assert.Contains(t, textOf(t, res), "not behind the gateway")
}

func TestHealth(t *testing.T) {
	srv := startServer(t, options{})
	resp, err := http.Get(srv.URL + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	assert.JSONEq(t, `{"status":"ok"}`, string(body))
}

func TestHostChecks(t *testing.T) {
	post := func(t *testing.T, url, host string) int {
		req, err := http.NewRequest(http.MethodPost, url, nil)
		require.NoError(t, err)
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Default: the SDK's DNS-rebinding protection refuses a foreign Host on a loopback listener.
	srv := startServer(t, options{})
	assert.Equal(t, http.StatusForbidden, post(t, srv.URL+"/mcp", "evil.example.com"))

	srv = startServer(t, options{allowedHosts: "diagnostic.localhost, Diag.Example.com"})
	assert.Equal(t, http.StatusForbidden, post(t, srv.URL+"/mcp", "evil.example.com"))
	// An allowed host passes the check and reaches the MCP handler, which refuses the empty body as a bad request.
	assert.Equal(t, http.StatusBadRequest, post(t, srv.URL+"/mcp", "diagnostic.localhost:8080"))
	assert.Equal(t, http.StatusBadRequest, post(t, srv.URL+"/mcp", "diag.example.com"))

	srv = startServer(t, options{allowedHosts: "*"})
	assert.Equal(t, http.StatusBadRequest, post(t, srv.URL+"/mcp", "anything.example"))
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"--addr", ":9", "--allowed-hosts", "a,b", "--session-idle-timeout", "5m"})
	require.NoError(t, err)
	assert.Equal(t, ":9", o.addr)
	assert.Equal(t, "/mcp", o.path)
	assert.Equal(t, 5*time.Minute, o.sessionIdle)

	t.Setenv("MCP_DIAGNOSTIC_ADDR", "0.0.0.0:8090")
	o, err = parseFlags(nil)
	require.NoError(t, err)
	assert.Equal(t, "0.0.0.0:8090", o.addr)

	_, err = parseFlags([]string{"--session-idle-timeout", "soon"})
	assert.ErrorContains(t, err, "not a duration")
	_, err = parseFlags([]string{"--path", "mcp"})
	assert.ErrorContains(t, err, "must start with /")
	_, err = parseFlags([]string{"extra"})
	assert.ErrorContains(t, err, "unexpected arguments")
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/affinity"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/transport"
)

// The stateless path: protocol version 2026-07-28 on the same endpoint as the session revisions: no sessions,
// request metadata in every request, one worker child per user.

// userTransport adds the identity header the gateway's plugin would set.
type userTransport struct{ user string }

func (u userTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-User-Id", u.user)
	return http.DefaultTransport.RoundTrip(r)
}

// gatewayTransport adds, as Traefik does, the identity header and the secret shared with streamproxy.
type gatewayTransport struct{ user, secret string }

func (g gatewayTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(transport.SecretHeader, g.secret)
	return userTransport{g.user}.RoundTrip(r)
}

// connect connects the official Go SDK client (v1.8.0: 2026-07-28 first) as a user.
func connect(t *testing.T, url, user string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: userTransport{user}}}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// accept answers every elicitation with the given content.
func accept(content map[string]any) *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: content}, nil
		},
		//lint:ignore SA1019 sampling is deprecated from 2026-07-28 on, and servers still ask for it: the bridge must carry it
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			//lint:ignore SA1019 as above: the answer a sampling client gives
			return &mcp.CreateMessageResult{Model: "test-model", Role: "assistant", Content: &mcp.TextContent{Text: "Paris"}}, nil
		},
	}
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// A child that speaks 2026-07-28 itself (the Go SDK's fixture) gets the client's requests as they are.
func TestStatelessClientStatelessChild(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	url := proxy(t, nil, fixture)
	cs := connect(t, url, "1001", accept(map[string]any{"name": "Ada"}))
	ctx := context.Background()
	require.Equal(t, "2026-07-28", cs.InitializeResult().ProtocolVersion, "the client speaks the current revision, not a fallback")

	tools, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	assert.NotEmpty(t, tools.Tools)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_simple_text"})
	require.NoError(t, err)
	assert.Contains(t, text(t, res), "This is a simple text response")
	read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://static-text"})
	require.NoError(t, err)
	require.Len(t, read.Contents, 1)
	assert.NotEmpty(t, read.Contents[0].Text)
	prompt, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "test_simple_prompt"})
	require.NoError(t, err)
	assert.NotEmpty(t, prompt.Messages)

	// A multi round-trip request: the fixture asks for input in an InputRequiredResult, the client retries with it.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "test_input_required_result_elicitation"})
	require.NoError(t, err)
	assert.Contains(t, text(t, res), "Ada")
}

// A child that speaks only the session revisions (server-everything on the TypeScript SDK) is bridged: the proxy
// initializes it, answers server/discover, and turns its elicitation and sampling requests into input requests.
func TestStatelessClientSessionChild(t *testing.T) {
	url := proxy(t, nil, everything(t)...)
	cs := connect(t, url, "1001", accept(map[string]any{"name": "Ada Lovelace", "check": true}))
	ctx := context.Background()
	require.Equal(t, "2026-07-28", cs.InitializeResult().ProtocolVersion)
	assert.Equal(t, "mcp-servers/everything", cs.InitializeResult().ServerInfo.Name, "discover names the child")

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "stateless"}})
	require.NoError(t, err)
	assert.Equal(t, "Echo: stateless", text(t, res))
	resources, err := cs.ListResources(ctx, nil)
	require.NoError(t, err)
	require.NotEmpty(t, resources.Resources)
	read, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: resources.Resources[0].URI})
	require.NoError(t, err)
	assert.NotEmpty(t, read.Contents)
	prompt, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "simple-prompt"})
	require.NoError(t, err)
	assert.NotEmpty(t, prompt.Messages)

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "trigger-elicitation-request"})
	require.NoError(t, err)
	assert.Contains(t, text(t, res), "Ada Lovelace", "the elicitation answer reached the server's tool")
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "trigger-sampling-request", Arguments: map[string]any{"prompt": "capital of France?"}})
	require.NoError(t, err)
	assert.Contains(t, text(t, res), "Paris", "the sampling answer reached the server's tool")
}

// A bridged child's request that the client did not declare the capability for fails the call clearly: no hang.
func TestBridgedInputWithoutCapability(t *testing.T) {
	url := proxy(t, nil, everything(t)...)
	call := statelessBody(2, "tools/call", map[string]any{"name": "trigger-elicitation-request", "arguments": map[string]any{}}, map[string]any{})
	r := postStateless(t, url, "1001", call)
	require.Equal(t, 200, r.status)
	last := r.messages[len(r.messages)-1]
	assert.EqualValues(t, 2, last["id"])
	body, _ := json.Marshal(last)
	assert.NotContains(t, string(body), "input_required")
	assert.Contains(t, string(body), "elicitation", "the error names what was missing: %s", body)
}

// The proxy gives every request a key of its own: two requests of one user with the same id are both answered.
func TestStatelessRequestIDsMayRepeat(t *testing.T) {
	url := proxy(t, nil, everything(t)...)
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("call %d", i)
			replies[i] = postStateless(t, url, "1001", statelessBody(1, "tools/call",
				map[string]any{"name": "echo", "arguments": map[string]any{"message": msg}}, map[string]any{}))
		}()
	}
	wg.Wait()
	for i, r := range replies {
		require.Equal(t, 200, r.status)
		got, _ := json.Marshal(r.messages)
		assert.Contains(t, string(got), fmt.Sprintf("Echo: call %d", i))
		assert.Contains(t, string(got), `"id":1`)
	}
}

// Each user's 2026-07-28 requests reach their own child: state persists across one user's requests and is invisible
// to another's.
func TestStatelessWorkersPerUser(t *testing.T) {
	server := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-memory", "dist", "index.js")
	dir := t.TempDir()
	script := fmt.Sprintf(`MEMORY_FILE_PATH=$(mktemp -p %s) exec node %s`, dir, server)
	url := proxy(t, []string{"--sandbox-allow-write", dir, "--sandbox-allow-read", testenv.NodeModules(t)}, "sh", "-c", script)
	ctx := context.Background()
	alice, bob := connect(t, url, "1", nil), connect(t, url, "2", nil)
	_, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "create_entities", Arguments: map[string]any{
		"entities": []map[string]any{{"name": "alice-secret", "entityType": "note", "observations": []string{"only for 1"}}}}})
	require.NoError(t, err)
	mine, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
	require.NoError(t, err)
	theirs, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
	require.NoError(t, err)
	assert.Contains(t, text(t, mine), "alice-secret", "a later request of the same user sees the state")
	assert.NotContains(t, text(t, theirs), "alice-secret", "another user's child never does")
}

// recorder is a 2026-07-28 stdio server that writes every line it reads to $LOG, answers server/discover at once
// and never answers tools/call: a call in flight until its client gives up.
const recorder = `while IFS= read -r line; do
  printf '%s\n' "$line" >> "$LOG"
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\("[^"]*"\).*/\1/p')
  case "$line" in
    *'"server/discover"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}}}}\n' "$id";;
  esac
done`

// Closing the response stream cancels the request: the child hears notifications/cancelled for it.
func TestStatelessCancellation(t *testing.T) {
	log := filepath.Join(t.TempDir(), "lines")
	url := proxy(t, []string{"--env", "LOG=" + log, "--sandbox-allow-write", filepath.Dir(log)}, "sh", "-c", recorder)
	// The user's worker runs before the call, so that the deadline falls while the call is in flight.
	require.Equal(t, 200, postStateless(t, url, "1001", statelessBody(1, "server/discover", nil, map[string]any{})).status)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	body := statelessBody(7, "tools/call", map[string]any{"name": "slow", "arguments": map[string]any{}}, map[string]any{})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	setStatelessHeaders(req, "1001", body)
	_, err = http.DefaultClient.Do(req)
	require.Error(t, err, "the call never ends by itself")
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), `"method":"notifications/cancelled"`)
	}, 10*time.Second, 50*time.Millisecond, "the child learns of the cancellation")
	b, _ := os.ReadFile(log)
	assert.NotContains(t, string(b), `"id":7`, "the child sees the proxy's key, never the client's id")
}

// The transport rules of 2026-07-28, checked by the proxy before anything reaches a child.
func TestStatelessTransportRules(t *testing.T) {
	url := proxy(t, nil, everything(t)...)
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(method, url, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("X-User-Id", "1001")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s without a session", method)
	}
	discover := statelessBody(1, "server/discover", nil, map[string]any{})
	for name, c := range map[string]struct {
		headers []string
		status  int
		code    float64
	}{
		"valid":                     {nil, 200, 0},
		"method header mismatch":    {[]string{"Mcp-Method", "tools/list"}, 400, -32020},
		"no version header":         {[]string{"MCP-Protocol-Version", ""}, 400, -32020},
		"version header mismatch":   {[]string{"MCP-Protocol-Version", "2025-11-25"}, 400, -32020},
		"a session id is ignored":   {[]string{"Mcp-Session-Id", "not-a-session"}, 200, 0},
		"foreign origin":            {[]string{"Origin", "http://evil.example.com"}, 403, 0},
		"last event id is ignored":  {[]string{"Last-Event-ID", "5"}, 200, 0},
		"loopback origin (browser)": {[]string{"Origin", "http://localhost:6274"}, 200, 0},
	} {
		t.Run(name, func(t *testing.T) {
			r := postStateless(t, url, "1001", discover, c.headers...)
			assert.Equal(t, c.status, r.status)
			assert.Empty(t, r.header.Get("Mcp-Session-Id"), "no session is ever minted for 2026-07-28")
			if c.code != 0 {
				require.Len(t, r.messages, 1)
				assert.Equal(t, c.code, r.messages[0]["error"].(map[string]any)["code"])
			}
		})
	}
	r := postStateless(t, url, "1001", statelessBody(2, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "x"}}, map[string]any{}),
		"Mcp-Name", "get-sum")
	assert.Equal(t, 400, r.status, "Mcp-Name must match params.name")
	r = postStateless(t, url, "1001", statelessBody(3, "ping", nil, map[string]any{}))
	assert.Equal(t, 404, r.status, "ping is gone in 2026-07-28")
	assert.EqualValues(t, -32601, r.messages[0]["error"].(map[string]any)["code"])
	unsupported := strings.ReplaceAll(discover, "2026-07-28", "2099-01-01")
	r = postStateless(t, url, "1001", unsupported, "MCP-Protocol-Version", "2099-01-01")
	assert.Equal(t, 400, r.status)
	e := r.messages[0]["error"].(map[string]any)
	assert.EqualValues(t, -32022, e["code"])
	assert.Equal(t, []any{"2026-07-28"}, e["data"].(map[string]any)["supported"])

	// The session revisions keep working on the same endpoint.
	sid := open(t, url)
	assert.Equal(t, 200, post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`).status)
}

// statelessBody is a 2026-07-28 request with its request metadata.
func statelessBody(id int, method string, params map[string]any, caps map[string]any) string {
	if params == nil {
		params = map[string]any{}
	}
	params["_meta"] = map[string]any{"io.modelcontextprotocol/protocolVersion": "2026-07-28",
		"io.modelcontextprotocol/clientCapabilities": caps}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	return string(b)
}

// setStatelessHeaders sets the headers a 2026-07-28 client mirrors from the body.
func setStatelessHeaders(req *http.Request, user, body string) {
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
			URI  string `json:"uri"`
		} `json:"params"`
	}
	_ = json.Unmarshal([]byte(body), &msg)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", msg.Method)
	if name := msg.Params.Name + msg.Params.URI; name != "" {
		req.Header.Set("Mcp-Name", name)
	}
	req.Header.Set("X-User-Id", user)
}

// postStateless posts a 2026-07-28 request; headers override (an empty value removes one).
func postStateless(t *testing.T, url, user, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	setStatelessHeaders(req, user, body)
	flat := []string{}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		flat = append(flat, headers[i], headers[i+1])
	}
	return send(t, req, flat...)
}

// Replicas behind any load balancer: each user belongs to one replica, which the others pass the user's requests
// to, so a user's state is found whichever replica a request lands on.
func TestReplicasShareUsers(t *testing.T) {
	server := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-memory", "dist", "index.js")
	dir := t.TempDir()
	script := fmt.Sprintf(`MEMORY_FILE_PATH=$(mktemp -p %s) exec node %s`, dir, server)
	const secret = "shared-by-the-gateway-and-replicas"
	t.Setenv("STREAMPROXY_SECRET", secret)
	ports := []int{testenv.FreePort(t), testenv.FreePort(t)}
	peers := []string{testenv.URL(ports[0], ""), testenv.URL(ports[1], "")}
	urls := make([]string, 2)
	for i, port := range ports {
		urls[i], _ = proxyAt(t, port, []string{"--peers", strings.Join(peers, ","), "--self", peers[i], "--sandbox-allow-write", dir,
			"--sandbox-allow-read", testenv.NodeModules(t)},
			"sh", "-c", script)
	}
	// Two users that belong to different replicas.
	users := []string{"1"}
	for n := 2; len(users) < 2; n++ {
		if u := fmt.Sprint(n); affinity.Owner(peers, u) != affinity.Owner(peers, users[0]) {
			users = append(users, u)
		}
	}
	ctx := context.Background()
	connectThrough := func(url, user string) *mcp.ClientSession {
		client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url,
			HTTPClient: &http.Client{Transport: gatewayTransport{user, secret}}}, nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = cs.Close() })
		return cs
	}
	for _, user := range users {
		writer, reader := connectThrough(urls[0], user), connectThrough(urls[1], user)
		entity := "note-of-" + user
		_, err := writer.CallTool(ctx, &mcp.CallToolParams{Name: "create_entities", Arguments: map[string]any{
			"entities": []map[string]any{{"name": entity, "entityType": "note", "observations": []string{"x"}}}}})
		require.NoError(t, err)
		got, err := reader.CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
		require.NoError(t, err)
		assert.Contains(t, text(t, got), entity, "user %s: written through one replica, read through the other", user)
		// The session revisions too: a session opened on one replica is found through the other.
		sid := open(t, urls[0], "X-User-Id", user, transport.SecretHeader, secret)
		assert.Equal(t, 200, post(t, urls[1], sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, "X-User-Id", user, transport.SecretHeader, secret).status)
	}
}

// Only a replica passes a request on, and only for a caller that came through the gateway: the secret is checked
// before any routing, and a request marked as forwarded without a replica's proof is refused, so a caller can
// neither pick the replica that serves it nor send traffic through one replica to another.
func TestReplicaForwardingIsAuthenticated(t *testing.T) {
	const secret = "shared-by-the-gateway-and-replicas"
	port := testenv.FreePort(t)
	self, gone := testenv.URL(port, ""), testenv.URL(testenv.FreePort(t), "") // the second replica is down
	url, _ := proxyAt(t, port, []string{"--secret", secret, "--peers", self + "," + gone, "--self", self}, everything(t)...)
	user := "1"
	for n := 2; affinity.Owner([]string{self, gone}, user) != gone; n++ {
		user = fmt.Sprint(n)
	}
	assert.Equal(t, 403, post(t, url, "", initBody, "X-User-Id", user).status, "no secret: refused here, not passed on")
	assert.Equal(t, 502, post(t, url, "", initBody, "X-User-Id", user, transport.SecretHeader, secret).status,
		"through the gateway: passed on to the replica the user belongs to")
	assert.Equal(t, 403, post(t, url, "", initBody, "X-User-Id", user, transport.SecretHeader, secret,
		affinity.ForwardedHeader, gone).status, "a caller cannot claim to be a replica to be served here")
	assert.Equal(t, 200, post(t, url, "", initBody, "X-User-Id", user, transport.SecretHeader, secret,
		affinity.ForwardedHeader, affinity.Proof(secret, user, time.Now())).status, "a replica's hop is served")

	bin := testenv.BuildBinary(t, "./streamproxy")
	out, err := exec.Command(bin, "--peers", self+","+gone, "--self", self, "--", "true").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "--peers needs --secret")
}

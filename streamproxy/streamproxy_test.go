package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// proxy runs the streamproxy binary in front of a stdio MCP server and returns the MCP endpoint's URL.
func proxy(t *testing.T, flags []string, command ...string) string {
	url, _ := proxyWithMetrics(t, flags, command...)
	return url
}

// proxyWithMetrics also returns the URL of its Prometheus metrics.
func proxyWithMetrics(t *testing.T, flags []string, command ...string) (string, string) {
	t.Helper()
	return proxyAt(t, testenv.FreePort(t), flags, command...)
}

// proxyAt runs streamproxy on a given port.
func proxyAt(t *testing.T, port int, flags []string, command ...string) (string, string) {
	t.Helper()
	_, url, metrics := proxyProcess(t, port, flags, command...)
	return url, metrics
}

// proxyProcess is proxyAt that also returns the process, whose log carries the MCP server's stderr.
func proxyProcess(t *testing.T, port int, flags []string, command ...string) (*testenv.Process, string, string) {
	t.Helper()
	bin := testenv.BuildBinary(t, "./streamproxy")
	metricsPort := testenv.FreePort(t)
	args := append([]string{"--listen", "127.0.0.1:" + strconv.Itoa(port),
		"--metrics-listen", "127.0.0.1:" + strconv.Itoa(metricsPort)}, flags...)
	args = append(append(args, "--"), command...)
	p := testenv.Start(t, "streamproxy", exec.Command(bin, args...))
	p.WaitLine(t, "streamproxy listening", 10*time.Second)
	return p, testenv.URL(port, "/mcp"), testenv.URL(metricsPort, "/metrics")
}

// metric reads one sample from a metrics endpoint: the line that starts with series, e.g.
// `streamproxy_children_exited_total{how="crashed"}`; -1 when absent.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return -1
}

func everything(t *testing.T) []string {
	return []string{"node", filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-everything", "dist", "index.js")}
}

// rpc posts one JSON-RPC message and returns the response, decoding an SSE answer into its messages.
type reply struct {
	status   int
	header   http.Header
	messages []map[string]any // JSON body, or each SSE event's data
	sse      bool
}

func post(t *testing.T, url, session string, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
	}
	return send(t, req, headers...)
}

// testUser is the identity the gateway would pass on, unless a test names another.
const testUser = "4242"

// send sends a request with extra headers (name, value, ...; an empty value removes the header) and decodes the
// answer.
func send(t *testing.T, req *http.Request, headers ...string) reply {
	t.Helper()
	if req.Header.Get("X-User-Id") == "" {
		req.Header.Set("X-User-Id", testUser)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, header: resp.Header}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		r.sse = true
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				require.NoError(t, json.Unmarshal([]byte(data), &m))
				r.messages = append(r.messages, m)
			}
		}
	} else if len(bytes.TrimSpace(raw)) > 0 {
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m), "body: %s", raw)
		r.messages = append(r.messages, m)
	}
	return r
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`

// open initializes a session and returns its id.
func open(t *testing.T, url string, headers ...string) string {
	t.Helper()
	r := post(t, url, "", initBody, headers...)
	require.Equal(t, http.StatusOK, r.status)
	sid := r.header.Get("Mcp-Session-Id")
	require.NotEmpty(t, sid)
	require.Equal(t, http.StatusAccepted, post(t, url, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, headers...).status)
	return sid
}

func TestToolsThroughTheGoSDKClient(t *testing.T) {
	url := proxy(t, []string{"--user-header", ""}, everything(t)...)
	ctx := context.Background()
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, nil)
	require.NoError(t, err)
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	names := []string{}
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	assert.Contains(t, names, "echo")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}})
	require.NoError(t, err)
	require.Len(t, res.Content, 1)
	assert.Equal(t, "Echo: hello", res.Content[0].(*mcp.TextContent).Text)
}

func TestSessionLifecycleAndErrors(t *testing.T) {
	url := proxy(t, []string{"--max-sessions", "2"}, everything(t)...)
	sid := open(t, url)
	assert.Regexp(t, `^[\x21-\x7e]{16,}$`, sid, "session ids are long visible ASCII")

	// Progress before the result turns the answer into an SSE stream, carrying the client's own ids.
	r := post(t, url, sid, `{"jsonrpc":"2.0","id":"call-7","method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":1,"steps":2},"_meta":{"progressToken":"tok"}}}`)
	require.Equal(t, http.StatusOK, r.status)
	require.True(t, r.sse, "progress is streamed")
	require.Len(t, r.messages, 3, "two progress notifications, then the result: %v", r.messages)
	assert.Equal(t, "notifications/progress", r.messages[0]["method"])
	assert.Equal(t, "notifications/progress", r.messages[1]["method"])
	assert.Equal(t, "call-7", r.messages[2]["id"])
	assert.NotNil(t, r.messages[2]["result"])

	for name, c := range map[string]struct {
		session, body string
		headers       []string
		status        int
	}{
		"no Accept for SSE":       {sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, []string{"Accept", "application/json"}, 406},
		"not JSON":                {sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, []string{"Content-Type", "text/plain"}, 415},
		"malformed JSON":          {sid, `{"jsonrpc":`, nil, 400},
		"batch":                   {sid, `[{"jsonrpc":"2.0","id":2,"method":"ping"}]`, nil, 400},
		"no session":              {"", `{"jsonrpc":"2.0","id":2,"method":"ping"}`, nil, 400},
		"unknown session":         {"nope", `{"jsonrpc":"2.0","id":2,"method":"ping"}`, nil, 404},
		"unsupported version":     {sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, []string{"MCP-Protocol-Version", "1999-01-01"}, 400},
		"foreign origin":          {sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, []string{"Origin", "http://evil.example.com"}, 403},
		"initialize with session": {sid, initBody, nil, 400},
	} {
		t.Run(name, func(t *testing.T) {
			got := post(t, url, c.session, c.body, c.headers...)
			assert.Equal(t, c.status, got.status)
		})
	}
	assert.Equal(t, 200, post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, "Origin", "http://localhost:6274").status,
		"a loopback origin (MCP Inspector) is allowed")

	// Max sessions: the second fits, the third gets 503 with Retry-After.
	open(t, url)
	full := post(t, url, "", initBody)
	assert.Equal(t, http.StatusServiceUnavailable, full.status)
	assert.NotEmpty(t, full.header.Get("Retry-After"))

	// DELETE ends the session; later requests get 404 and a slot is free again.
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("X-User-Id", testUser)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, http.StatusNotFound, post(t, url, sid, `{"jsonrpc":"2.0","id":3,"method":"ping"}`).status)
	open(t, url)
}

func TestSessionsAreBoundToTheirUser(t *testing.T) {
	url := proxy(t, nil, everything(t)...)
	sid := open(t, url, "X-User-Id", "1001")
	ping := `{"jsonrpc":"2.0","id":2,"method":"ping"}`
	assert.Equal(t, 200, post(t, url, sid, ping, "X-User-Id", "1001").status)
	assert.Equal(t, 404, post(t, url, sid, ping, "X-User-Id", "1002").status, "another user's session does not exist for them")
	assert.Equal(t, 403, post(t, url, sid, ping, "X-User-Id", "").status, "a request without identity is refused")
	assert.Equal(t, 403, post(t, url, "", initBody, "X-User-Id", "").status, "and opens no session")
}

// A child that dies ends its session: the request in flight gets a JSON-RPC error, later ones 404, others go on.
func TestCrashingChild(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	// The wrapper answers like the fixture until it reads a line containing "crash-now", then exits.
	script := `while IFS= read -r line; do case "$line" in *crash-now*) exit 3;; esac; printf '%s\n' "$line"; done | ` + fixture
	url, metrics := proxyWithMetrics(t, []string{"--sandbox-allow-read", fixture}, "sh", "-c", script)
	healthy := open(t, url)
	doomed := open(t, url)
	r := post(t, url, doomed, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"crash-now"}}`)
	// The pipe's writer exits at once, so the fixture sees EOF and exits: the session ends either before the
	// request is answered (error response) or right after (404).
	if r.status == 200 {
		require.Len(t, r.messages, 1)
		assert.NotNil(t, r.messages[0]["error"])
	} else {
		assert.Equal(t, 404, r.status)
	}
	require.Eventually(t, func() bool {
		return post(t, url, doomed, `{"jsonrpc":"2.0","id":10,"method":"ping"}`).status == 404
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, 200, post(t, url, healthy, `{"jsonrpc":"2.0","id":11,"method":"ping"}`).status)
	require.Eventually(t, func() bool {
		return metric(t, metrics, `streamproxy_children_exited_total{how="crashed"}`) == 1
	}, 10*time.Second, 50*time.Millisecond, "the crash is counted")
	assert.Equal(t, 2.0, metric(t, metrics, "streamproxy_children_started_total"))
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_children_running"))
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_sessions_active"))
}

// notifier is a minimal stdio MCP server: it answers initialize and ping, and after each ping sends two
// notifications that belong to no request, so they travel on the standalone (GET) stream.
const notifier = `while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"resources":{"subscribe":true}},"serverInfo":{"name":"notifier","version":"1"}}}\n' "$id";;
    *'"ping"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id"
      printf '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///a"}}\n'
      printf '{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///b"}}\n';;
  esac
done`

// Server-initiated messages go to the GET stream, numbered; a client that reconnects with Last-Event-ID gets what
// it missed.
func TestStandaloneStreamAndResumption(t *testing.T) {
	url := proxy(t, nil, "sh", "-c", notifier)
	sid := open(t, url)

	events, stop := stream(t, url, sid, "")
	require.Equal(t, 200, post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`).status)
	first := <-events
	assert.Contains(t, first.data, "file:///a")
	stop() // the client drops the stream after one event and misses the second

	// After reconnecting, the missed event is replayed.
	events, stop = stream(t, url, sid, first.id)
	defer stop()
	missed := <-events
	assert.Contains(t, missed.data, "file:///b")
	n0, _ := strconv.Atoi(first.id)
	n1, _ := strconv.Atoi(missed.id)
	assert.Equal(t, n0+1, n1, "resumption starts right after the last event the client saw")

	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("X-User-Id", testUser)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusConflict, resp.StatusCode, "one standalone stream per session")
}

type sseEvent struct{ id, data string }

// stream opens the GET stream and returns its events; it returns once the stream is open.
func stream(t *testing.T, url, sid, lastEventID string) (<-chan sseEvent, func()) {
	t.Helper()
	return streamOf(t, url, sid, lastEventID, testUser)
}

// streamOf is stream for the session of another user.
func streamOf(t *testing.T, url, sid, lastEventID, user string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("X-User-Id", user)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	// A stream the client just dropped may not have been noticed by the proxy yet (409): try again briefly.
	var resp *http.Response
	require.Eventually(t, func() bool {
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		if r.StatusCode == http.StatusConflict {
			r.Body.Close()
			return false
		}
		resp = r
		return true
	}, 5*time.Second, 50*time.Millisecond)
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "no", resp.Header.Get("X-Accel-Buffering"))
	events := make(chan sseEvent, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		var cur sseEvent
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "data: "):
				cur.data = line[6:]
			case line == "" && cur.data != "":
				events <- cur
				cur = sseEvent{}
			}
		}
	}()
	return events, func() {
		cancel()
		<-done
	}
}

// The official conformance suites' server scenarios, on the Go SDK's fixture server behind streamproxy: the
// released suite (2025-11-25, all 30 scenarios), and the prerelease's required sets of both generations on the one
// endpoint: 2026-07-28 (37 scenarios, the stateless path) and 2025-11-25.
func TestConformance(t *testing.T) {
	conformance(t)
}

// conformance runs the suites against the Go SDK's fixture behind streamproxy run with flags.
func conformance(t *testing.T, flags ...string) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	// The suite sends no identity: binding is off, as for a server run without the gateway.
	url := strings.Replace(proxy(t, append([]string{"--user-header", ""}, flags...), fixture), "127.0.0.1", "localhost", 1) // dns-rebinding-protection needs localhost

	latest := testenv.RunConformance(t, testenv.ConformanceLatest, url, "")
	require.NoError(t, latest.Err, "conformance suite failed:\n%s", latest.Summary)
	assert.Regexp(t, `Total: \d+ passed, 0 failed`, latest.Summary)
	assert.GreaterOrEqual(t, len(latest.Passed), 30, "every server scenario ran:\n%s", latest.Summary)

	stateless := testenv.RunConformance(t, testenv.ConformanceAlpha, url, "", "--requirements", "2026-07-28")
	assert.Empty(t, stateless.Failed(testenv.Required2026), "2026-07-28 required scenarios:\n%s", stateless.Summary)
	assert.NoError(t, stateless.Err, "%s", stateless.Summary)

	sessions := testenv.RunConformance(t, testenv.ConformanceAlpha, url, "", "--requirements", "2025-11-25")
	assert.NoError(t, sessions.Err, "2025-11-25 required scenarios:\n%s", sessions.Summary)
	assert.GreaterOrEqual(t, len(sessions.Passed), 30, "%s", sessions.Summary)
	for name, ok := range sessions.Passed {
		assert.True(t, ok, "%s failed:\n%s", name, sessions.Summary)
	}
}

// The TypeScript SDK's client connects through streamproxy and calls a tool.
func TestTypeScriptClient(t *testing.T) {
	url := proxy(t, []string{"--user-header", ""}, everything(t)...)
	script := filepath.Join(testenv.RepoRoot(t), "testdata", "node", "streamproxy-client.mjs")
	cmd := exec.Command(testenv.NodeBin(t), script, url)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "Echo: from the TypeScript SDK")
}

// An idle session ends by itself and frees its slot.
func TestIdleSessionsEnd(t *testing.T) {
	url, metrics := proxyWithMetrics(t, []string{"--idle-timeout", "1s", "--max-sessions", "1"}, "sh", "-c", notifier)
	sid := open(t, url)
	assert.Equal(t, http.StatusServiceUnavailable, post(t, url, "", initBody).status, "one session at most")
	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_sessions_refused_total{reason="limit"}`))
	require.Eventually(t, func() bool {
		return post(t, url, "", initBody).status == http.StatusOK
	}, 10*time.Second, 200*time.Millisecond, "the idle session's slot is free again")
	assert.Equal(t, http.StatusNotFound, post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`).status)
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_sessions_expired_total"))
	assert.Equal(t, 0.0, metric(t, metrics, `streamproxy_children_exited_total{how="crashed"}`), "an idle end is not a crash")
}

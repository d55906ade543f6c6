package mcpclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeServer answers initialize as JSON with a session id, and tools/call as an SSE stream with a progress
// notification before the response, as streaming servers do.
func fakeServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var notified atomic.Int32
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Arguments map[string]string `json:"arguments"`
			} `json:"params"`
		}
		b, _ := io.ReadAll(r.Body)
		assert.NoError(t, json.Unmarshal(b, &m)) // not require: this runs on the server goroutine
		switch m.Method {
		case "initialize":
			w.Header().Set("Mcp-Session-Id", "s1")
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-06-18"}}`, m.ID)
		case "notifications/initialized":
			if r.Header.Get("Mcp-Session-Id") == "s1" && r.Header.Get("Mcp-Protocol-Version") == "2025-06-18" {
				notified.Add(1)
			}
			w.WriteHeader(http.StatusAccepted)
		case "tools/call":
			if r.Header.Get("Mcp-Session-Id") != "s1" {
				http.Error(w, "no session", http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n")
			fmt.Fprintf(w, "id: 2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"Echo: %s\"}]}}\n\n",
				m.ID, m.Params.Arguments["message"])
		}
	})), &notified
}

func TestHTTPSessionJSONAndSSE(t *testing.T) {
	srv, notified := fakeServer(t)
	defer srv.Close()
	c := &HTTPClient{URL: srv.URL, HTTP: srv.Client()}
	s, err := c.Open(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 1, notified.Load(), "initialized notification sent with the session and version")
	assert.Positive(t, InitTime(s))
	require.NoError(t, Echo(context.Background(), s, "hello"))
}

func TestEchoChecksTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"something else"}]}}`, m.ID)
	}))
	defer srv.Close()
	s := &httpSession{c: &HTTPClient{URL: srv.URL, HTTP: srv.Client()}}
	require.Error(t, Echo(context.Background(), s, "hello"))
}

// statelessServer checks every 2026-07-28 request as streamproxy does (the _meta and the headers that mirror the
// body, no session), answers server/discover and tools/call (echo) as JSON, and records the users it saw per method
// and any DELETE.
type statelessServer struct {
	t       *testing.T
	mu      sync.Mutex
	users   map[string][]string // method -> X-User-Id of each request
	deletes int
}

func (m *statelessServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodDelete {
		m.mu.Lock()
		m.deletes++
		m.mu.Unlock()
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Meta      map[string]json.RawMessage `json:"_meta"`
			Name      string                     `json:"name"`
			Arguments map[string]string          `json:"arguments"`
		} `json:"params"`
	}
	b, _ := io.ReadAll(r.Body)
	if !assert.NoError(m.t, json.Unmarshal(b, &msg)) {
		return
	}
	// The checks of streamproxy's checkStateless and checkStandardHeaders.
	assert.Empty(m.t, r.Header.Get("Mcp-Session-Id"), "no session in 2026-07-28")
	assert.Equal(m.t, []string{"2026-07-28"}, r.Header.Values("Mcp-Protocol-Version"))
	assert.JSONEq(m.t, `"2026-07-28"`, string(msg.Params.Meta["io.modelcontextprotocol/protocolVersion"]))
	assert.JSONEq(m.t, `{}`, string(msg.Params.Meta["io.modelcontextprotocol/clientCapabilities"]))
	assert.Equal(m.t, []string{msg.Method}, r.Header.Values("Mcp-Method"))
	if msg.Method == "tools/call" {
		assert.Equal(m.t, []string{msg.Params.Name}, r.Header.Values("Mcp-Name"))
	} else {
		assert.Empty(m.t, r.Header.Values("Mcp-Name"))
	}
	m.mu.Lock()
	m.users[msg.Method] = append(m.users[msg.Method], r.Header.Get("X-User-Id"))
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch msg.Method {
	case "server/discover":
		assert.Contains(m.t, string(msg.Params.Meta["io.modelcontextprotocol/clientInfo"]), "gateway-bench")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}}}}`, msg.ID)
	case "tools/call":
		if msg.Params.Name == "ask" {
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"resultType":"input_required","inputRequests":{},"requestState":"x"}}`, msg.ID)
			return
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","content":[{"type":"text","text":"Echo: %s"}]}}`,
			msg.ID, msg.Params.Arguments["message"])
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"unknown method"}}`, msg.ID)
	}
}

func TestStatelessSessionsAreDistinctUsers(t *testing.T) {
	fake := &statelessServer{t: t, users: map[string][]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c := &HTTPClient{URL: srv.URL, HTTP: srv.Client(), Stateless: true, UserHeader: "X-User-Id",
		Header: http.Header{"Authorization": {"Bearer t"}}}
	ctx := context.Background()
	var sessions []Session
	for range 3 {
		s, err := c.Open(ctx)
		require.NoError(t, err)
		assert.Positive(t, InitTime(s), "server/discover is the session's start")
		sessions = append(sessions, s)
	}
	for i, s := range sessions {
		require.NoError(t, Echo(ctx, s, fmt.Sprintf("hello %d", i)))
		require.NoError(t, Echo(ctx, s, "again"))
		require.NoError(t, s.Close())
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	assert.Equal(t, []string{"bench-user-1", "bench-user-2", "bench-user-3"}, fake.users["server/discover"], "one user per session")
	assert.Equal(t, []string{"bench-user-1", "bench-user-1", "bench-user-2", "bench-user-2", "bench-user-3", "bench-user-3"},
		fake.users["tools/call"], "each session keeps its user")
	assert.NotContains(t, fake.users, "initialize")
	assert.NotContains(t, fake.users, "notifications/initialized")
	assert.Zero(t, fake.deletes, "Close sends nothing for 2026-07-28")
}

func TestStatelessCallErrors(t *testing.T) {
	fake := &statelessServer{t: t, users: map[string][]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	s, err := (&HTTPClient{URL: srv.URL, HTTP: srv.Client(), Stateless: true}).Open(context.Background())
	require.NoError(t, err)
	_, err = CallTool(context.Background(), s, "ask", nil)
	require.ErrorContains(t, err, "input_required", "a result that is not complete is not a successful call")
	_, err = s.Call(context.Background(), "nope", nil)
	require.ErrorContains(t, err, "HTTP 404")
	assert.Equal(t, []string{""}, fake.users["tools/call"], "no user header unless asked for")
}

func TestStatelessOpenNeedsTheVersion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&m)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"resultType":"complete","supportedVersions":["2027-01-01"]}}`, m.ID)
	}))
	defer srv.Close()
	_, err := (&HTTPClient{URL: srv.URL, HTTP: srv.Client(), Stateless: true}).Open(context.Background())
	require.ErrorContains(t, err, "does not support 2026-07-28")
}

func TestWithStatelessMeta(t *testing.T) {
	p, name := withStatelessMeta(map[string]any{"uri": "test://x", "_meta": map[string]any{"progressToken": 7}})
	assert.Equal(t, "test://x", name)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.JSONEq(t, `{"uri":"test://x","_meta":{"progressToken":7,"io.modelcontextprotocol/protocolVersion":"2026-07-28",
		"io.modelcontextprotocol/clientCapabilities":{}}}`, string(b))

	orig := map[string]any{"name": "echo"}
	_, name = withStatelessMeta(orig)
	assert.Equal(t, "echo", name)
	assert.NotContains(t, orig, "_meta", "the caller's map is not changed")

	p, _ = withStatelessMeta(struct {
		Name string `json:"name"`
	}{"s"})
	b, err = json.Marshal(p)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"io.modelcontextprotocol/protocolVersion":"2026-07-28"`)

	assert.Equal(t, "echo", headerValue("echo"))
	assert.Equal(t, "=?base64?w6ljaG8=?=", headerValue("écho"))
	assert.Equal(t, "=?base64?IGVjaG8=?=", headerValue(" echo"))
}

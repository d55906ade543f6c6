package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openStream starts a request whose answer is a stream and returns its status once the headers are in; the stream
// stays open until the test ends.
func openStream(t *testing.T, req *http.Request) (int, http.Header) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp.StatusCode, resp.Header
}

func listenRequest(t *testing.T, url, user string) *http.Request {
	body := statelessBody(1, "subscriptions/listen", map[string]any{"notifications": map[string]any{"toolsListChanged": true}}, map[string]any{})
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	setStatelessHeaders(req, user, body)
	return req
}

// One user cannot hold more than their share of streams and requests in flight (one user held 2,000 listen
// streams on the one process --max-per-user 1 gave them): beyond it 429 with Retry-After, while other users go on.
func TestLimitsPerUser(t *testing.T) {
	log := filepath.Join(t.TempDir(), "lines")
	url, metrics := proxyWithMetrics(t, []string{"--env", "LOG=" + log, "--sandbox-allow-write", filepath.Dir(log), "--max-per-user", "1",
		"--max-streams-per-user", "2", "--max-calls-per-user", "1"}, "sh", "-c", recorder)
	alice, bob := "1000001", "1000002"

	for range 2 {
		status, _ := openStream(t, listenRequest(t, url, alice))
		require.Equal(t, http.StatusOK, status)
	}
	status, header := openStream(t, listenRequest(t, url, alice))
	assert.Equal(t, http.StatusTooManyRequests, status, "a third listen stream")
	assert.NotEmpty(t, header.Get("Retry-After"))
	status, _ = openStream(t, listenRequest(t, url, bob))
	assert.Equal(t, http.StatusOK, status, "another user is not affected")

	// The recorder answers nothing but server/discover: the request stays in flight.
	call := statelessBody(2, "prompts/get", map[string]any{"name": "slow"}, map[string]any{})
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(call))
	setStatelessHeaders(req, alice, call)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if resp, err := http.DefaultClient.Do(req.WithContext(ctx)); err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), `"name":"slow"`)
	}, 10*time.Second, 50*time.Millisecond, "the call reached the child")
	discover := statelessBody(3, "server/discover", nil, map[string]any{})
	r := postStateless(t, url, alice, discover)
	assert.Equal(t, http.StatusTooManyRequests, r.status, "a second request in flight")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	assert.EqualValues(t, 3, r.messages[0]["id"], "answered as a JSON-RPC error of that request")
	assert.Equal(t, http.StatusOK, postStateless(t, url, bob, discover).status, "another user is not affected")
	cancel()
	require.Eventually(t, func() bool { return postStateless(t, url, alice, discover).status == http.StatusOK },
		10*time.Second, 50*time.Millisecond, "the user's share comes back when the call ends")

	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_requests_limited_total{limit="user_streams"}`))
	assert.GreaterOrEqual(t, metric(t, metrics, `streamproxy_requests_limited_total{limit="user_calls"}`), 1.0)
}

// The sessions' GET streams count among the user's streams.
func TestSessionStreamsPerUser(t *testing.T) {
	url := proxy(t, []string{"--max-streams-per-user", "1"}, "sh", "-c", notifier)
	first, second := open(t, url), open(t, url)
	_, stop := stream(t, url, first, "")
	defer stop()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Mcp-Session-Id", second)
	req.Header.Set("X-User-Id", testUser)
	status, header := openStream(t, req)
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.NotEmpty(t, header.Get("Retry-After"))
}

// A client has --read-timeout to send its request and a connection without requests is closed after
// --conn-idle-timeout; what follows a request (a stream, a long call) is not bounded by either.
func TestServerTimeouts(t *testing.T) {
	url := proxy(t, []string{"--read-timeout", "1s", "--conn-idle-timeout", "1s"}, "sh", "-c", notifier)
	addr := strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/mcp")
	// ended reports whether the server ended the exchange (an answer or a closed connection) before the client's
	// own, much longer, deadline.
	ended := func(conn net.Conn) bool {
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		_, err := io.ReadAll(conn)
		var ne net.Error
		return !(errors.As(err, &ne) && ne.Timeout())
	}

	slow, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer slow.Close()
	_, err = io.WriteString(slow, "POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Accept: application/json, text/event-stream\r\nX-User-Id: 1\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":")
	require.NoError(t, err)
	assert.True(t, ended(slow), "an unfinished body is cut off")

	idle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer idle.Close()
	_, err = io.WriteString(idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, ended(idle), "an idle connection is closed")

	// A stream opened before the timeouts outlives them.
	sid := open(t, url)
	events, stop := stream(t, url, sid, "")
	defer stop()
	time.Sleep(2500 * time.Millisecond) // past both timeouts
	require.Equal(t, http.StatusOK, post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`).status)
	select {
	case e := <-events:
		assert.Contains(t, e.data, "notifications/resources/updated")
	case <-time.After(20 * time.Second):
		t.Fatal("the stream ended with the read timeout")
	}
}

// A client that gives up on its initialize before the answer (a slow start, its own timeout) leaves no process
// behind: it is ended at once, rather than kept idle until --idle-timeout while each retry starts one more.
func TestAbandonedInitializeLeavesNoProcess(t *testing.T) {
	slow := append([]string{"sh", "-c", `sleep 3; exec "$0" "$@"`}, everything(t)...)
	url, metrics := proxyWithMetrics(t, []string{"--user-header", "", "--sandbox", "off"}, slow...)
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},` +
		`"clientInfo":{"name":"impatient","version":"1"}}}`
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		_, err = http.DefaultClient.Do(req)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "the server takes 3 s to start")
	}
	require.Eventually(t, func() bool { return metric(t, metrics, "streamproxy_children_running") == 0 }, 10*time.Second, 50*time.Millisecond,
		"the abandoned sessions' processes end")
}

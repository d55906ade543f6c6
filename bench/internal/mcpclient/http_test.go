package mcpclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

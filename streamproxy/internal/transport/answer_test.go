package transport

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// A JSON answer reaches the client while the handler still runs: what comes after it (the operation's span and audit
// event, the access log of a wrapper) is not on the client's wait. The wrapper here holds the handler until the
// client has read the whole answer; an answer left in the server's buffer until the handler returns never arrives.
func TestTheAnswerGoesBeforeTheBookkeeping(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	h := New(testConfig(fixture))
	t.Cleanup(h.Close)
	held := make(chan chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if read := <-held; read != nil {
			select {
			case <-read:
			case <-time.After(10 * time.Second):
				t.Error("the client had no answer while the handler ran")
			}
		}
	}))
	t.Cleanup(srv.Close)
	post := func(body string, header map[string]string, hold bool) *http.Response {
		t.Helper()
		read := make(chan struct{})
		if hold {
			held <- read
		} else {
			held <- nil
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("X-User-Id", "1")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		close(read)
		if err != nil || !strings.Contains(string(b), `"result"`) {
			t.Fatalf("answer %s, %v", b, err)
		}
		return resp
	}
	init := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`, nil, false)
	session := map[string]string{"Mcp-Session-Id": init.Header.Get("Mcp-Session-Id"), "MCP-Protocol-Version": "2025-11-25"}
	post(strings.Replace(simpleCall, "%s", "", 1), session, true)
	stateless := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "test_simple_text"}
	post(strings.Replace(simpleCall, "%s", `,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}`, 1), stateless, true)
}

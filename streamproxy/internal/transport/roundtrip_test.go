package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Each elicitation and sampling round trip (server-everything asks the client from inside a tools/call) is an
// audit event of its own, with the user's action or the result, the time the client took and who answered; the
// question and the answer never appear. Sessions on a process of their own and on shared processes alike.
func TestRoundTripsAudited(t *testing.T) {
	t.Run("own process", func(t *testing.T) { testRoundTripsAudited(t, 0) })
	t.Run("shared processes", func(t *testing.T) { testRoundTripsAudited(t, 1) })
}

func testRoundTripsAudited(t *testing.T, share int) {
	script := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-everything", "dist", "index.js")
	var out testenv.SyncBuffer
	trail := audit.New(&out, nil, audit.Options{Service: "streamproxy", Log: slog.New(slog.DiscardHandler)})
	cfg := auditedConfig(trail, "everything", testenv.NodeBin(t), script)
	cfg.Share = share
	h := New(cfg)
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	postCtx := func(ctx context.Context, sid, body string) *http.Response {
		t.Helper()
		return sendAs(ctx, t, srv, http.MethodPost, sid, body)
	}
	post := func(sid, body string) *http.Response { t.Helper(); return postCtx(t.Context(), sid, body) }
	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
		`"capabilities":{"elicitation":{},"sampling":{}},"clientInfo":{"name":"t","version":"1"}}}`)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("no session: %d", resp.StatusCode)
	}
	post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`).Body.Close()

	// roundTrip calls tool, answers the one request the server sends with answer (its id filled in), and
	// returns the request's id once the tool's result came; with no answer, the client goes away once asked.
	roundTrip := func(id int, tool, args, method, answer string) string {
		t.Helper()
		ctx, leave := context.WithCancel(t.Context())
		defer leave()
		resp := postCtx(ctx, sid, `{"jsonrpc":"2.0","id":`+strconv.Itoa(id)+`,"method":"tools/call","params":{"name":"`+tool+`","arguments":`+args+`}}`)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var asked string
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var m struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Result json.RawMessage `json:"result"`
			}
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatalf("%s: %v", data, err)
			}
			switch {
			case m.Method == method:
				asked = string(m.ID)
				if answer == "" {
					return asked
				}
				r := post(sid, `{"jsonrpc":"2.0","id":`+asked+`,`+answer+`}`)
				r.Body.Close()
				if r.StatusCode != http.StatusAccepted {
					t.Fatalf("the answer to %s: %d", method, r.StatusCode)
				}
			case m.Method == "" && m.Result != nil:
				if asked == "" {
					t.Fatalf("%s answered without asking: %s", tool, data)
				}
				return asked
			}
		}
		t.Fatalf("%s: the stream ended without a result (%v)", tool, sc.Err())
		return ""
	}
	ids := []string{
		roundTrip(2, "trigger-elicitation-request", `{}`, "elicitation/create",
			`"result":{"action":"accept","content":{"name":"Ada Lovelace-secret"}}`),
		roundTrip(3, "trigger-elicitation-request", `{}`, "elicitation/create", `"result":{"action":"decline"}`),
		roundTrip(4, "trigger-sampling-request", `{"prompt":"prompt-secret","maxTokens":10}`, "sampling/createMessage",
			`"result":{"role":"assistant","content":{"type":"text","text":"answer-secret"},"model":"m","stopReason":"endTurn"}`),
		roundTrip(5, "trigger-sampling-request", `{"prompt":"prompt-secret","maxTokens":10}`, "sampling/createMessage",
			`"error":{"code":-1,"message":"the user refused"}`),
		roundTrip(6, "trigger-elicitation-request", `{}`, "elicitation/create", ""),
	}
	awaitTrail(t, &out, audit.OutcomeUnanswered)
	if err := trail.Close(); err != nil {
		t.Fatal(err)
	}

	trips := roundTripEvents(t, out.String())
	wants := []struct {
		method, outcome string
		code            int
	}{
		{"elicitation/create", audit.OutcomeAccepted, 0},
		{"elicitation/create", audit.OutcomeDeclined, 0},
		{"sampling/createMessage", audit.OutcomeResult, 0},
		{"sampling/createMessage", audit.OutcomeRPCError, -1},
		{"elicitation/create", audit.OutcomeUnanswered, 0}, // the client went away, and its tools/call ended
	}
	if len(trips) != len(wants) {
		t.Fatalf("%d round trip events, want %d:\n%s", len(trips), len(wants), out.String())
	}
	for i, e := range trips {
		w := wants[i]
		if e.Name != "mcp."+w.method || e.Method != w.method || e.Outcome != w.outcome || e.ErrorCode != w.code || e.RPCID != ids[i] {
			t.Errorf("event %d = %+v, want %s %s %d for the server's request %s", i, e, w.method, w.outcome, w.code, ids[i])
		}
		if e.UserID != "1001" || e.UserLogin != "octo" || e.ClientID != "client-1" || e.Server != "everything" || e.Protocol != "2025-11-25" {
			t.Errorf("event %d names the wrong user, client, server or protocol: %+v", i, e)
		}
		if e.DurationMS <= 0 || (e.BytesIn == 0) != (w.outcome == audit.OutcomeUnanswered) || e.BytesOut == 0 {
			t.Errorf("event %d has no duration or wrong sizes: %+v", i, e)
		}
	}
	for _, secret := range []string{"Ada Lovelace", "prompt-secret", "answer-secret", "the user refused", "Please provide"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("the audit trail holds content of a question or an answer (%q)", secret)
		}
	}
}

// sendAs sends a request as user 1001 (login octo) of client-1, on session sid when given.
func sendAs(ctx context.Context, t *testing.T, srv *httptest.Server, method, sid, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, method, srv.URL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("X-User-Id", "1001")
	req.Header.Set("X-User-Name", "octo")
	req.Header.Set("X-Client-Id", "client-1")
	if sid != "" {
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// asker answers initialize and ping, and after a ping asks its client two questions outside any operation: they
// go out on the session's GET stream.
const asker = `while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"asker","version":"1"}}}\n' "$id";;
    *'"ping"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id"
      for q in 77 78; do
        printf '{"jsonrpc":"2.0","id":%s,"method":"elicitation/create","params":{"message":"question-secret","requestedSchema":{"type":"object","properties":{}}}}\n' "$q"
      done;;
  esac
done`

// A server's question outside any operation goes out on the session's GET stream: its round trip is an event when
// the client answers, and one still unanswered when the session ends is one too.
func TestRoundTripsOnTheGETStreamAudited(t *testing.T) {
	var out testenv.SyncBuffer
	trail := audit.New(&out, nil, audit.Options{Service: "streamproxy", Log: slog.New(slog.DiscardHandler)})
	h := New(auditedConfig(trail, "asker", "/bin/sh", "-c", asker))
	t.Cleanup(h.Close)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	send := func(method, sid, body string) *http.Response {
		t.Helper()
		return sendAs(t.Context(), t, srv, method, sid, body)
	}
	resp := send(http.MethodPost, "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",`+
		`"capabilities":{"elicitation":{}},"clientInfo":{"name":"t","version":"1"}}}`)
	resp.Body.Close()
	sid := resp.Header.Get("Mcp-Session-Id")
	if sid == "" {
		t.Fatalf("no session: %d", resp.StatusCode)
	}
	send(http.MethodPost, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`).Body.Close()
	stream := send(http.MethodGet, sid, "")
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET stream: %d", stream.StatusCode)
	}
	send(http.MethodPost, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`).Body.Close()

	sc := bufio.NewScanner(stream.Body)
	var asked []string
	for len(asked) < 2 && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok && strings.Contains(data, "elicitation/create") {
			var m struct {
				ID json.RawMessage `json:"id"`
			}
			if err := json.Unmarshal([]byte(data), &m); err != nil {
				t.Fatal(err)
			}
			asked = append(asked, string(m.ID))
		}
	}
	if len(asked) != 2 {
		t.Fatalf("the GET stream carried %d questions, want 2 (%v)", len(asked), sc.Err())
	}
	if r := send(http.MethodPost, sid, `{"jsonrpc":"2.0","id":`+asked[0]+`,"result":{"action":"accept","content":{}}}`); r.StatusCode != http.StatusAccepted {
		t.Fatalf("the answer: %d", r.StatusCode)
	}
	send(http.MethodDelete, sid, "").Body.Close() // the second question is never answered
	awaitTrail(t, &out, audit.OutcomeUnanswered)
	if err := trail.Close(); err != nil {
		t.Fatal(err)
	}
	trips := roundTripEvents(t, out.String())
	if len(trips) != 2 {
		t.Fatalf("%d round trip events, want 2:\n%s", len(trips), out.String())
	}
	for i, outcome := range []string{audit.OutcomeAccepted, audit.OutcomeUnanswered} {
		e := trips[i]
		if e.Name != "mcp.elicitation/create" || e.Outcome != outcome || e.RPCID != asked[i] || e.UserID != "1001" ||
			e.UserLogin != "octo" || e.ClientID != "client-1" || e.Protocol != "2025-11-25" || e.Server != "asker" || e.DurationMS <= 0 || e.BytesOut == 0 {
			t.Errorf("round trip event %d %+v, want %s of %s", i, e, outcome, asked[i])
		}
	}
	if strings.Contains(out.String(), "question-secret") {
		t.Error("the audit trail holds a question's content")
	}
}

// On 2026-07-28's path a bridged child's question goes to the client in an InputRequiredResult and the answer
// comes in the retry: that round trip is an event too, and one the client never comes back for is, once the call
// stops waiting.
func TestRoundTripsAuditedStateless(t *testing.T) {
	script := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-everything", "dist", "index.js")
	var out testenv.SyncBuffer
	trail := audit.New(&out, nil, audit.Options{Service: "streamproxy", Log: slog.New(slog.DiscardHandler)})
	h := New(auditedConfig(trail, "everything", testenv.NodeBin(t), script))
	h.parkFor = 2 * time.Second
	t.Cleanup(h.Close)
	header := map[string]string{"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "trigger-elicitation-request"}
	params := map[string]any{"name": "trigger-elicitation-request", "arguments": map[string]any{},
		"_meta": map[string]any{metaProtocolVersion: "2026-07-28", metaClientCapabilities: map[string]any{"elicitation": map[string]any{}}}}
	send := func(id int) map[string]any {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
		w := call(t, h, string(body), header)
		data := w.Body.String()
		if i := strings.Index(data, "data: "); i >= 0 {
			data, _, _ = strings.Cut(data[i+len("data: "):], "\n")
		}
		var resp struct {
			Result map[string]any `json:"result"`
		}
		if err := json.Unmarshal([]byte(data), &resp); err != nil || resp.Result == nil {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		return resp.Result
	}
	res := send(2)
	if res["resultType"] != "input_required" {
		t.Fatalf("no input asked: %v", res)
	}
	var key string
	for k := range res["inputRequests"].(map[string]any) {
		key = k
	}
	params["requestState"] = res["requestState"]
	params["inputResponses"] = map[string]any{key: map[string]any{"action": "cancel"}}
	if res := send(3); res["resultType"] == "input_required" {
		t.Fatalf("asked again: %v", res)
	}
	delete(params, "requestState")
	delete(params, "inputResponses")
	if res := send(4); res["resultType"] != "input_required" {
		t.Fatalf("no input asked: %v", res)
	}
	awaitTrail(t, &out, audit.OutcomeUnanswered) // the client never comes back
	if err := trail.Close(); err != nil {
		t.Fatal(err)
	}
	trips := roundTripEvents(t, out.String())
	if len(trips) != 2 {
		t.Fatalf("%d round trip events, want 2:\n%s", len(trips), out.String())
	}
	for i, outcome := range []string{audit.OutcomeCancelled, audit.OutcomeUnanswered} {
		e := trips[i]
		if e.Name != "mcp.elicitation/create" || e.Outcome != outcome || e.UserID != "1001" || e.ClientID != "client-1" ||
			e.Protocol != "2026-07-28" || e.Server != "everything" || e.DurationMS <= 0 || (e.BytesIn == 0) != (outcome == audit.OutcomeUnanswered) || e.BytesOut == 0 {
			t.Errorf("round trip event %d %+v, want %s", i, e, outcome)
		}
	}
}

// awaitTrail waits until the trail holds an event with outcome: one recorded after its request was answered.
func awaitTrail(t *testing.T, out *testenv.SyncBuffer, outcome string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"outcome":"`+outcome+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s event in the audit trail:\n%s", outcome, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// roundTripEvents are the audit trail's events other than the tool calls: the round trips.
func roundTripEvents(t *testing.T, trail string) []audit.Event {
	t.Helper()
	var trips []audit.Event
	sc := bufio.NewScanner(strings.NewReader(trail))
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		if e.Name != "mcp.tools/call" {
			trips = append(trips, e)
		}
	}
	return trips
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Shared processes (--share): N processes of the MCP server serve every caller, on both paths.

// The conformance suites stay green in shared mode: the released suite and the prerelease's required sets of both
// generations, against two shared processes of the Go SDK's fixture.
func TestSharedConformance(t *testing.T) {
	conformance(t, "--share", "2")
}

// shareFlags run n shared processes; the sandbox reads node_modules.
func shareFlags(t *testing.T, n int, extra ...string) []string {
	return append([]string{"--share", strconv.Itoa(n), "--sandbox-allow-read", testenv.NodeModules(t)}, extra...)
}

// live is a POST whose answer is read as it comes: each message of an SSE answer (or the JSON one) on msgs, closed
// when the answer ends.
type live struct {
	msgs   chan map[string]any
	status chan int
	cancel context.CancelFunc
}

func postLive(t *testing.T, req *http.Request) *live {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	l := &live{msgs: make(chan map[string]any, 64), status: make(chan int, 1), cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		defer close(l.msgs)
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			l.status <- 0
			return
		}
		defer resp.Body.Close()
		l.status <- resp.StatusCode
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			var m map[string]any
			if json.NewDecoder(resp.Body).Decode(&m) == nil {
				l.msgs <- m
			}
			return
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var m map[string]any
				if json.Unmarshal([]byte(data), &m) == nil {
					l.msgs <- m
				}
			}
		}
	}()
	return l
}

// sessionRequest is a POST of the session path.
func sessionRequest(t *testing.T, url, sid, user, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("X-User-Id", user)
	return req
}

// statelessRequest is a POST of the 2026-07-28 path.
func statelessRequest(t *testing.T, url, user, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	setStatelessHeaders(req, user, body)
	return req
}

// longRun is a tools/call of server-everything's trigger-long-running-operation with a progress token: one
// progress notification per step.
func longRun(id int, token string, seconds, steps int, stateless bool) string {
	meta := map[string]any{"progressToken": token}
	if stateless {
		meta["io.modelcontextprotocol/protocolVersion"] = "2026-07-28"
		meta["io.modelcontextprotocol/clientCapabilities"] = map[string]any{}
	}
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{
		"name": "trigger-long-running-operation", "arguments": map[string]any{"duration": seconds, "steps": steps}, "_meta": meta}})
	return string(b)
}

// await waits for a channel to close, failing the test after 30 s.
func await(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "never came: "+what)
	}
}

// outcome is what one caller got for a call: its progress totals and its response.
type outcome struct {
	totals   []float64
	response map[string]any
}

// collect reads a live answer to its end; firstProgress, when set, is closed at the first progress notification.
func collect(l *live, firstProgress chan struct{}) outcome {
	var o outcome
	for m := range l.msgs {
		if m["method"] == "notifications/progress" {
			p := m["params"].(map[string]any)
			if p["progressToken"] == "p" {
				o.totals = append(o.totals, p["total"].(float64))
			} else {
				o.totals = append(o.totals, -1) // someone else's token
			}
			if firstProgress != nil {
				close(firstProgress)
				firstProgress = nil
			}
			continue
		}
		if m["id"] != nil {
			o.response = m
		}
	}
	return o
}

func resultText(m map[string]any) string {
	b, _ := json.Marshal(m["result"])
	return string(b)
}

// Two users on one shared server-everything, on each path: concurrent calls with the same JSON-RPC id and the same
// progress token each get their own progress and answer, and one user's cancellation leaves the other's call alone.
func TestSharedCallersKeptApart(t *testing.T) {
	url := proxy(t, shareFlags(t, 1), everything(t)...)
	for _, path := range []string{"session", "2026-07-28"} {
		t.Run(path, func(t *testing.T) {
			stateless := path == "2026-07-28"
			request := func(user, body string) *http.Request {
				if stateless {
					return statelessRequest(t, url, user, body)
				}
				return sessionRequest(t, url, open(t, url, "X-User-Id", user), user, body)
			}
			// Same id, same token, different work: 2 steps for alice, 4 for bob.
			alice := postLive(t, request("alice", longRun(7, "p", 1, 2, stateless)))
			bob := postLive(t, request("bob", longRun(7, "p", 1, 4, stateless)))
			var a, b outcome
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); a = collect(alice, nil) }()
			go func() { defer wg.Done(); b = collect(bob, nil) }()
			wg.Wait()
			assert.Equal(t, []float64{2, 2}, a.totals, "alice's progress, all of it and only it")
			assert.Equal(t, []float64{4, 4, 4, 4}, b.totals, "bob's progress, all of it and only it")
			require.NotNil(t, a.response)
			require.NotNil(t, b.response)
			assert.EqualValues(t, 7, a.response["id"])
			assert.EqualValues(t, 7, b.response["id"])
			assert.Contains(t, resultText(a.response), "Steps: 2")
			assert.Contains(t, resultText(b.response), "Steps: 4")
		})
	}

	t.Run("cancel", func(t *testing.T) {
		// Same id on both paths' callers; alice cancels hers (a notification on the session path, closing the stream
		// on 2026-07-28): bob's call, with the same id, runs to its end.
		for _, path := range []string{"session", "2026-07-28"} {
			stateless := path == "2026-07-28"
			aliceSid, bobSid := "", ""
			var alice, bob *live
			if stateless {
				alice = postLive(t, statelessRequest(t, url, "alice", longRun(8, "p", 2, 4, true)))
				bob = postLive(t, statelessRequest(t, url, "bob", longRun(8, "p", 2, 4, true)))
			} else {
				aliceSid, bobSid = open(t, url, "X-User-Id", "alice"), open(t, url, "X-User-Id", "bob")
				alice = postLive(t, sessionRequest(t, url, aliceSid, "alice", longRun(8, "p", 2, 4, false)))
				bob = postLive(t, sessionRequest(t, url, bobSid, "bob", longRun(8, "p", 2, 4, false)))
			}
			aliceStarted, bobStarted := make(chan struct{}), make(chan struct{})
			aliceDone, bobDone := make(chan outcome, 1), make(chan outcome, 1)
			go func() { aliceDone <- collect(alice, aliceStarted) }()
			go func() { bobDone <- collect(bob, bobStarted) }()
			await(t, aliceStarted, "alice's progress")
			await(t, bobStarted, "bob's progress")
			if stateless {
				alice.cancel() // 2026-07-28's cancellation: the client closes the response stream
			} else {
				cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":8,"reason":"changed my mind"}}`
				require.Equal(t, http.StatusAccepted, post(t, url, aliceSid, cancel, "X-User-Id", "alice").status)
			}
			b := <-bobDone
			require.NotNil(t, b.response, "%s: bob's call was not cancelled with alice's", path)
			assert.Contains(t, resultText(b.response), "Steps: 4", path)
			// Alice's call, as long as bob's, would have ended with it: a cancelled call gets no answer.
			time.AfterFunc(2*time.Second, alice.cancel)
			a := <-aliceDone
			assert.Nil(t, a.response, "%s: alice's call was cancelled", path)
		}
	})

	t.Run("cancel names only the caller's own calls", func(t *testing.T) {
		aliceSid, bobSid := open(t, url, "X-User-Id", "alice"), open(t, url, "X-User-Id", "bob")
		alice := postLive(t, sessionRequest(t, url, aliceSid, "alice", longRun(9, "p", 2, 4, false)))
		started := make(chan struct{})
		done := make(chan outcome, 1)
		go func() { done <- collect(alice, started) }()
		await(t, started, "progress")
		// Bob names alice's request id: in his session no such call is in flight, so nothing is cancelled.
		cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}`
		require.Equal(t, http.StatusAccepted, post(t, url, bobSid, cancel, "X-User-Id", "bob").status)
		a := <-done
		require.NotNil(t, a.response, "bob cannot cancel alice's call")
		assert.Contains(t, resultText(a.response), "Steps: 4")
	})
}

// updatesUntil reads a session's standalone stream until it has n resource updates, and returns every message it got.
func updatesUntil(t *testing.T, events <-chan sseEvent, n int) []map[string]any {
	t.Helper()
	var got []map[string]any
	updates := 0
	timeout := time.After(30 * time.Second)
	for updates < n {
		select {
		case e := <-events:
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(e.data), &m))
			got = append(got, m)
			if m["method"] == "notifications/resources/updated" {
				updates++
			}
		case <-timeout:
			require.FailNow(t, "no resource update came", "got %v", got)
		}
	}
	return got
}

// Subscriptions on a shared process: each caller hears of the resources it subscribed to only; the log messages the
// server sends between requests (server-everything's simulated logging) reach nobody, and are counted.
func TestSharedSubscriptionsAndStrayLogs(t *testing.T) {
	url, metrics := proxyWithMetrics(t, shareFlags(t, 1), everything(t)...)
	one, two := "demo://resource/dynamic/text/1", "demo://resource/dynamic/text/2"
	alice, bob := open(t, url, "X-User-Id", "alice"), open(t, url, "X-User-Id", "bob")
	subscribe := func(sid, user, uri string) {
		r := post(t, url, sid, `{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"`+uri+`"}}`, "X-User-Id", user)
		require.Equal(t, 200, r.status)
		require.Nil(t, r.messages[0]["error"])
	}
	subscribe(alice, "alice", one)
	subscribe(bob, "bob", two)
	aliceEvents, stopAlice := streamOf(t, url, alice, "", "alice")
	defer stopAlice()
	bobEvents, stopBob := streamOf(t, url, bob, "", "bob")
	defer stopBob()
	// A 2026-07-28 caller listens to the first resource too.
	listen := statelessBody(4, "subscriptions/listen", map[string]any{"notifications": map[string]any{"resourceSubscriptions": []string{one}}}, map[string]any{})
	carol := postLive(t, statelessRequest(t, url, "carol", listen))

	// server-everything then updates every subscribed resource every 5 s, and logs every 5 s.
	for _, tool := range []string{"toggle-subscriber-updates", "toggle-simulated-logging"} {
		r := post(t, url, alice, `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`, "X-User-Id", "alice")
		require.Equal(t, 200, r.status)
	}
	check := func(who string, got []map[string]any, uri string) {
		for _, m := range got {
			assert.NotEqual(t, "notifications/message", m["method"], "%s got a log message of no request of theirs", who)
			if m["method"] == "notifications/resources/updated" {
				assert.Equal(t, uri, m["params"].(map[string]any)["uri"], "%s hears only of what it subscribed to", who)
			}
		}
	}
	check("alice", updatesUntil(t, aliceEvents, 2), one)
	check("bob", updatesUntil(t, bobEvents, 2), two)
	var carolGot []map[string]any
	for m := range carol.msgs {
		carolGot = append(carolGot, m)
		if m["method"] == "notifications/resources/updated" {
			break
		}
	}
	carol.cancel()
	check("carol", carolGot, one)
	// With no call in flight, the next simulated log message belongs to nobody.
	require.Eventually(t, func() bool { return metric(t, metrics, `streamproxy_shared_unrouted_total{kind="log"}`) >= 1 },
		20*time.Second, 100*time.Millisecond, "the stray log messages are dropped and counted")

	// Bob leaves: his subscription goes with his session, alice's stays.
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set("Mcp-Session-Id", bob)
	req.Header.Set("X-User-Id", "bob")
	assert.Equal(t, http.StatusNoContent, send(t, req).status)
	assert.Equal(t, http.StatusNotFound, post(t, url, bob, `{"jsonrpc":"2.0","id":6,"method":"ping"}`, "X-User-Id", "bob").status)
	assert.Equal(t, 200, post(t, url, alice, `{"jsonrpc":"2.0","id":6,"method":"ping"}`, "X-User-Id", "alice").status,
		"a DELETE ends the session, not the process")
	check("alice", updatesUntil(t, aliceEvents, 1), one)
}

// Each session has its own logging level on a shared process: the proxy keeps it and filters, the process never
// hears of it.
func TestSharedLoggingLevelPerSession(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	url := proxy(t, []string{"--share", "1"}, fixture)
	quiet, chatty := open(t, url, "X-User-Id", "quiet"), open(t, url, "X-User-Id", "chatty")
	setLevel := func(sid, user, level string) {
		r := post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"`+level+`"}}`, "X-User-Id", user)
		require.Equal(t, 200, r.status)
		require.Nil(t, r.messages[0]["error"])
	}
	logs := func(sid, user string) int {
		r := post(t, url, sid, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{}}}`, "X-User-Id", user)
		require.Equal(t, 200, r.status)
		n := 0
		for _, m := range r.messages {
			if m["method"] == "notifications/message" {
				n++
			}
		}
		require.NotNil(t, r.messages[len(r.messages)-1]["result"])
		return n
	}
	setLevel(chatty, "chatty", "info")
	setLevel(quiet, "quiet", "error") // last: a level passed on to the process would now silence chatty too
	assert.Equal(t, 3, logs(chatty, "chatty"), "info and above")
	assert.Equal(t, 0, logs(quiet, "quiet"), "error and above: the tool logs at info")
	r := post(t, url, quiet, `{"jsonrpc":"2.0","id":4,"method":"logging/setLevel","params":{"level":"loud"}}`, "X-User-Id", "quiet")
	assert.EqualValues(t, -32602, r.messages[0]["error"].(map[string]any)["code"], "an unknown level is refused")
}

// A session and a 2026-07-28 user on the same shared process at once, each getting their own answers.
func TestSharedSessionAndStatelessTogether(t *testing.T) {
	url, metrics := proxyWithMetrics(t, shareFlags(t, 1), everything(t)...)
	sid := open(t, url, "X-User-Id", "alice")
	cs := connect(t, url, "bob", nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range 20 {
			r := post(t, url, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"alice %d"}}}`, i), "X-User-Id", "alice")
			assert.Contains(t, resultText(r.messages[len(r.messages)-1]), fmt.Sprintf("Echo: alice %d", i))
		}
	}()
	go func() {
		defer wg.Done()
		for i := range 20 {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": fmt.Sprintf("bob %d", i)}})
			if assert.NoError(t, err) {
				assert.Equal(t, fmt.Sprintf("Echo: bob %d", i), text(t, res))
			}
		}
	}()
	wg.Wait()
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_shared_processes"))
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_children_started_total"), "one process served both")
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_sessions_active"))
}

// With --share the limits count sessions, and their refusals say so: what frees one is a DELETE, not a process ending.
func TestSharedSessionLimits(t *testing.T) {
	url, metrics := proxyWithMetrics(t, shareFlags(t, 1, "--max-per-user", "1", "--max-sessions", "2"), everything(t)...)
	open(t, url, "X-User-Id", "alice")
	r := post(t, url, "", initBody, "X-User-Id", "alice")
	assert.Equal(t, http.StatusTooManyRequests, r.status, "alice's second session")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	require.Len(t, r.messages, 1)
	assert.Contains(t, r.messages[0]["error"].(map[string]any)["message"], "this user's sessions are at the limit (1")

	open(t, url, "X-User-Id", "bob")
	r = post(t, url, "", initBody, "X-User-Id", "carol")
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "a third session in all")
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	require.Len(t, r.messages, 1)
	assert.Contains(t, r.messages[0]["error"].(map[string]any)["message"], "too many sessions open (2")

	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_sessions_refused_total{reason="user_limit"}`))
	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_sessions_refused_total{reason="limit"}`))
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_children_started_total"), "no session started a process")
}

// What a shared process cannot do per user is refused at start, with the reason.
func TestSharedRefusedAtStart(t *testing.T) {
	bin := testenv.BuildBinary(t, "./streamproxy")
	for name, c := range map[string]struct {
		flags []string
		says  string
	}{
		"{user} in --env":     {[]string{"--env", "HOME=/srv/{user}"}, "--share cannot serve {user}"},
		"{user} in --workdir": {[]string{"--workdir", "/srv/{user}"}, "--share cannot serve {user}"},
		"a user's token": {[]string{"--env", "GITLAB_TOKEN={token:gitlab}", "--broker-url", "http://127.0.0.1:1", "--broker-secret", "s"},
			"--share cannot serve {token:...}"},
		"a negative count": {[]string{"--share", "-1"}, "--share must be 0"},
		"a pool beside":    {[]string{"--pool", "2"}, "--pool has nothing to start ahead with --share"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"--listen", "127.0.0.1:0", "--share", "2"}, c.flags...)
			out, err := exec.Command(bin, append(args, "--", "true")...).CombinedOutput()
			require.Error(t, err, "%s", out)
			assert.Contains(t, string(out), c.says)
		})
	}
}

// childrenOf lists the pids of a process's children (each thread's: Go starts them from any).
func childrenOf(t *testing.T, pid int) []int {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	require.NoError(t, err)
	var pids []int
	for _, file := range files {
		b, _ := os.ReadFile(file)
		for _, f := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(f)
			require.NoError(t, err)
			pids = append(pids, n)
		}
	}
	return pids
}

// A shared process killed with SIGKILL: the call in flight gets a JSON-RPC error that says so, the process is started
// again, and the session on it carries on.
func TestSharedProcessRestarts(t *testing.T) {
	p, url, metrics := proxyProcess(t, testenv.FreePort(t), shareFlags(t, 1), everything(t)...)
	sid := open(t, url, "X-User-Id", "alice")
	echo := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"again"}}}`
	require.Equal(t, 200, post(t, url, sid, echo, "X-User-Id", "alice").status)
	require.Eventually(t, func() bool { return len(childrenOf(t, p.Cmd.Process.Pid)) == 1 }, 10*time.Second, 50*time.Millisecond,
		"the probe has ended, the shared process runs")

	inFlight := postLive(t, sessionRequest(t, url, sid, "alice", longRun(3, "p", 10, 10, false)))
	started := make(chan struct{})
	done := make(chan outcome, 1)
	go func() { done <- collect(inFlight, started) }()
	await(t, started, "progress")
	for _, pid := range childrenOf(t, p.Cmd.Process.Pid) {
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	o := <-done
	require.NotNil(t, o.response)
	e, _ := o.response["error"].(map[string]any)
	require.NotNil(t, e, "the call in flight fails: %v", o.response)
	assert.Contains(t, e["message"], "MCP server process")

	require.Eventually(t, func() bool {
		r := post(t, url, sid, echo, "X-User-Id", "alice")
		return r.status == 200 && strings.Contains(resultText(r.messages[len(r.messages)-1]), "Echo: again")
	}, 30*time.Second, 100*time.Millisecond, "the session works on the new process")
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_shared_processes"))
	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_children_exited_total{how="crashed"}`))
	assert.Equal(t, 2.0, metric(t, metrics, "streamproxy_children_started_total"), "the first process and its successor")
}

// The policy, the audit trail and the limits per user apply to each caller on a shared process as on their own.
func TestSharedPerCallerRules(t *testing.T) {
	p, url, metrics := proxyProcess(t, testenv.FreePort(t), shareFlags(t, 1, "--policy", policyFile(t, everythingPolicy),
		"--max-calls-per-user", "1"), everything(t)...)
	member := open(t, url, "X-User-Id", "member", "X-User-Groups", "team")
	other := open(t, url, "X-User-Id", "other")
	sum := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}`
	r := post(t, url, member, sum, "X-User-Id", "member", "X-User-Groups", "team")
	require.Equal(t, 200, r.status)
	assert.Contains(t, resultText(r.messages[0]), "3")
	r = post(t, url, other, sum, "X-User-Id", "other")
	assert.EqualValues(t, -32003, rpcErrorOf(t, r)["code"], "the policy refuses the other user on the same process")
	r = postStateless(t, url, "other", statelessBody(3, "tools/call", map[string]any{"name": "get-sum", "arguments": map[string]any{"a": 1, "b": 2}}, map[string]any{}))
	assert.EqualValues(t, -32003, rpcErrorOf(t, r)["code"], "and on the 2026-07-28 path")

	// One call in flight per user: the member's second is refused, the other user's goes through.
	slow := postLive(t, sessionRequest(t, url, member, "member", longRun(4, "p", 3, 3, false)))
	slow.cancel = func() {}
	started := make(chan struct{})
	go collect(slow, started)
	await(t, started, "progress")
	assert.Equal(t, http.StatusTooManyRequests, post(t, url, member, `{"jsonrpc":"2.0","id":5,"method":"ping"}`, "X-User-Id", "member").status)
	assert.Equal(t, 200, post(t, url, other, `{"jsonrpc":"2.0","id":5,"method":"ping"}`, "X-User-Id", "other").status)
	assert.GreaterOrEqual(t, metric(t, metrics, `streamproxy_requests_limited_total{limit="user_calls"}`), 1.0)

	// Each caller's calls are audited under their own identity.
	p.WaitLine(t, `"event":"mcp.tools/call","outcome":"result","request_id"`, 5*time.Second)
	var memberSum, otherDenied bool
	for _, line := range strings.Split(p.Output(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil || e["event"] != "mcp.tools/call" || e["target"] != "get-sum" {
			continue
		}
		memberSum = memberSum || e["user_id"] == "member" && e["outcome"] == "result"
		otherDenied = otherDenied || e["user_id"] == "other" && e["outcome"] != "result"
	}
	assert.True(t, memberSum, "the member's call is in the audit trail as theirs")
	assert.True(t, otherDenied, "the other user's refusal is in the audit trail as theirs")
}

// holdTheOnlyRoom has alice's long call take the process's only room (--share-max-calls 1) and returns once it
// has begun; its outcome comes on the channel when it ends.
func holdTheOnlyRoom(t *testing.T, url, alice string) <-chan outcome {
	t.Helper()
	slow := postLive(t, sessionRequest(t, url, alice, "alice", longRun(4, "p", 2, 2, false)))
	started := make(chan struct{})
	done := make(chan outcome, 1)
	go func() { done <- collect(slow, started) }()
	await(t, started, "progress")
	return done
}

// A shared process at --share-max-calls sheds a call beyond it once the call waited --share-max-wait for room, on both
// paths (503, Retry-After, the session path's JSON-RPC error for overload, counted), rather than queueing it behind
// the calls in flight; what the proxy answers itself still works, and the process takes calls again once one ends.
func TestSharedShedsBeyondMaxCalls(t *testing.T) {
	url, metrics := proxyWithMetrics(t, shareFlags(t, 1, "--share-max-calls", "1"), everything(t)...)
	alice := open(t, url, "X-User-Id", "alice")
	bob := open(t, url, "X-User-Id", "bob")
	done := holdTheOnlyRoom(t, url, alice)

	echo := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	for _, r := range []reply{
		post(t, url, bob, echo, "X-User-Id", "bob"),
		postStateless(t, url, "carol", statelessBody(7, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}}, map[string]any{})),
	} {
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.NotEmpty(t, r.header.Get("Retry-After"))
		e := rpcErrorOf(t, r)
		assert.EqualValues(t, -32000, e["code"])
		assert.Contains(t, e["message"], "--share-max-calls")
		assert.EqualValues(t, 7, r.messages[0]["id"], "the refusal names the request")
	}
	assert.Equal(t, 2.0, metric(t, metrics, "streamproxy_shared_shed_total"))
	assert.Equal(t, 200, post(t, url, bob, `{"jsonrpc":"2.0","id":8,"method":"ping"}`, "X-User-Id", "bob").status,
		"the proxy's own answers are not calls at the process")

	o := <-done
	require.NotNil(t, o.response)
	assert.Nil(t, o.response["error"], "the call in flight was not disturbed")
	r := post(t, url, bob, echo, "X-User-Id", "bob")
	require.Equal(t, 200, r.status)
	assert.Contains(t, resultText(r.messages[len(r.messages)-1]), "Echo: hi")
}

// A call beyond --share-max-calls waits for room rather than being refused at once: calls that arrive together
// while the process is at its limit are answered, on both paths, once the call in flight ends, and none is shed.
func TestSharedCallsWaitForRoom(t *testing.T) {
	url, metrics := proxyWithMetrics(t, shareFlags(t, 1, "--share-max-calls", "1", "--share-max-wait", "30s"), everything(t)...)
	alice := open(t, url, "X-User-Id", "alice")
	bob := open(t, url, "X-User-Id", "bob")
	done := holdTheOnlyRoom(t, url, alice)

	echo := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	waiting := map[string]*live{
		"session":    postLive(t, sessionRequest(t, url, bob, "bob", echo)),
		"2026-07-28": postLive(t, statelessRequest(t, url, "carol", statelessBody(7, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "hi"}}, map[string]any{}))),
	}
	for path, l := range waiting {
		msgs := answerOf(l)
		assert.Equal(t, http.StatusOK, <-l.status, path)
		require.NotEmpty(t, msgs, path)
		assert.Contains(t, resultText(msgs[len(msgs)-1]), "Echo: hi", path)
	}
	o := <-done
	require.NotNil(t, o.response)
	assert.Nil(t, o.response["error"], "the call in flight was not disturbed")
	assert.Equal(t, 0.0, metric(t, metrics, "streamproxy_shared_shed_total"))
}

// answerOf reads a live answer to its end (at most a minute).
func answerOf(l *live) []map[string]any {
	var all []map[string]any
	for m := range l.msgs {
		all = append(all, m)
	}
	return all
}

// What a shared process sends while two callers have calls in flight belongs to neither: its log messages are
// dropped and its requests answered with an error to the process, never handed to the other caller. A request
// asked while one caller alone is in flight reaches that caller, and only its answer goes back.
func TestSharedUntiedMessages(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	url, metrics := proxyWithMetrics(t, []string{"--share", "1"}, fixture)
	withElicitation := strings.Replace(initBody, `"capabilities":{}`, `"capabilities":{"elicitation":{}}`, 1)
	openWith := func(user string) string {
		r := post(t, url, "", withElicitation, "X-User-Id", user)
		require.Equal(t, http.StatusOK, r.status)
		sid := r.header.Get("Mcp-Session-Id")
		require.Equal(t, http.StatusAccepted, post(t, url, sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "X-User-Id", user).status)
		r = post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"debug"}}`, "X-User-Id", user)
		require.Equal(t, http.StatusOK, r.status)
		return sid
	}
	alice, bob := openWith("alice"), openWith("bob")
	elicit := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_elicitation","arguments":{"message":"Name?"}}}`

	// Bob alone is in flight when the process asks: the question is his, under an id of the proxy's.
	bobCall := postLive(t, sessionRequest(t, url, bob, "bob", elicit))
	var question map[string]any
	for m := range bobCall.msgs {
		require.NotEqual(t, "notifications/message", m["method"], "bob gets no log message of alice's")
		if m["method"] == "elicitation/create" {
			question = m
			break
		}
	}
	require.NotNil(t, question, "bob is asked")

	// Alice calls meanwhile: two callers in flight, so her tool's log messages and its question go to nobody.
	logged := answerOf(postLive(t, sessionRequest(t, url, alice, "alice", `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"test_tool_with_logging","arguments":{}}}`)))
	for _, m := range logged {
		assert.NotEqual(t, "notifications/message", m["method"], "a log message while two callers are in flight is nobody's")
	}
	asked := answerOf(postLive(t, sessionRequest(t, url, alice, "alice", elicit)))
	for _, m := range asked {
		assert.NotEqual(t, "elicitation/create", m["method"], "a question while two callers are in flight is nobody's")
	}
	require.NotEmpty(t, asked, "alice's call is answered")
	last := asked[len(asked)-1]
	assert.True(t, last["error"] != nil || strings.Contains(resultText(last), "isError"), "alice's elicitation failed: %v", last)

	// Alice cannot answer bob's question; bob can.
	answer := fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"result":{"action":"accept","content":{"username":"%%s"}}}`, question["id"])
	assert.Equal(t, http.StatusAccepted, post(t, url, alice, fmt.Sprintf(answer, "mallory"), "X-User-Id", "alice").status)
	assert.Equal(t, http.StatusAccepted, post(t, url, bob, fmt.Sprintf(answer, "bob"), "X-User-Id", "bob").status)
	rest := answerOf(bobCall)
	require.NotEmpty(t, rest)
	for _, m := range rest {
		assert.NotEqual(t, "notifications/message", m["method"], "bob gets no log message of alice's")
	}
	assert.Contains(t, resultText(rest[len(rest)-1]), "username:bob")
	assert.NotContains(t, resultText(rest[len(rest)-1]), "mallory")
	assert.GreaterOrEqual(t, metric(t, metrics, `streamproxy_shared_unrouted_total{kind="log"}`), 3.0)
	assert.GreaterOrEqual(t, metric(t, metrics, `streamproxy_shared_unrouted_total{kind="request"}`), 1.0)
}

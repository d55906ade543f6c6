package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Shared processes (--share): N processes of the MCP server serve every caller, on both paths.

// The conformance suites stay green in shared mode: the released suite and the prerelease's required sets of both
// generations, against two shared processes of the Go SDK's fixture.
func TestSharedConformance(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	url := strings.Replace(proxy(t, []string{"--user-header", "", "--share", "2"}, fixture), "127.0.0.1", "localhost", 1)

	latest := testenv.RunConformance(t, testenv.ConformanceLatest, url, "")
	assert.NoError(t, latest.Err, "conformance suite failed:\n%s", latest.Summary)
	assert.Regexp(t, `Total: \d+ passed, 0 failed`, latest.Summary)
	assert.GreaterOrEqual(t, len(latest.Passed), 30, "every server scenario ran:\n%s", latest.Summary)

	stateless := testenv.RunConformance(t, testenv.ConformanceAlpha, url, "", "--requirements", "2026-07-28")
	assert.Empty(t, stateless.Failed(testenv.Required2026), "2026-07-28 required scenarios:\n%s", stateless.Summary)
	assert.NoError(t, stateless.Err, "%s", stateless.Summary)

	sessions := testenv.RunConformance(t, testenv.ConformanceAlpha, url, "", "--requirements", "2025-11-25")
	assert.NoError(t, sessions.Err, "2025-11-25 required scenarios:\n%s", sessions.Summary)
	assert.GreaterOrEqual(t, len(sessions.Passed), 30, "%s", sessions.Summary)
	for name, ok := range sessions.Passed {
		require.True(t, ok, "%s failed:\n%s", name, sessions.Summary)
	}
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
			<-aliceStarted
			<-bobStarted
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
		<-started
		// Bob names alice's request id: in his session no such call is in flight, so nothing is cancelled.
		cancel := `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9}}`
		require.Equal(t, http.StatusAccepted, post(t, url, bobSid, cancel, "X-User-Id", "bob").status)
		a := <-done
		require.NotNil(t, a.response, "bob cannot cancel alice's call")
		assert.Contains(t, resultText(a.response), "Steps: 4")
	})
}

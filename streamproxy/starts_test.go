package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// slowStart holds a process in its start for $HOLD seconds before it becomes the MCP server ("$0" "$@"), as a
// server on a busy machine does, and logs as it begins how many processes are in their start with it (a file each
// in $DIR): the count is never more than the processes starting at once.
const slowStart = `touch "$DIR/$$"; ls "$DIR" | wc -l >> "$LOG"; sleep "$HOLD"; rm "$DIR/$$"; exec "$0" "$@"`

// slowProxy runs streamproxy in front of the Go SDK's fixture behind slowStart; started reads the counts logged,
// one per process started.
func slowProxy(t *testing.T, hold string, flags ...string) (url, metrics string, started func() []int) {
	t.Helper()
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	dir, log := t.TempDir(), filepath.Join(t.TempDir(), "starting")
	flags = append(flags, "--sandbox", "off", "--env", "DIR="+dir+",LOG="+log+",HOLD="+hold)
	url, metrics = proxyWithMetrics(t, flags, "sh", "-c", slowStart, fixture)
	return url, metrics, func() []int {
		b, err := os.ReadFile(log)
		if os.IsNotExist(err) {
			return nil
		}
		require.NoError(t, err)
		var counts []int
		for _, line := range strings.Fields(string(b)) {
			n, err := strconv.Atoi(line)
			require.NoError(t, err)
			counts = append(counts, n)
		}
		return counts
	}
}

// newProcessRequest is a request that needs a new process for its user: an initialize, or a 2026-07-28 request of a
// user without a worker yet.
func newProcessRequest(ctx context.Context, url, user string, stateless bool) *http.Request {
	body := initBody
	if stateless {
		body = statelessBody(1, "tools/list", nil, map[string]any{})
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if stateless {
		setStatelessHeaders(req, user, body)
	} else {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("X-User-Id", user)
	}
	return req
}

// status sends a request from a goroutine of its own and returns its status, or its error.
func status(req *http.Request) (int, http.Header, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// Users who all come at once (a replica restarted under them) get their processes started at most --max-starting at
// a time, sessions and 2026-07-28 workers alike, each in turn, rather than every start at once sharing the cores
// until clients time out.
func TestStartsAtOnceAreBounded(t *testing.T) {
	url, metrics, started := slowProxy(t, "1", "--max-starting", "2")
	const users = 8
	var wg sync.WaitGroup
	got := make([]string, users)
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err := status(newProcessRequest(context.Background(), url, strconv.Itoa(1000+i), i%2 == 1))
			got[i] = fmt.Sprint(code, err)
		}()
	}
	wg.Wait()
	for i, g := range got {
		assert.Equal(t, "200 <nil>", g, "user %d", i)
	}
	counts := started()
	require.Len(t, counts, users, "one process per user")
	for i, n := range counts {
		assert.LessOrEqual(t, n, 2, "start %d began with %d processes starting", i, n)
	}
	require.Eventually(t, func() bool {
		return metric(t, metrics, "streamproxy_processes_starting") == 0 && metric(t, metrics, "streamproxy_starts_waiting") == 0
	}, 10*time.Second, 50*time.Millisecond, "every turn given back")
}

// holdTheTurn has user 1001 open a session, and returns once its process has started (holding the only turn, with
// --max-starting 1, while no other starts); the request's status and error come on the channel when it is answered.
func holdTheTurn(t *testing.T, url string, started func() []int) <-chan string {
	t.Helper()
	before := len(started())
	first := make(chan string, 1)
	go func() {
		code, _, err := status(newProcessRequest(context.Background(), url, "1001", false))
		first <- fmt.Sprint(code, err)
	}()
	require.Eventually(t, func() bool { return len(started()) == before+1 }, 10*time.Second, 10*time.Millisecond, "its process starts")
	return first
}

// A client that goes away while its start waits for its turn leaves the line with nothing started for it, on both
// paths; the next one is served.
func TestALeavingClientStartsNothing(t *testing.T) {
	url, metrics, started := slowProxy(t, "2", "--max-starting", "1")
	first := holdTheTurn(t, url, started)
	for i, stateless := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, _, err := status(newProcessRequest(ctx, url, strconv.Itoa(1002+i), stateless))
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "the first start holds the only turn for 2 s")
	}
	assert.Equal(t, "200 <nil>", <-first)
	assert.Len(t, started(), 1, "nothing started for the clients that left")
	code, _, err := status(newProcessRequest(context.Background(), url, "1004", false))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, code, "the next client is served")
	assert.Len(t, started(), 2)
	assert.Equal(t, 2.0, metric(t, metrics, "streamproxy_children_started_total"))
}

// A start that waits longer than --start-wait for its turn is answered 503 with Retry-After, a JSON-RPC error of
// the request, on both paths.
func TestAStartWaitsAtMostStartWait(t *testing.T) {
	url, metrics, started := slowProxy(t, "3", "--max-starting", "1", "--start-wait", "1s")
	first := holdTheTurn(t, url, started)
	for i, stateless := range []bool{false, true} {
		req := newProcessRequest(context.Background(), url, strconv.Itoa(1002+i), stateless)
		r := send(t, req)
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.NotEmpty(t, r.header.Get("Retry-After"))
		require.Len(t, r.messages, 1)
		assert.EqualValues(t, 1, r.messages[0]["id"])
		assert.Contains(t, fmt.Sprint(r.messages[0]["error"]), "waited 1s for its turn")
	}
	assert.Equal(t, "200 <nil>", <-first)
	assert.Len(t, started(), 1, "nothing started for the requests answered 503")
	assert.Equal(t, 2.0, metric(t, metrics, `streamproxy_sessions_refused_total{reason="start_wait"}`))
}

// A user at --max-per-user whose new session or worker waits for its turn to start, and whose client leaves meanwhile,
// keeps the idle session that would have been recycled: it is ended only when the start goes ahead.
func TestALeavingClientRecyclesNothing(t *testing.T) {
	url, metrics, started := slowProxy(t, "2", "--max-starting", "1", "--max-per-user", "1")
	sessions := map[string]string{}
	for _, user := range []string{"1002", "1003"} {
		sessions[user] = open(t, url, "X-User-Id", user)
	}
	first := holdTheTurn(t, url, started)
	for user, stateless := range map[string]bool{"1002": false, "1003": true} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, _, err := status(newProcessRequest(ctx, url, user, stateless))
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded, "the first start holds the only turn for 2 s")
	}
	assert.Equal(t, "200 <nil>", <-first)
	for user, sid := range sessions {
		r := post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"ping"}`, "X-User-Id", user)
		assert.Equal(t, http.StatusOK, r.status, "user %s's session is still there", user)
	}
	assert.Equal(t, 0.0, metric(t, metrics, "streamproxy_sessions_expired_total"))

	// A start that goes ahead recycles it, as before.
	r := send(t, newProcessRequest(context.Background(), url, "1002", false))
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, http.StatusNotFound, post(t, url, sessions["1002"], `{"jsonrpc":"2.0","id":3,"method":"ping"}`, "X-User-Id", "1002").status)
	assert.Equal(t, 1.0, metric(t, metrics, "streamproxy_sessions_expired_total"))
}

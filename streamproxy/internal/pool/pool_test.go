package pool

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

var quiet = slog.New(slog.DiscardHandler)

// starter starts real processes of a command and keeps every one it started, and the room the pool asked for.
type starter struct {
	cmd session.Command

	mu      sync.Mutex
	started []*session.Session
	asked   []int // held, at each call of Room
	limit   int   // Room allows at most this many held; 0: any
}

func (st *starter) start() (*session.Session, error) {
	s, err := session.Start(session.Config{Command: st.cmd, Log: quiet})
	if err == nil {
		st.mu.Lock()
		st.started = append(st.started, s)
		st.mu.Unlock()
	}
	return s, err
}

func (st *starter) room(held int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.asked = append(st.asked, held)
	return st.limit == 0 || held <= st.limit
}

func (st *starter) starts() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.started)
}

func everything(t *testing.T) session.Command {
	script := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-everything", "dist", "index.js")
	return session.Command{Path: testenv.NodeBin(t), Args: []string{script}, Env: session.Env(nil, nil)}
}

func newPool(t *testing.T, size int, st *starter) *Pool {
	p := New(Config{Size: size, Start: st.start, Room: st.room, Log: quiet, Backoff: 100 * time.Millisecond,
		MaxBackoff: 400 * time.Millisecond})
	t.Cleanup(p.Close)
	return p
}

// waitReady waits until n processes wait in the pool.
func waitReady(t *testing.T, p *Pool, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return p.Ready() == n }, 60*time.Second, 20*time.Millisecond,
		"the pool never held %d processes (holds %d)", n, p.Ready())
}

// initialize sends a client's initialize to a process taken from the pool, as the session path does.
func initialize(t *testing.T, s *session.Session) map[string]any {
	t.Helper()
	raw := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"pool-test","version":"1"}}}`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Do(ctx, json.RawMessage(`1`), nil, []byte(raw), func(*session.Message) {})
	require.NoError(t, err)
	var r struct {
		Result map[string]any `json:"result"`
	}
	require.NoError(t, json.Unmarshal(resp.Raw, &r))
	return r.Result
}

func TestPoolHandsOutAStartedProcessAndRefills(t *testing.T) {
	st := &starter{cmd: everything(t)}
	p := newPool(t, 2, st)
	waitReady(t, p, 2)
	assert.Equal(t, 2, p.Held())

	s := p.Take()
	require.NotNil(t, s)
	s.Adopt("alice", nil, slog.Default())
	defer s.Close(time.Second)
	select {
	case <-s.Done():
		t.Fatal("the process handed out has ended")
	default:
	}
	// The client's own initialize reaches the process, which has waited uninitialized.
	res := initialize(t, s)
	assert.Equal(t, "2025-11-25", res["protocolVersion"])
	assert.NotNil(t, res["serverInfo"])
	assert.Equal(t, "alice", s.UserID)

	// It is refilled, and never holds more than its size.
	waitReady(t, p, 2)
	assert.Equal(t, 3, st.starts())
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, held := range st.asked {
		assert.LessOrEqual(t, held, 2, "the pool asked room for more than its size")
	}
}

// recorder is an MCP server that lists, in its answer to the initialize it accepts, every request it got before:
// strict, it refuses an initialize whose clientInfo is not an object, as the SDKs do; lenient, it accepts any.
const recorder = `
const rl = require('readline').createInterface({ input: process.stdin });
const seen = [];
rl.on('line', (line) => {
  const m = JSON.parse(line);
  if (m.id === undefined) return;
  const strict = process.argv[1] === 'strict';
  if (m.method === 'initialize' && (!strict || typeof m.params.clientInfo === 'object')) {
    console.log(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion,
      capabilities: {}, serverInfo: { name: 'recorder', version: '1' }, seen: [...seen] } }));
  } else if (m.method === 'initialize') {
    console.log(JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: -32602, message: 'invalid clientInfo' } }));
  } else {
    console.log(JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} }));
  }
  seen.push(m.method === 'initialize' ? 'initialize ' + JSON.stringify(m.params.clientInfo) : m.method);
});
`

func recorderCmd(t *testing.T, mode string) session.Command {
	return session.Command{Path: testenv.NodeBin(t), Args: []string{"-e", recorder, mode}, Env: session.Env(nil, nil)}
}

// A waiting process is warmed with a ping and an initialize that names no client, which the server refuses: the
// client's initialize is the first it accepts.
func TestPoolWarmsWithAnInitializeTheServerRefuses(t *testing.T) {
	st := &starter{cmd: recorderCmd(t, "strict")}
	p := newPool(t, 1, st)
	waitReady(t, p, 1)
	s := p.Take()
	require.NotNil(t, s)
	defer s.Close(time.Second)
	assert.Equal(t, []any{"ping", "initialize 0"}, initialize(t, s)["seen"])
}

// A server that accepts the warm-up's initialize was initialized by nobody: that process is never handed out, and
// the next are warmed by a ping alone.
func TestPoolNeverHandsOutAProcessThatTookTheWarmUp(t *testing.T) {
	st := &starter{cmd: recorderCmd(t, "lenient")}
	p := newPool(t, 1, st)
	waitReady(t, p, 1)
	s := p.Take()
	require.NotNil(t, s)
	defer s.Close(time.Second)
	assert.Equal(t, []any{"ping"}, initialize(t, s)["seen"], "the process handed out was initialized before its client")
	st.mu.Lock()
	first := st.started[0]
	st.mu.Unlock()
	assert.NotSame(t, first, s)
	select {
	case <-first.Done():
	case <-time.After(10 * time.Second):
		t.Error("the process that took the warm-up's initialize still runs")
	}
}

// The TypeScript and Go SDKs' servers refuse the warm-up's initialize, so their processes wait warmed by both
// requests, and take their client's initialize after it.
func TestSDKServersRefuseTheWarmUpInitialize(t *testing.T) {
	fixture := testenv.BuildBinary(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	for name, cmd := range map[string]session.Command{"server-everything": everything(t),
		"Go SDK fixture": {Path: fixture, Env: session.Env(nil, nil)}} {
		t.Run(name, func(t *testing.T) {
			s, err := session.Start(session.Config{Command: cmd, Log: quiet})
			require.NoError(t, err)
			defer s.Close(time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			answer, err := s.Do(ctx, warmInitID, nil, warmInitialize, func(*session.Message) {})
			require.NoError(t, err)
			assert.NotNil(t, answer.Error, "the server accepted an initialize without a client: %s", answer.Raw)
			assert.Equal(t, "2025-11-25", initialize(t, s)["protocolVersion"], "and takes its client's initialize after it")
		})
	}
}

func TestPoolKeepsWithinTheProxysLimit(t *testing.T) {
	st := &starter{cmd: everything(t), limit: 1}
	p := newPool(t, 3, st)
	waitReady(t, p, 1)
	// Asked again (a process ended elsewhere), it still finds no room for a second one.
	p.Wake()
	require.Eventually(t, func() bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.asked) >= 2
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, 1, p.Ready())
	assert.Equal(t, 1, p.Held())
	assert.Equal(t, 1, st.starts())
}

func TestRefillWaitsForTakesToSettle(t *testing.T) {
	st := &starter{cmd: everything(t)}
	p := New(Config{Size: 1, Start: st.start, Room: st.room, Log: quiet, Settle: time.Hour})
	t.Cleanup(p.Close)
	waitReady(t, p, 1)
	s := p.Take()
	require.NotNil(t, s)
	defer s.Close(time.Second)
	// A session that just took its process (and any that follow it) has the cores before a new process starts.
	time.Sleep(time.Second)
	assert.Equal(t, 1, st.starts(), "the pool started a process while sessions were still taking theirs")
	assert.Equal(t, 0, p.Held())
}

func TestFailingCommandBacksOff(t *testing.T) {
	// A command that exits at once: each start fails its warm-up.
	st := &starter{cmd: session.Command{Path: "/bin/sh", Args: []string{"-c", "exit 3"}, Env: session.Env(nil, nil)}}
	p := newPool(t, 2, st)
	require.Eventually(t, func() bool { return st.starts() >= 3 }, 10*time.Second, 10*time.Millisecond)
	// Backing off 100, 200, 400, 400 ms... a pool that did not would start hundreds in the same second.
	time.Sleep(time.Second)
	assert.LessOrEqual(t, st.starts(), 8, "the pool spins on a failing command")
	assert.Equal(t, 0, p.Ready())
	assert.Equal(t, 0, p.Held())
	assert.Nil(t, p.Take())
}

func TestMissingCommandBacksOff(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	p := New(Config{Size: 1, Log: quiet, Backoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond,
		Room: func(int) bool { return true },
		Start: func() (*session.Session, error) {
			mu.Lock()
			calls++
			mu.Unlock()
			return session.Start(session.Config{Command: session.Command{Path: "/nonexistent/mcp-server"}, Log: quiet})
		}})
	t.Cleanup(p.Close)
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	assert.GreaterOrEqual(t, calls, 2, "the pool gave up on a failing command")
	assert.LessOrEqual(t, calls, 8, "the pool spins on a failing command")
}

func TestCloseEndsWaitingProcesses(t *testing.T) {
	st := &starter{cmd: everything(t)}
	p := newPool(t, 2, st)
	waitReady(t, p, 2)
	taken := p.Take()
	require.NotNil(t, taken)
	defer taken.Close(time.Second)
	p.Close()
	st.mu.Lock()
	defer st.mu.Unlock()
	require.GreaterOrEqual(t, len(st.started), 2)
	for _, s := range st.started {
		if s == taken {
			continue
		}
		select {
		case <-s.Done():
		default:
			t.Error("a waiting process outlived the pool's Close")
		}
	}
	select {
	case <-taken.Done():
		t.Error("Close ended a process already taken from the pool")
	default:
	}
	assert.Equal(t, 0, p.Ready())
	assert.Equal(t, 0, p.Held())
	assert.Nil(t, p.Take())
}

func TestNilPoolHoldsNothing(t *testing.T) {
	var p *Pool
	assert.Nil(t, p.Take())
	assert.Equal(t, 0, p.Held())
	p.Wake()
	p.Missed()
	p.Close()
}

package main

import (
	"context"
	"os"
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

// awaitPool waits until the proxy's pool holds n processes ready.
func awaitPool(t *testing.T, metrics string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return metric(t, metrics, "streamproxy_pool_ready") == float64(n) },
		60*time.Second, 50*time.Millisecond, "the pool never held %d processes", n)
}

// A session and a 2026-07-28 user's worker each get a process from the pool, which works end to end and is
// refilled; neither waits for a fresh process.
func TestPooledSessionAndWorker(t *testing.T) {
	url, metrics := proxyWithMetrics(t, []string{"--pool", "1", "--max-sessions", "3"}, everything(t)...)
	awaitPool(t, metrics, 1)

	// A 2026-07-28 client (the Go SDK speaks it first): its user's worker is the pooled process.
	cs := connect(t, url, "1000001", nil)
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "pooled"}})
	require.NoError(t, err)
	assert.Contains(t, text(t, res), "pooled")
	assert.Equal(t, 0.0, metric(t, metrics, "streamproxy_pool_misses_total"))

	// Refilled, within --max-sessions: the worker and the one waiting.
	awaitPool(t, metrics, 1)
	sid := open(t, url, "X-User-Id", "1000002")
	r := post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"from the pool"}}}`,
		"X-User-Id", "1000002")
	assert.Contains(t, toolText(t, r), "from the pool")
	assert.Equal(t, 0.0, metric(t, metrics, "streamproxy_pool_misses_total"))

	// The pool now holds nothing: a worker, a session and the refill fill --max-sessions 3; the next user is refused
	// rather than the pool growing past the limit.
	awaitPool(t, metrics, 1)
	assert.Equal(t, 3.0, metric(t, metrics, "streamproxy_children_running"))
	assert.Equal(t, 200, post(t, url, "", initBody, "X-User-Id", "1000003").status, "the waiting process serves a third user")
	refused := post(t, url, "", initBody, "X-User-Id", "1000004")
	assert.Equal(t, 503, refused.status, "the pool's processes count against --max-sessions")
	assert.Equal(t, 3.0, metric(t, metrics, "streamproxy_children_running"))
}

// A worker's process taken from the pool logs as a worker, as a fresh one does: an operator tells them apart.
func TestPooledWorkerLogsAsAWorker(t *testing.T) {
	p, url, metrics := proxyProcess(t, testenv.FreePort(t), []string{"--pool", "1"}, everything(t)...)
	awaitPool(t, metrics, 1)
	cs := connect(t, url, "1000001", nil)
	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "pooled"}})
	require.NoError(t, err)
	require.Equal(t, 0.0, metric(t, metrics, "streamproxy_pool_misses_total"), "the worker came from the pool")
	p.Stop()
	var worker []string
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, `"msg":"session ended"`) && strings.Contains(line, `"worker":true`) {
			worker = append(worker, line)
		}
	}
	assert.Len(t, worker, 1, "the pooled worker's end is logged as a worker's:\n%s", p.Output())
}

// poolShellServer is shellServer that also answers ping, the pool's warm-up, whatever its id.
var poolShellServer = strings.Replace(strings.Replace(shellServer,
	`sed -n 's/.*"id":\([0-9]*\).*/\1/p'`, `sed -n 's/.*"id":\([0-9]*\|"[^"]*"\).*/\1/p'`, 1),
	`    *'"tools/call"'*)`, `    *'"ping"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id";;
    *'"tools/call"'*)`, 1)

// A process from the pool is confined as a fresh one is: the same escapes fail, the same writes work.
func TestPooledProcessIsSandboxedLikeAFreshOne(t *testing.T) {
	require.NotEqual(t, shellServer, poolShellServer)
	attempts := func(pool bool) map[string]string {
		base := t.TempDir()
		work := filepath.Join(base, "work")
		require.NoError(t, os.MkdirAll(work, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(base, "secret.txt"), []byte("secret-beside-text"), 0o600))
		t.Setenv("SANDBOX_TEST_PROXY_SECRET", "proxy-secret-text")
		flags := []string{"--sandbox", "required", "--workdir", work}
		if pool {
			flags = append(flags, "--pool", "1")
		}
		p, url, metrics := proxyProcess(t, testenv.FreePort(t), flags, "sh", "-c", poolShellServer)
		if pool {
			awaitPool(t, metrics, 1)
		}
		e := escape{url: url, sid: open(t, url), user: testUser}
		if pool {
			assert.Equal(t, 0.0, metric(t, metrics, "streamproxy_pool_misses_total"), "the session is the pooled process")
		}
		proxyPid := strconv.Itoa(p.Cmd.Process.Pid)
		return map[string]string{
			"read beside its directory":    e.run(t, "cat "+filepath.Join(base, "secret.txt")),
			"write beside its directory":   e.run(t, "echo planted | tee "+filepath.Join(base, "planted")),
			"list the root directory":      e.run(t, "ls /"),
			"read the proxy's environment": e.run(t, "cat /proc/"+proxyPid+"/environ"),
			"write in its directory":       e.run(t, "echo mine | tee mine.txt ; cat mine.txt"),
			"read system files":            e.run(t, "cat /etc/os-release"),
		}
	}
	fresh, pooled := attempts(false), attempts(true)
	for attempt, got := range pooled {
		assert.Equal(t, strings.Fields(fresh[attempt])[0], strings.Fields(got)[0], "%s: fresh %q, pooled %q", attempt, fresh[attempt], got)
		assert.NotContains(t, got, "secret-beside-text", attempt)
		assert.NotContains(t, got, "proxy-secret-text", attempt)
	}
	for _, attempt := range []string{"read beside its directory", "write beside its directory", "list the root directory",
		"read the proxy's environment"} {
		assert.True(t, strings.HasPrefix(pooled[attempt], "failed"), "%s: %s", attempt, pooled[attempt])
	}
	assert.Equal(t, "ok mine mine", pooled["write in its directory"])
}

// A pool would start a process for nobody: a command with per-user settings or credentials cannot have one.
func TestPoolRefusedForPerUserCommands(t *testing.T) {
	bin := testenv.BuildBinary(t, "./streamproxy")
	for name, flags := range map[string][]string{
		"{user}":       {"--env", "MEMORY_FILE_PATH=/data/{user}/memory.json"},
		"workdir":      {"--workdir", "/data/{user}"},
		"token":        {"--broker-url", "http://127.0.0.1:1", "--env", "TOKEN={token:gitlab}"},
		"max-sessions": {"--max-sessions", "2", "--pool", "3"},
	} {
		args := append(append([]string{"--pool", "1", "--listen", "127.0.0.1:0"}, flags...), "--", "true")
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.Error(t, err, name)
		assert.Contains(t, string(out), "--pool", name)
	}
}

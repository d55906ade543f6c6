package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

func memoryServer(t *testing.T) []string {
	return []string{"node", filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-memory", "dist", "index.js")}
}

const (
	createSecret = `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_entities","arguments":{"entities":[{"name":"alice-secret","entityType":"note","observations":["only for alice"]}]}}}`
	readGraph    = `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"read_graph","arguments":{}}}`
)

// A stateful server configured with {user} keeps each user's state in that user's own directory: alice's entity is
// invisible to bob in his session, and still there in alice's next one, in either protocol generation.
func TestPerUserState(t *testing.T) {
	base := t.TempDir()
	url := proxy(t, []string{"--env", "MEMORY_FILE_PATH=" + base + "/users/{user}/memory.json"}, memoryServer(t)...)
	alice, bob := "1000001", "1000002"

	a := open(t, url, "X-User-Id", alice)
	require.Equal(t, 200, post(t, url, a, createSecret, "X-User-Id", alice).status)
	b := open(t, url, "X-User-Id", bob)
	theirs, _ := json.Marshal(post(t, url, b, readGraph, "X-User-Id", bob).messages)
	assert.NotContains(t, string(theirs), "alice-secret", "bob's session does not see alice's state")

	again := open(t, url, "X-User-Id", alice)
	mine, _ := json.Marshal(post(t, url, again, readGraph, "X-User-Id", alice).messages)
	assert.Contains(t, string(mine), "alice-secret", "alice's state survives into her next session")

	// 2026-07-28 requests reach the user's worker, which keeps the same per-user state.
	ctx := context.Background()
	got, err := connect(t, url, alice, nil).CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
	require.NoError(t, err)
	assert.Contains(t, text(t, got), "alice-secret")
	got, err = connect(t, url, bob, nil).CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
	require.NoError(t, err)
	assert.NotContains(t, text(t, got), "alice-secret")

	info, err := os.Stat(filepath.Join(base, "users", alice))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	// An identity that tries to climb out of the base directory stays a name inside it.
	evil := open(t, url, "X-User-Id", "../"+alice)
	leaked, _ := json.Marshal(post(t, url, evil, readGraph, "X-User-Id", "../"+alice).messages)
	assert.NotContains(t, string(leaked), "alice-secret")
	entries, err := os.ReadDir(filepath.Join(base, "users"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{alice, bob, "%2E.%2F" + alice}, names)
	others, err := os.ReadDir(base)
	require.NoError(t, err)
	assert.Len(t, others, 1, "nothing was created beside users/")
}

// Per-user settings without an identity would mean a shared or empty path: the proxy refuses to start like that.
func TestPerUserStateNeedsIdentity(t *testing.T) {
	bin := testenv.BuildBinary(t, "./streamproxy")
	out, err := osexec.Command(bin, "--user-header", "", "--env", "F=/tmp/{user}", "--", "true").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "{user} in --env or --workdir needs an identity")
}

// With --secret, only requests that carry it (Traefik adds it) are served: another process that reaches the port
// cannot name a user.
func TestSecretFromTheGateway(t *testing.T) {
	url := proxy(t, []string{"--secret", "s3cret-from-traefik"}, everything(t)...)
	assert.Equal(t, 403, post(t, url, "", initBody).status)
	assert.Equal(t, 403, post(t, url, "", initBody, "X-Streamproxy-Secret", "guess").status)
	r := post(t, url, "", initBody, "X-Streamproxy-Secret", "s3cret-from-traefik")
	assert.Equal(t, 200, r.status)
}

// One user cannot take every process: at --max-per-user, a new session recycles the user's least recently used idle
// one; when all are busy, 429. Other users are not affected.
func TestProcessesPerUser(t *testing.T) {
	url := proxy(t, []string{"--max-per-user", "2"}, "sh", "-c", notifier)
	first := open(t, url, "X-User-Id", testUser)
	second := open(t, url, "X-User-Id", testUser)
	ping := `{"jsonrpc":"2.0","id":5,"method":"ping"}`
	require.Equal(t, 200, post(t, url, second, ping, "X-User-Id", testUser).status) // the first is now the least recently used
	third := open(t, url, "X-User-Id", testUser)
	assert.Equal(t, 404, post(t, url, first, ping, "X-User-Id", testUser).status, "the stale session was recycled")
	assert.Equal(t, 200, post(t, url, second, ping, "X-User-Id", testUser).status)
	assert.Equal(t, 200, post(t, url, third, ping, "X-User-Id", testUser).status)

	// Busy sessions (a stream open) are never recycled: with both busy, the user gets 429.
	_, stopA := stream(t, url, second, "")
	defer stopA()
	_, stopB := stream(t, url, third, "")
	defer stopB()
	r := post(t, url, "", initBody, "X-User-Id", testUser)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	assert.NotEmpty(t, r.header.Get("Retry-After"))
	open(t, url, "X-User-Id", "2")
}

// A body with raw newlines between its tokens is one message: it reaches the child as one line, so nothing nested
// in it can pass as a message of its own.
func TestOneMessageOneLine(t *testing.T) {
	log := filepath.Join(t.TempDir(), "lines")
	url := proxy(t, []string{"--env", "LOG=" + log, "--sandbox-allow-write", filepath.Dir(log)}, "sh", "-c", recorder)
	smuggled := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"smuggled","arguments":{}}}`
	body := strings.Replace(statelessBody(1, "server/discover", nil, map[string]any{}), `"_meta"`,
		"\"x\":\n"+smuggled+"\n,\"_meta\"", 1)
	require.Equal(t, 200, postStateless(t, url, "1", body).status)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		assert.False(t, strings.HasPrefix(line, `{"jsonrpc":"2.0","id":9`), "the nested message did not reach the child alone: %s", line)
		assert.True(t, json.Valid([]byte(line)), "every line is a whole message: %s", line)
	}
}

// A message with a member JSON-RPC does not have is refused at once: server-everything drops such a message in
// silence, and its client waited forever. A child gets the proxy's own encoding of what the proxy read, so a
// duplicate name (which a child's parser may read as its first value, the proxy's as its last) never reaches one.
func TestStrictEnvelope(t *testing.T) {
	url := proxy(t, nil, everything(t)...)
	sid := open(t, url)
	refused := func(r reply) {
		t.Helper()
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Len(t, r.messages, 1)
		assert.EqualValues(t, -32600, r.messages[0]["error"].(map[string]any)["code"])
		assert.EqualValues(t, 2, r.messages[0]["id"], "the refusal answers the request")
	}
	extra := "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"x\":{\n\"jsonrpc\":\"2.0\",\n\"id\":3}}"
	refused(post(t, url, sid, extra))
	refused(post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"message":"a","message":"b"}}}`))
	refused(postStateless(t, url, "1", strings.Replace(statelessBody(2, "server/discover", nil, map[string]any{}), `{`, `{"x":1,`, 1)))
	assert.Equal(t, 200, post(t, url, sid, `{"jsonrpc":"2.0","id":4,"method":"ping"}`).status, "the session goes on")

	log := filepath.Join(t.TempDir(), "lines")
	rec := proxy(t, []string{"--env", "LOG=" + log, "--sandbox-allow-write", filepath.Dir(log)}, "sh", "-c", recorder)
	body := strings.Replace(statelessBody(5, "server/discover", map[string]any{"probe": "x"}, map[string]any{}), `"probe":"x"`, `"probe" : "\u0041\u00e9"`, 1)
	require.Equal(t, 200, postStateless(t, rec, "1", body).status)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"probe":"Aé"`, "the child reads what the proxy wrote, not the client's bytes")
}

// Children start from a small environment: the proxy's own secrets stay with it unless passed on by name.
func TestChildEnvironment(t *testing.T) {
	log := filepath.Join(t.TempDir(), "env")
	script := `env > "$ENVLOG"; ` + recorder
	t.Setenv("PROXY_ONLY_SECRET", "do-not-inherit")
	t.Setenv("PASSED_ON", "named")
	url := proxy(t, []string{"--env", "ENVLOG=" + log, "--env", "LOG=/dev/null", "--pass-env", "PASSED_ON",
		"--sandbox-allow-write", filepath.Dir(log)}, "sh", "-c", script)
	require.Equal(t, 200, postStateless(t, url, "1", statelessBody(1, "server/discover", nil, map[string]any{})).status)
	b, err := os.ReadFile(log)
	require.NoError(t, err)
	env := string(b)
	assert.NotContains(t, env, "PROXY_ONLY_SECRET")
	assert.Contains(t, env, "PASSED_ON=named")
	assert.Contains(t, env, "PATH=")
}

// server-filesystem lets a client's roots replace the directory it was started in: any user could then name the
// whole data volume. --hide-client-roots keeps the server from learning of them, so each user stays in their own.
func TestHideClientRoots(t *testing.T) {
	base := t.TempDir()
	server := filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
	allowed := func(hide bool) string {
		flags := []string{"--workdir", base + "/users/{user}"}
		if hide {
			flags = append(flags, "--hide-client-roots")
		}
		url := proxy(t, flags, "node", server, ".")
		client := mcp.NewClient(&mcp.Implementation{Name: "roots", Version: "1"}, nil)
		//lint:ignore SA1019 roots are deprecated from 2026-07-28 on, and session clients still send them: the proxy must hide them
		client.AddRoots(&mcp.Root{URI: "file://" + base, Name: "everyone's data"})
		cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url,
			HTTPClient: &http.Client{Transport: userTransport{"1000001"}}}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		require.NoError(t, err)
		defer cs.Close()
		var dirs string
		// The server asks for roots right after initialization; give it a moment to apply them.
		require.Eventually(t, func() bool {
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "list_allowed_directories", Arguments: map[string]any{}})
			require.NoError(t, err)
			dirs = text(t, res)
			return hide || !strings.Contains(dirs, "users")
		}, 10*time.Second, 100*time.Millisecond)
		return dirs
	}
	assert.NotContains(t, allowed(false), filepath.Join(base, "users"), "without the flag the client's root replaced the user's directory")
	hidden := allowed(true)
	assert.Contains(t, hidden, filepath.Join(base, "users", "1000001"))
	assert.NotContains(t, strings.ReplaceAll(hidden, filepath.Join(base, "users", "1000001"), ""), base, "only the user's own directory")
}

// The proxy's secret (Traefik's, which lets a caller name any user) is in its environment, and its children, the MCP
// servers, run as its own account: a child that reads /proc/<proxy pid>/environ must not find it there.
func TestChildCannotReadTheProxy(t *testing.T) {
	// Root reads any process (CAP_SYS_PTRACE): the proxy runs as an unprivileged account, as the container image runs it.
	dir, err := os.MkdirTemp("", "streamproxy-unprivileged-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	built, err := os.ReadFile(testenv.BuildBinary(t, "./streamproxy"))
	require.NoError(t, err)
	bin := filepath.Join(dir, "streamproxy")
	require.NoError(t, os.WriteFile(bin, built, 0o755))

	found := filepath.Join(dir, "found")
	script := `cat /proc/$PPID/environ > "$FOUND" 2>&1; ` + recorder
	port := testenv.FreePort(t)
	// Without the sandbox, which would refuse the read on its own (TestSandboxStopsEscapes): this is the account's part.
	cmd := osexec.Command(bin, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--env", "FOUND="+found, "--env", "LOG=/dev/null",
		"--sandbox", "off", "--", "sh", "-c", script)
	const secret = "the-secret-only-traefik-knows"
	cmd.Env = testenv.Env("STREAMPROXY_SECRET=" + secret)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	testenv.Start(t, "streamproxy", cmd).WaitLine(t, "streamproxy listening", 10*time.Second)
	url := testenv.URL(port, "/mcp")
	require.Equal(t, 200, postStateless(t, url, "1", statelessBody(1, "server/discover", nil, map[string]any{}),
		"X-Streamproxy-Secret", secret).status)

	got, err := os.ReadFile(found)
	require.NoError(t, err, "the child ran and tried")
	assert.NotContains(t, string(got), secret, "the child read the proxy's environment")
}

// Memory is bounded by the users active within --idle-timeout, not by every user ever seen: an idle user's worker
// ends, and their next request starts a new one that finds their state where the last one left it.
func TestUserStateOutlivesTheirWorker(t *testing.T) {
	base := t.TempDir()
	url, metrics := proxyWithMetrics(t, []string{"--idle-timeout", "1s",
		"--env", "MEMORY_FILE_PATH=" + base + "/users/{user}/memory.json"}, memoryServer(t)...)
	ctx := context.Background()
	alice := "1000001"
	_, err := connect(t, url, alice, nil).CallTool(ctx, &mcp.CallToolParams{Name: "create_entities", Arguments: map[string]any{
		"entities": []map[string]any{{"name": "alice-secret", "entityType": "note", "observations": []string{"kept"}}}}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return metric(t, metrics, "streamproxy_workers_active") == 0 && metric(t, metrics, "streamproxy_children_running") == 0
	}, 20*time.Second, 100*time.Millisecond, "the idle worker and its process never ended")

	got, err := connect(t, url, alice, nil).CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
	require.NoError(t, err)
	assert.Contains(t, text(t, got), "alice-secret", "the new worker reads the state the ended one wrote")
	assert.Equal(t, 2.0, metric(t, metrics, "streamproxy_children_started_total"), "a new process served the user")
}

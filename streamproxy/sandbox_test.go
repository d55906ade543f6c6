package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// shellServer is a stdio MCP server of the session revisions whose one tool runs a shell command and answers "ok"
// or "failed" with the command's output: a server with a bug that lets a user run anything, the worst case the
// sandbox is for. The command is in the arguments' "cmd" (no double quotes, no <, > or &, which JSON escapes).
const shellServer = `while IFS= read -r line; do
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"shell","version":"1"}}}\n' "$id";;
    *'"tools/call"'*)
      cmd=$(printf '%s' "$line" | sed -n 's/.*"cmd":"\([^"]*\)".*/\1/p')
      if out=$(sh -c "$cmd" 2>&1); then st=ok; else st=failed; fi
      out=$(printf '%s' "$out" | tr '\000\n"\\' '    ' | head -c 2000)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"%s %s"}]}}\n' "$id" "$st" "$out";;
  esac
done`

// escape is one user's session on the shell server, and what the test knows of the machine around it.
type escape struct {
	url, sid, user string
}

func (e escape) run(t *testing.T, cmd string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 7, "method": "tools/call",
		"params": map[string]any{"name": "run", "arguments": map[string]any{"cmd": cmd}}})
	return toolText(t, post(t, e.url, e.sid, string(body), "X-User-Id", e.user))
}

// escapeAttempts runs, as bob, every way out of his box the test knows against a proxy with the given --sandbox,
// and returns what each attempt got, by name.
func escapeAttempts(t *testing.T, mode string) map[string]string {
	base := t.TempDir()
	alice, bob := "1000001", testUser
	aliceDir := filepath.Join(base, "users", alice)
	require.NoError(t, os.MkdirAll(aliceDir, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(aliceDir, "diary.txt"), []byte("alice-diary-text"), 0o600))
	t.Setenv("SANDBOX_TEST_PROXY_SECRET", "proxy-secret-text") // in the proxy's environment, never a child's
	p, url, _ := proxyProcess(t, testenv.FreePort(t), []string{"--sandbox", mode,
		"--workdir", base + "/users/{user}", "--env", "MEMORY_FILE_PATH=" + base + "/memory/{user}/memory.json",
		"--env", "MARK=env-of-{user}"}, "sh", "-c", shellServer)

	a := escape{url: url, sid: open(t, url, "X-User-Id", alice), user: alice}
	alicePid := strings.TrimSpace(strings.TrimPrefix(a.run(t, "echo $PPID"), "ok"))
	_, err := strconv.Atoi(alicePid)
	require.NoError(t, err, "alice's server's pid: %q", alicePid)
	b := escape{url: url, sid: open(t, url, "X-User-Id", bob), user: bob}
	proxyPid := strconv.Itoa(p.Cmd.Process.Pid)
	require.NoError(t, os.WriteFile(filepath.Join(base, "users", bob, "listen.js"),
		[]byte(`require("net").createServer().listen(0, "127.0.0.1", () => console.log("listening"))`+
			`.on("error", e => { console.log(e.code); process.exit(1) }).unref()`), 0o600))
	return map[string]string{
		"read another user's file":       b.run(t, "cat "+filepath.Join(aliceDir, "diary.txt")),
		"list the root directory":        b.run(t, "ls /"),
		"list the users' directory":      b.run(t, "ls "+filepath.Join(base, "users")),
		"read the proxy's environment":   b.run(t, "cat /proc/"+proxyPid+"/environ"),
		"read alice's server's env":      b.run(t, "cat /proc/"+alicePid+"/environ"),
		"write into another user's home": b.run(t, "echo planted | tee "+filepath.Join(aliceDir, "planted")),
		"write another user's memory":    b.run(t, "mkdir -p "+base+"/memory/"+alice+" ; echo planted | tee "+base+"/memory/"+alice+"/memory.json"),
		"write beside the users":         b.run(t, "echo planted | tee "+filepath.Join(base, "planted")),
		"signal the proxy":               b.run(t, "kill -0 "+proxyPid),
		"listen on a TCP port":           b.run(t, "node listen.js"),
		"write in his own directory":     b.run(t, "echo mine | tee mine.txt ; cat mine.txt"), // "mine" twice
		"write his own memory file":      b.run(t, "echo mine | tee "+base+"/memory/"+bob+"/memory.json"),
		"read system files":              b.run(t, "cat /etc/os-release"),
	}
}

// A server that lets its user run anything (a bug, or a shell by design) cannot cross to other users or to the
// proxy under the sandbox: every escape attempt that works without it is refused with it, while the user's own
// directory and files stay writable. Run without the sandbox first, so the test shows each attempt is real here.
func TestSandboxStopsEscapes(t *testing.T) {
	secrets := []string{"alice-diary-text", "proxy-secret-text", "env-of-1000001", "listening"}
	open := escapeAttempts(t, "off")
	assert.Contains(t, open["read another user's file"], "alice-diary-text", "without the sandbox the attack works")
	assert.Contains(t, open["read alice's server's env"], "env-of-1000001", "without the sandbox the attack works")
	assert.Contains(t, open["listen on a TCP port"], "listening", "without the sandbox the attack works")
	assert.True(t, strings.HasPrefix(open["write into another user's home"], "ok"), "without the sandbox the attack works")

	got := escapeAttempts(t, "required")
	for attempt, without := range open { // the outcome only: the answers hold environments
		t.Logf("%s: without the sandbox %s, with it %s", attempt, strings.Fields(without)[0], strings.Fields(got[attempt])[0])
	}
	for _, attempt := range []string{"read another user's file", "list the root directory", "list the users' directory",
		"read the proxy's environment", "read alice's server's env", "write into another user's home",
		"write another user's memory", "write beside the users", "listen on a TCP port"} {
		assert.True(t, strings.HasPrefix(got[attempt], "failed"), "%s: %s", attempt, got[attempt])
		for _, s := range secrets {
			assert.NotContains(t, got[attempt], s, attempt)
		}
	}
	if landlockABI(t) >= 6 { // signals are scoped from ABI 6 on
		assert.True(t, strings.HasPrefix(open["signal the proxy"], "ok"))
		assert.True(t, strings.HasPrefix(got["signal the proxy"], "failed"), got["signal the proxy"])
	}
	assert.Equal(t, "ok mine mine", got["write in his own directory"])
	assert.True(t, strings.HasPrefix(got["write his own memory file"], "ok"), got["write his own memory file"])
	assert.True(t, strings.HasPrefix(got["read system files"], "ok"), got["read system files"])
}

// landlockABI is what this kernel offers, as the proxy reports it on /health.
func landlockABI(t *testing.T) int {
	t.Helper()
	health := sandboxHealth(t, "auto")
	return health.ABI
}

type sandboxStatus struct {
	ABI    int    `json:"landlockABI"`
	Reason string `json:"reason"`
}

func sandboxHealth(t *testing.T, mode string) sandboxStatus {
	t.Helper()
	url, metrics := proxyWithMetrics(t, []string{"--sandbox", mode}, "sh", "-c", shellServer)
	resp, err := http.Get(strings.TrimSuffix(url, "/mcp") + "/health")
	require.NoError(t, err)
	defer resp.Body.Close()
	var health struct {
		Sandbox sandboxStatus `json:"sandbox"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&health))
	assert.Equal(t, float64(health.Sandbox.ABI), metric(t, metrics, "streamproxy_sandbox_landlock_abi"))
	return health.Sandbox
}

// /health and the metric say whether children are confined, and why not.
func TestSandboxStatusIsReported(t *testing.T) {
	on := sandboxHealth(t, "required")
	assert.GreaterOrEqual(t, on.ABI, 1, "this machine's kernel has Landlock")
	off := sandboxHealth(t, "off")
	assert.Equal(t, sandboxStatus{Reason: "turned off (--sandbox off)"}, off)

	// A per-user file in a directory all users share cannot be made by a confined server: said at start.
	p, _, _ := proxyProcess(t, testenv.FreePort(t), []string{"--sandbox", "required",
		"--env", "MEMORY_FILE_PATH=" + t.TempDir() + "/{user}.json"}, memoryServer(t)...)
	assert.Contains(t, p.Output(), "give each user a directory: MEMORY_FILE_PATH=/dir/{user}/file")

	bin := testenv.BuildBinary(t, "./streamproxy")
	for _, bad := range [][]string{{"--sandbox", "maybe"}, {"--sandbox-allow-connect", "https"}} {
		out, err := exec.Command(bin, append(bad, "--", "true")...).CombinedOutput()
		require.Error(t, err, "%v", bad)
		assert.Contains(t, string(out), bad[1], "the error names what was wrong")
	}
}

// server-filesystem started on the whole disk (a misconfiguration, or a client's roots taking over) sees nothing
// beyond its user's directory under the sandbox: no other user's file, no listing of /, not the proxy's environment.
// Without --hide-client-roots too: the kernel holds where the server does not. (Started on /, it cannot serve even
// the user's own files, as it lists every directory from / down to a path; started on ".", it serves them.)
func TestSandboxConfinesServerFilesystemStartedOnRoot(t *testing.T) {
	attack := func(mode string) (listing, other, environ, own string) {
		a := newFilesystemAttack(t)
		t.Setenv("SANDBOX_TEST_PROXY_SECRET", "proxy-secret-text")
		p, url, _ := proxyProcess(t, testenv.FreePort(t), []string{"--sandbox", mode, "--workdir", a.base + "/users/{user}"},
			"node", filesystemServer(t), "/")
		sid := open(t, url)
		call := func(id int, tool string, args map[string]any) string {
			body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
				"params": map[string]any{"name": tool, "arguments": args}})
			return toolText(t, post(t, url, sid, string(body)))
		}
		call(2, "write_file", map[string]any{"path": filepath.Join(a.bobDir, "notes.txt"), "content": "bob's notes"})
		return call(3, "list_directory", map[string]any{"path": "/"}),
			call(4, "read_text_file", map[string]any{"path": a.secretFile}),
			call(5, "read_text_file", map[string]any{"path": fmt.Sprintf("/proc/%d/environ", p.Cmd.Process.Pid)}),
			call(6, "read_text_file", map[string]any{"path": filepath.Join(a.bobDir, "notes.txt")})
	}
	listing, other, _, own := attack("off")
	require.Contains(t, listing, "[DIR] usr", "without the sandbox the server lists /")
	require.Contains(t, other, aliceSecret, "without the sandbox bob reads alice's file")
	require.Equal(t, "bob's notes", own)

	listing, other, environ, _ := attack("required")
	assert.NotContains(t, listing, "[DIR]", "bob listed /")
	assert.NotContains(t, other, aliceSecret, "bob read alice's file")
	assert.NotContains(t, environ, "proxy-secret-text", "bob read the proxy's environment")
}

// The official servers start and answer under the sandbox, on both paths: a session, and a 2026-07-28 user's
// worker (bridged, as these speak only the session revisions).
func TestOfficialServersRunInTheSandbox(t *testing.T) {
	base := t.TempDir()
	for name, c := range map[string]struct {
		flags   []string
		command []string
		tool    string
	}{
		"everything": {nil, everything(t), "echo"},
		"memory":     {[]string{"--env", "MEMORY_FILE_PATH=" + base + "/memory/{user}/memory.json"}, memoryServer(t), "read_graph"},
		"filesystem": {[]string{"--workdir", base + "/files/{user}", "--hide-client-roots"}, []string{"node", filesystemServer(t), "."}, "list_allowed_directories"},
	} {
		t.Run(name, func(t *testing.T) {
			url := proxy(t, append([]string{"--sandbox", "required"}, c.flags...), c.command...)
			sid := open(t, url)
			tools := post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
			require.Equal(t, 200, tools.status)
			listed, _ := json.Marshal(tools.messages)
			assert.Contains(t, string(listed), `"name":"`+c.tool+`"`)

			res, err := connect(t, url, testUser, nil).ListTools(context.Background(), nil)
			require.NoError(t, err)
			var names []string
			for _, tool := range res.Tools {
				names = append(names, tool.Name)
			}
			assert.Contains(t, names, c.tool)
		})
	}
	// server-filesystem serves its user's directory under the sandbox.
	url := proxy(t, []string{"--sandbox", "required", "--workdir", base + "/files/{user}", "--hide-client-roots"},
		"node", filesystemServer(t), ".")
	sid := open(t, url)
	call := func(id int, tool string, args map[string]any) string {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
			"params": map[string]any{"name": tool, "arguments": args}})
		return toolText(t, post(t, url, sid, string(body)))
	}
	call(2, "write_file", map[string]any{"path": "notes.txt", "content": "my notes"})
	assert.Equal(t, "my notes", call(3, "read_text_file", map[string]any{"path": "notes.txt"}))

	// server-memory writes its user's file under the sandbox, and nothing beside it.
	url = proxy(t, []string{"--sandbox", "required", "--env", "MEMORY_FILE_PATH=" + base + "/memory/{user}/memory.json"},
		memoryServer(t)...)
	assert.NotContains(t, toolText(t, post(t, url, open(t, url), createSecret)), "EACCES")
	written, err := os.ReadFile(filepath.Join(base, "memory", testUser, "memory.json"))
	require.NoError(t, err)
	assert.Contains(t, string(written), "alice-secret")
	entries, err := os.ReadDir(filepath.Join(base, "memory"))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, testUser, entries[0].Name())
}

// Landlock needs no privilege: the proxy run as an unprivileged account, as the container image runs it (as
// nobody when the tests run as root), confines its children all the same.
func TestSandboxAppliesUnprivileged(t *testing.T) {
	dir, err := os.MkdirTemp("", "streamproxy-unprivileged-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	built, err := os.ReadFile(testenv.BuildBinary(t, "./streamproxy"))
	require.NoError(t, err)
	bin := filepath.Join(dir, "streamproxy")
	require.NoError(t, os.WriteFile(bin, built, 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "elsewhere"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "elsewhere", "file"), []byte("readable-by-the-account"), 0o644))

	port, metricsPort := testenv.FreePort(t), testenv.FreePort(t)
	cmd := exec.Command(bin, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--metrics-listen", "127.0.0.1:"+strconv.Itoa(metricsPort),
		"--sandbox", "required", "--workdir", dir+"/users/{user}", "--", "sh", "-c", shellServer)
	cmd.Env = testenv.Env()
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	testenv.Start(t, "streamproxy", cmd).WaitLine(t, "streamproxy listening", 10*time.Second)
	url := testenv.URL(port, "/mcp")
	assert.GreaterOrEqual(t, metric(t, testenv.URL(metricsPort, "/metrics"), "streamproxy_sandbox_landlock_abi"), 1.0)

	e := escape{url: url, sid: open(t, url), user: testUser}
	got := e.run(t, "cat "+filepath.Join(dir, "elsewhere", "file"))
	assert.True(t, strings.HasPrefix(got, "failed"), got)
	assert.NotContains(t, got, "readable-by-the-account")
	assert.Equal(t, "ok mine mine", e.run(t, "echo mine | tee mine.txt ; cat mine.txt"))
}

// With --sandbox-allow-connect, a server connects to the TCP ports named and to no other.
func TestSandboxConnectsToAllowedPortsOnly(t *testing.T) {
	port := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = ln.Close() })
		return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	allowed, other := port(), port()
	base := t.TempDir()
	url := proxy(t, []string{"--sandbox", "required", "--workdir", base + "/users/{user}", "--sandbox-allow-connect", allowed},
		"sh", "-c", shellServer)
	e := escape{url: url, sid: open(t, url), user: testUser}
	require.NoError(t, os.WriteFile(filepath.Join(base, "users", testUser, "connect.js"), []byte(
		`const s = require("net").connect(+process.argv[2], "127.0.0.1", () => { console.log("connected"); s.destroy() })`+
			`.on("error", e => { console.log(e.code); process.exit(1) })`), 0o600))
	assert.Equal(t, "ok connected", e.run(t, "node connect.js "+allowed))
	assert.Equal(t, "failed EACCES", e.run(t, "node connect.js "+other))
}

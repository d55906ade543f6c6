package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The riskier servers the reference gateway offers, each user in a box: a terminal server (any command, by design)
// and a browser server (any site, and a browser profile on disk), run with the flags of compose's terminal and
// browser profiles and of the dev stack's -terminal and -browser.

// terminalFlags are the terminal profile's: each user's working directory is their home, and the server's own
// command check, which asks the client's model to judge each command (sampling), is off: it is no boundary.
func terminalFlags(base string) []string {
	home := base + "/users/{user}"
	return []string{"--workdir", home, "--env", "HOME=" + home, "--env", "TMPDIR=" + home, "--env", "MCP_SHELL_ENHANCED_MODE=false"}
}

func terminalServer(t *testing.T) []string {
	return []string{"node", filepath.Join(testenv.NodeModules(t), "@mako10k", "mcp-shell-server", "dist", "index.js")}
}

// terminal is one user's session on the terminal server.
type terminal struct {
	url, sid, user string
}

// run runs a command in the user's terminal and returns its output, or the error the server answered.
func (s terminal) run(t *testing.T, id int, cmd string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
		"params": map[string]any{"name": "shell_execute", "arguments": map[string]any{"command": cmd, "execution_mode": "foreground"}}})
	return toolText(t, post(t, s.url, s.sid, string(body), "X-User-Id", s.user))
}

// terminalAttempts runs alice's and bob's terminals behind one proxy with the given --sandbox: alice keeps a diary in
// her home; bob tries to read it and the proxy's environment, and uses his own home.
func terminalAttempts(t *testing.T, mode string) (diary, environ, own string) {
	base := t.TempDir()
	t.Setenv("SANDBOX_TEST_PROXY_SECRET", "proxy-secret-text") // in the proxy's environment, never a child's
	p, url, _ := proxyProcess(t, testenv.FreePort(t), append([]string{"--sandbox", mode}, terminalFlags(base)...),
		terminalServer(t)...)
	alice := terminal{url: url, sid: open(t, url, "X-User-Id", "1000001"), user: "1000001"}
	alice.run(t, 2, "echo alice-diary-text > diary.txt")
	require.FileExists(t, filepath.Join(base, "users", "1000001", "diary.txt"))
	bob := terminal{url: url, sid: open(t, url, "X-User-Id", testUser), user: testUser}
	return bob.run(t, 3, "cat "+filepath.Join(base, "users", "1000001", "diary.txt")),
		bob.run(t, 4, "tr '\\0' '\\n' < /proc/"+strconv.Itoa(p.Cmd.Process.Pid)+"/environ | grep SANDBOX_TEST"),
		bob.run(t, 5, "echo mine > mine.txt && cat mine.txt && echo $HOME")
}

// Two users' terminals behind one proxy: bob's shell runs any command, and under the sandbox it cannot read
// alice's home or the proxy's environment, while his own home is his. Without the sandbox both attacks work.
func TestTerminalServerBoxes(t *testing.T) {
	diary, environ, own := terminalAttempts(t, "off")
	require.Contains(t, diary, "alice-diary-text", "without the sandbox bob reads alice's home")
	require.Contains(t, environ, "proxy-secret-text", "without the sandbox bob reads the proxy's environment")
	require.Contains(t, own, "mine")

	diary, environ, own = terminalAttempts(t, "required")
	assert.NotContains(t, diary, "alice-diary-text", "bob read alice's home")
	assert.Contains(t, diary, "Permission denied")
	assert.NotContains(t, environ, "proxy-secret-text", "bob read the proxy's environment")
	assert.Contains(t, environ, "Permission denied")
	assert.Contains(t, own, "mine", "bob's own home is his")
	assert.Contains(t, own, filepath.Join("users", testUser))
}

// browserFlags are the browser profile's: each user's working directory is their home, which holds their browser
// profile; Chromium keeps its shared memory files in TMPDIR (Playwright starts it with --disable-dev-shm-usage), so
// no directory is shared between users. It reads its fonts' configuration beside what every server may read.
func browserFlags(base string) []string {
	home := base + "/users/{user}"
	return []string{"--workdir", home, "--env", "HOME=" + home, "--env", "TMPDIR=" + home, "--sandbox-allow-read", "/etc/fonts"}
}

// browserServer is @playwright/mcp with config/playwright-mcp.json: Debian's Chromium, headless, without its own
// sandbox and its zygote (which needs all of /proc), the profile in the working directory.
func browserServer(t *testing.T, extra ...string) []string {
	return append([]string{"node", filepath.Join(testenv.NodeModules(t), "@playwright", "mcp", "cli.js"),
		"--config", filepath.Join(testenv.RepoRoot(t), "config", "playwright-mcp.json"), "--user-data-dir", "profile"}, extra...)
}

// browser is one user's session on the browser server.
type browser struct {
	url, sid, user string
}

// navigate opens a page in the user's browser and returns the server's answers: where it went, or the error, then
// the page's snapshot.
func (b browser) navigate(t *testing.T, id int, page string) string {
	t.Helper()
	call := func(id int, tool string, args map[string]any) string {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
			"params": map[string]any{"name": tool, "arguments": args}})
		return toolText(t, post(t, b.url, b.sid, string(body), "X-User-Id", b.user))
	}
	return call(id, "browser_navigate", map[string]any{"url": page}) + "\n" + call(id+100, "browser_snapshot", map[string]any{})
}

// browserAttempts runs alice's and bob's browsers behind one proxy with the given --sandbox: each lists its tools and
// opens a local page; then bob opens alice's profile directory as a file:// URL. The server refuses file:// outside
// its workspace by itself; --allow-unrestricted-file-access stands for a server that does not (a bug, or an
// operator's choice): what holds then is the kernel.
func browserAttempts(t *testing.T, mode string) (tools, pages [2]string, profile string) {
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte(`<!doctype html><title>Boxed page</title><h1>Hello from the test site</h1><a href="/next">Next page</a>`))
	}))
	t.Cleanup(site.Close)
	base := t.TempDir()
	_, url, _ := proxyProcess(t, testenv.FreePort(t), append([]string{"--sandbox", mode}, browserFlags(base)...),
		browserServer(t, "--allow-unrestricted-file-access")...)
	var users [2]browser
	for i, user := range []string{"1000001", testUser} {
		users[i] = browser{url: url, sid: open(t, url, "X-User-Id", user), user: user}
		listed, _ := json.Marshal(post(t, url, users[i].sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, "X-User-Id", user).messages)
		tools[i] = string(listed)
		pages[i] = users[i].navigate(t, 3, site.URL)
	}
	require.DirExists(t, filepath.Join(base, "users", "1000001", "profile", "Default"), "alice's profile is in her home")
	return tools, pages, users[1].navigate(t, 4, "file://"+filepath.Join(base, "users", "1000001", "profile"))
}

// Two users' browsers behind one proxy, each confined: each answers tools/list and navigates a local page, returning
// its snapshot; bob's browser cannot list alice's profile directory, which it can without the sandbox.
func TestBrowserServerBoxes(t *testing.T) {
	_, _, profile := browserAttempts(t, "off")
	require.Contains(t, profile, "Default", "without the sandbox bob's browser lists alice's profile")

	tools, pages, profile := browserAttempts(t, "required")
	for i := range tools {
		assert.Contains(t, tools[i], `"name":"browser_navigate"`)
		assert.Contains(t, tools[i], `"name":"browser_snapshot"`)
		assert.Contains(t, pages[i], "Boxed page", "the page's title")
		assert.Contains(t, pages[i], `heading "Hello from the test site"`, "the page's snapshot")
	}
	assert.NotContains(t, profile, "Default", "bob's browser listed alice's profile")
	t.Logf("bob opens alice's profile: %s", profile)
}

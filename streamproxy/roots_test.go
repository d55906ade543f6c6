package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// What server-filesystem writes to stderr once it has dealt with the roots it was given: it took them, or it got
// none and keeps the directory it was started in.
const (
	rootsTaken = "Updated allowed directories from MCP roots"
	rootsNone  = "No valid root directories provided by client"
)

// rootsKept is what the proxy logs when it keeps a client's message about roots from the server.
const rootsKept = "kept a client's message about roots"

// filesystemAttack prepares the attack of a user on another's files through server-filesystem run as compose.yaml
// runs it: alice's directory holds a file, and bob's server is started in his own.
type filesystemAttack struct {
	base, secretFile, bobDir string
}

const aliceSecret = "alice's diary"

func newFilesystemAttack(t *testing.T) filesystemAttack {
	base := t.TempDir()
	alice := filepath.Join(base, "users", "1000001")
	require.NoError(t, os.MkdirAll(alice, 0o700))
	secret := filepath.Join(alice, "diary.txt")
	require.NoError(t, os.WriteFile(secret, []byte(aliceSecret), 0o600))
	return filesystemAttack{base: base, secretFile: secret, bobDir: filepath.Join(base, "users", testUser)}
}

func (a filesystemAttack) flags() []string {
	return []string{"--workdir", a.base + "/users/{user}", "--hide-client-roots"}
}

func filesystemServer(t *testing.T) string {
	return filepath.Join(testenv.NodeModules(t), "@modelcontextprotocol", "server-filesystem", "dist", "index.js")
}

// check asserts what bob got from the two tools he calls once the server has dealt with his roots: only his own
// directory, and not alice's file.
func (a filesystemAttack) check(t *testing.T, dirs, read string) {
	t.Helper()
	assert.Contains(t, dirs, a.bobDir)
	assert.NotContains(t, strings.ReplaceAll(dirs, a.bobDir, ""), "/", "bob's only directory is his own: %s", dirs)
	assert.NotContains(t, read, aliceSecret, "bob read alice's file")
}

// firstOf returns which of subs comes first in the proxy's log, "" when none is there yet.
func firstOf(p *testenv.Process, subs ...string) string {
	out := p.Output()
	found, at := "", len(out)
	for _, s := range subs {
		if i := strings.Index(out, s); i >= 0 && i < at {
			found, at = s, i
		}
	}
	return found
}

// awaitFirst waits for one of subs in the proxy's log and returns the first there.
func awaitFirst(t *testing.T, p *testenv.Process, subs ...string) string {
	t.Helper()
	require.Eventually(t, func() bool { return firstOf(p, subs...) != "" }, 20*time.Second, 20*time.Millisecond,
		"none of %q in the proxy's log", subs)
	return firstOf(p, subs...)
}

// toolText is what a tools/call answered: its result's first text, or its error's message.
func toolText(t *testing.T, r reply) string {
	t.Helper()
	require.NotEmpty(t, r.messages)
	var msg struct {
		Result struct {
			Content []struct {
				Text string `json:"text"`
			} `json:"content"`
		} `json:"result"`
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	b, _ := json.Marshal(r.messages[len(r.messages)-1])
	require.NoError(t, json.Unmarshal(b, &msg))
	if len(msg.Result.Content) > 0 {
		return msg.Result.Content[0].Text
	}
	return msg.Error.Message
}

// Roots never reach a server behind --hide-client-roots. The attack, on a session: bob opens a session without the
// roots capability, opens the GET stream, says his roots changed, and answers the server's roots/list with the
// whole disk. server-filesystem asks without checking the capability, and replaces its directories with what it
// gets: bob would read alice's files, and /proc/<proxy pid>/environ with the proxy's secret.
func TestRootsNeverReachTheServerOnASession(t *testing.T) {
	a := newFilesystemAttack(t)
	p, url, _ := proxyProcess(t, testenv.FreePort(t), a.flags(), "node", filesystemServer(t), ".")
	sid := open(t, url) // initBody declares no capabilities
	events, stop := stream(t, url, sid, "")
	defer stop()
	require.Equal(t, 202, post(t, url, sid, `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`).status)

	// Either the server's roots/list comes down the stream for bob to answer, or the proxy kept his notification.
	var asked *sseEvent
	require.Eventually(t, func() bool {
		select {
		case e := <-events:
			if strings.Contains(e.data, `"roots/list"`) {
				asked = &e
				return true
			}
			return false
		default:
			return strings.Contains(p.Output(), rootsKept)
		}
	}, 20*time.Second, 20*time.Millisecond, "the client's roots/list_changed was neither passed on nor kept")
	if asked != nil {
		t.Errorf("the server's roots/list reached the client: %s", asked.data)
		var req struct {
			ID json.RawMessage `json:"id"`
		}
		require.NoError(t, json.Unmarshal([]byte(asked.data), &req))
		post(t, url, sid, fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"result":{"roots":[{"uri":"file:///"}]}}`, req.ID))
		awaitFirst(t, p, rootsTaken, rootsNone)
	}

	call := func(id int, tool string, args map[string]any) string {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
			"params": map[string]any{"name": tool, "arguments": args}})
		return toolText(t, post(t, url, sid, string(body)))
	}
	a.check(t, call(10, "list_allowed_directories", map[string]any{}), call(11, "read_text_file", map[string]any{"path": a.secretFile}))
}

// The same attack on the stateless path, where the proxy bridges to server-filesystem (a server of the session
// revisions): bob declares the roots capability in his request metadata, and when the server asks for roots during his
// call (made to ask here by a roots/list_changed slipped into its input, as a server that asks for roots during a call
// would), he answers the input request with the whole disk.
func TestRootsNeverReachTheServerThroughTheBridge(t *testing.T) {
	a := newFilesystemAttack(t)
	nudge := `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`
	script := fmt.Sprintf(`while IFS= read -r line; do
  case "$line" in *'"list_directory"'*) printf '%%s\n' '%s';; esac
  printf '%%s\n' "$line"
done | exec node %s .`, nudge, filesystemServer(t))
	// The sandbox finds the command's files, not what a script names: the server is named to it.
	p, url, _ := proxyProcess(t, testenv.FreePort(t), append(a.flags(), "--sandbox-allow-read", testenv.NodeModules(t)), "sh", "-c", script)
	withRoots := map[string]any{"roots": map[string]any{"listChanged": true}}
	listing := map[string]any{"name": "list_directory", "arguments": map[string]any{"path": "."}}
	r := postStateless(t, url, testUser, statelessBody(1, "tools/call", listing, withRoots))
	require.Equal(t, 200, r.status)
	result, _ := r.messages[len(r.messages)-1]["result"].(map[string]any)
	if result["resultType"] == "input_required" {
		t.Errorf("the server's roots/list reached the client: %v", result["inputRequests"])
		answers := map[string]any{}
		for key := range result["inputRequests"].(map[string]any) {
			answers[key] = map[string]any{"roots": []any{map[string]any{"uri": "file:///"}}}
		}
		retry := map[string]any{"name": "list_directory", "arguments": map[string]any{"path": "."},
			"requestState": result["requestState"], "inputResponses": answers}
		postStateless(t, url, testUser, statelessBody(2, "tools/call", retry, withRoots))
	}
	assert.Equal(t, rootsNone, awaitFirst(t, p, rootsNone, rootsTaken), "the server got no roots")

	call := func(id int, tool string, args map[string]any) string {
		return toolText(t, postStateless(t, url, testUser, statelessBody(id, "tools/call",
			map[string]any{"name": tool, "arguments": args}, withRoots)))
	}
	a.check(t, call(10, "list_allowed_directories", map[string]any{}), call(11, "read_text_file", map[string]any{"path": a.secretFile}))
}

// sessionRecorder is a stdio server of the session revisions that writes every line it reads to $LOG and answers
// initialize and ping.
const sessionRecorder = `while IFS= read -r line; do
  printf '%s\n' "$line" >> "$LOG"
  id=$(printf '%s' "$line" | sed -n 's/.*"id":\([0-9]*\).*/\1/p')
  case "$line" in
    *'"initialize"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"recorder","version":"1"}}}\n' "$id";;
    *'"ping"'*) printf '{"jsonrpc":"2.0","id":%s,"result":{}}\n' "$id";;
  esac
done`

// What a client says about roots stays with the proxy, whichever way it says it: the list-changed notification, an
// answer that lists roots under any id, the roots capability in initialize, and (to a child that speaks 2026-07-28,
// which asks through InputRequiredResult) an input response that lists roots, which becomes an empty list.
// Everything else passes.
func TestClientRootsStayWithTheProxy(t *testing.T) {
	log := filepath.Join(t.TempDir(), "lines")
	url := proxy(t, []string{"--hide-client-roots", "--env", "LOG=" + log, "--sandbox-allow-write", filepath.Dir(log)}, "sh", "-c", sessionRecorder)
	withRoots := strings.Replace(initBody, `"capabilities":{}`, `"capabilities":{"roots":{"listChanged":true},"sampling":{}}`, 1)
	r := post(t, url, "", withRoots)
	require.Equal(t, 200, r.status)
	sid := r.header.Get("Mcp-Session-Id")
	for _, msg := range []string{
		`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`,
		`{"jsonrpc":"2.0","id":0,"result":{"roots":[{"uri":"file:///"}]}}`,
		`{"jsonrpc":"2.0","id":"x","result":{"roots":[]}}`,
		`{"jsonrpc":"2.0","id":5,"result":{"action":"accept","content":{"ok":true}}}`,
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":4}}`,
	} {
		assert.Equal(t, 202, post(t, url, sid, msg).status, msg)
	}
	require.Equal(t, 200, post(t, url, sid, `{"jsonrpc":"2.0","id":9,"method":"ping"}`).status) // after all of the above

	statelessLog := filepath.Join(t.TempDir(), "lines")
	statelessURL := proxy(t, []string{"--hide-client-roots", "--env", "LOG=" + statelessLog, "--sandbox-allow-write", filepath.Dir(statelessLog)},
		"sh", "-c", recorder)
	answers := map[string]any{"roots": map[string]any{"roots": []any{map[string]any{"uri": "file:///"}}},
		"confirm": map[string]any{"action": "accept"}}
	require.Equal(t, 200, postStateless(t, statelessURL, testUser, statelessBody(1, "server/discover",
		map[string]any{"inputResponses": answers}, map[string]any{"roots": map[string]any{}, "elicitation": map[string]any{}})).status)

	b, err := os.ReadFile(log)
	require.NoError(t, err)
	m, err := os.ReadFile(statelessLog)
	require.NoError(t, err)
	child, statelessChild := string(b), string(m)
	assert.NotContains(t, child, "roots", "the session's child heard of roots")
	assert.Contains(t, child, `"sampling":{}`)
	assert.Contains(t, child, `"action":"accept"`)
	assert.Contains(t, child, "notifications/cancelled")
	assert.NotContains(t, statelessChild, "file:///", "the 2026-07-28 child got the client's roots")
	assert.Contains(t, statelessChild, `"inputResponses":{"confirm":{"action":"accept"},"roots":{"roots":[]}}`)
	assert.Contains(t, statelessChild, `"io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}`)
}

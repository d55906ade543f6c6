package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Per-tool authorization (--policy, docs/policy.md), on both protocol generations, with real servers.

// policyFile writes a policy and returns its path.
func policyFile(t *testing.T, src string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(file, []byte(src), 0o600))
	return file
}

// identityTransport adds the identity headers the gateway's plugin would set.
type identityTransport struct{ headers map[string]string }

func (i identityTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range i.headers {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// connectAs connects the Go SDK client (2026-07-28) with identity headers.
func connectAs(t *testing.T, url string, headers ...string) *mcp.ClientSession {
	t.Helper()
	h := map[string]string{}
	for i := 0; i+1 < len(headers); i += 2 {
		h[headers[i]] = headers[i+1]
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: identityTransport{h}}}, nil)
	require.NoError(t, err)
	require.Equal(t, "2026-07-28", cs.InitializeResult().ProtocolVersion)
	t.Cleanup(func() { _ = cs.Close() })
	return cs
}

// listed are the names (tools, prompts) or URIs (resources) of one page of a list response.
func listed(t *testing.T, r reply, member, field string) []string {
	t.Helper()
	require.Equal(t, 200, r.status, "%v", r.messages)
	res := r.messages[len(r.messages)-1]["result"].(map[string]any)
	var names []string
	for _, item := range res[member].([]any) {
		names = append(names, item.(map[string]any)[field].(string))
	}
	return names
}

func rpcErrorOf(t *testing.T, r reply) map[string]any {
	t.Helper()
	require.NotEmpty(t, r.messages)
	e, ok := r.messages[len(r.messages)-1]["error"].(map[string]any)
	require.True(t, ok, "an error response: %v", r.messages)
	return e
}

const memoryPolicy = `
version: 1
default: deny
rules:
  - name: reads-for-everyone
    tools: ["read_graph", "search_nodes", "open_nodes"]
    effect: allow
  - name: writes-for-team
    tools: ["create_*", "add_*", "delete_*"]
    groups: [team]
    effect: allow
`

// A user outside the group never sees the write tools nor calls them, on either generation; a member does both.
func TestPolicyGroupsOnBothGenerations(t *testing.T) {
	base := t.TempDir()
	p, url, _ := proxyProcess(t, testenv.FreePort(t), []string{"--policy", policyFile(t, memoryPolicy), "--log-level", "debug",
		"--env", "MEMORY_FILE_PATH=" + base + "/{user}/memory.json"}, memoryServer(t)...)
	const outsider, member = "1000001", "1000002"
	list := `{"jsonrpc":"2.0","id":5,"method":"tools/list"}`

	// The session path.
	sid := open(t, url, "X-User-Id", outsider, "X-User-Groups", "dev")
	tools := listed(t, post(t, url, sid, list, "X-User-Id", outsider, "X-User-Groups", "dev"), "tools", "name")
	assert.Contains(t, tools, "read_graph")
	assert.NotContains(t, tools, "create_entities")
	assert.NotContains(t, tools, "delete_entities")
	r := post(t, url, sid, createSecret, "X-User-Id", outsider, "X-User-Groups", "dev")
	assert.Equal(t, 200, r.status, "a refusal is a JSON-RPC error, not an HTTP one")
	e := rpcErrorOf(t, r)
	assert.EqualValues(t, -32003, e["code"])
	assert.Equal(t, `tool "create_entities" is not allowed for this user (policy rule "default")`, e["message"])
	assert.Equal(t, "default", e["data"].(map[string]any)["rule"])
	assert.EqualValues(t, 2, r.messages[0]["id"])
	graph, _ := json.Marshal(post(t, url, sid, readGraph, "X-User-Id", outsider, "X-User-Groups", "dev").messages)
	assert.NotContains(t, string(graph), "alice-secret", "the refused call never reached the server")
	p.WaitLine(t, `"msg":"policy decision","effect":"deny","rule":"default","method":"tools/call","name":"create_entities"`, 5*time.Second)
	assert.NotContains(t, p.Output(), "alice-secret", "a decision is logged without the call's arguments")

	sid = open(t, url, "X-User-Id", member, "X-User-Groups", "dev,team")
	tools = listed(t, post(t, url, sid, list, "X-User-Id", member, "X-User-Groups", "dev,team"), "tools", "name")
	assert.Contains(t, tools, "create_entities")
	r = post(t, url, sid, createSecret, "X-User-Id", member, "X-User-Groups", "dev,team")
	require.Equal(t, 200, r.status)
	assert.Nil(t, r.messages[0]["error"])

	// The stateless path, bridged (server-memory speaks only the session revisions), through the Go SDK client.
	ctx := context.Background()
	cs := connectAs(t, url, "X-User-Id", outsider, "X-User-Groups", "dev")
	all, err := cs.ListTools(ctx, nil)
	require.NoError(t, err)
	var names []string
	for _, tool := range all.Tools {
		names = append(names, tool.Name)
	}
	assert.Contains(t, names, "read_graph")
	assert.NotContains(t, names, "create_entities")
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "create_entities", Arguments: map[string]any{"entities": []any{
		map[string]any{"name": "outsider-note", "entityType": "note", "observations": []string{"x"}}}}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tool "create_entities" is not allowed for this user (policy rule "default")`)
	got, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "read_graph", Arguments: map[string]any{}})
	require.NoError(t, err)
	assert.NotContains(t, text(t, got), "outsider-note")

	cs = connectAs(t, url, "X-User-Id", member, "X-User-Groups", "team")
	got, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "create_entities", Arguments: map[string]any{"entities": []any{
		map[string]any{"name": "member-note", "entityType": "note", "observations": []string{"x"}}}}})
	require.NoError(t, err)
	assert.False(t, got.IsError, text(t, got))
}

const everythingPolicy = `
version: 1
default: allow
rules:
  - name: env-needs-admin
    tools: ["get-env"]
    scopes: ["everything:admin"]
    effect: allow
  - name: sum-for-team
    tools: ["get-sum"]
    groups: [team]
    effect: allow
  - name: no-sum-for-others
    tools: ["get-sum"]
    effect: deny
`

// A call a rule allows only with a scope the token lacks gets the step-up 403 of the contract, on both generations,
// and the tool stays listed; a tool no scope would allow is hidden.
func TestPolicyStepUp(t *testing.T) {
	url, metrics := proxyWithMetrics(t, []string{"--policy", policyFile(t, everythingPolicy)}, everything(t)...)
	const prm = "https://gateway.example/.well-known/oauth-protected-resource/everything"
	who := []string{"X-Scopes", "mcp", "X-Resource-Metadata", prm}
	wantChallenge := `Bearer error="insufficient_scope", scope="everything:admin mcp", resource_metadata="` + prm +
		`", error_description="policy rule env-needs-admin needs the scope everything:admin"`
	getEnv := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get-env","arguments":{}}}`

	sid := open(t, url)
	tools := listed(t, post(t, url, sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, who...), "tools", "name")
	assert.Contains(t, tools, "get-env", "a tool a step-up would allow is listed")
	assert.NotContains(t, tools, "get-sum", "a tool no scope would allow is hidden")
	assert.Contains(t, tools, "echo")

	r := post(t, url, sid, getEnv, who...)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, wantChallenge, r.header.Get("WWW-Authenticate"))
	e := rpcErrorOf(t, r)
	assert.EqualValues(t, 7, r.messages[0]["id"])
	assert.EqualValues(t, -32003, e["code"])
	assert.Contains(t, e["message"], `policy rule "env-needs-admin"`)

	r = post(t, url, sid, getEnv, "X-Scopes", "mcp")
	assert.Equal(t, `Bearer error="insufficient_scope", scope="everything:admin mcp", error_description="policy rule env-needs-admin needs the scope everything:admin"`,
		r.header.Get("WWW-Authenticate"), "no resource_metadata without its header")

	r = post(t, url, sid, getEnv, "X-Scopes", "mcp everything:admin")
	require.Equal(t, 200, r.status)
	assert.Nil(t, r.messages[0]["error"], "with the scope the call goes through")

	// The stateless path: the same answer before any child.
	body := statelessBody(8, "tools/call", map[string]any{"name": "get-env", "arguments": map[string]any{}}, map[string]any{})
	r = postStateless(t, url, "1001", body, who...)
	assert.Equal(t, http.StatusForbidden, r.status)
	assert.Equal(t, wantChallenge, r.header.Get("WWW-Authenticate"))
	assert.EqualValues(t, 8, r.messages[0]["id"])
	r = postStateless(t, url, "1001", statelessBody(9, "tools/call", map[string]any{"name": "get-sum", "arguments": map[string]any{"a": 1, "b": 2}}, map[string]any{}), who...)
	assert.Equal(t, 200, r.status)
	assert.Contains(t, rpcErrorOf(t, r)["message"], `policy rule "no-sum-for-others"`)
	tools = listed(t, postStateless(t, url, "1001", statelessBody(10, "tools/list", nil, map[string]any{}), who...), "tools", "name")
	assert.Contains(t, tools, "get-env")
	assert.NotContains(t, tools, "get-sum")

	assert.Equal(t, 3.0, metric(t, metrics, `streamproxy_policy_decisions_total{effect="step_up",rule="env-needs-admin"}`))
	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_policy_decisions_total{effect="allow",rule="env-needs-admin"}`))
	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_policy_decisions_total{effect="deny",rule="no-sum-for-others"}`))
}

// The 2026-07-28 header checks come first: an Mcp-Name naming an allowed tool cannot carry a call to another, and
// a call whose headers agree is decided by its body.
func TestPolicyHeaderMismatchCannotBypass(t *testing.T) {
	url := proxy(t, []string{"--policy", policyFile(t, everythingPolicy)}, everything(t)...)
	body := statelessBody(1, "tools/call", map[string]any{"name": "get-sum", "arguments": map[string]any{"a": 1, "b": 2}}, map[string]any{})
	r := postStateless(t, url, "1001", body, "Mcp-Name", "echo")
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.EqualValues(t, -32020, rpcErrorOf(t, r)["code"], "refused for the mismatch, before the policy")
	r = postStateless(t, url, "1001", body, "Mcp-Name", "get-sum", "X-User-Groups", "dev")
	assert.Contains(t, rpcErrorOf(t, r)["message"], `policy rule "no-sum-for-others"`)
	r = postStateless(t, url, "1001", body, "Mcp-Name", "get-sum", "X-User-Groups", "team")
	require.Equal(t, 200, r.status)
	assert.Nil(t, r.messages[0]["error"], "%v", r.messages)
}

// A filtered list keeps its pages: each page shows what the caller may use, and its nextCursor stays, even on a
// page the policy emptied; on the session path and on the stateless path passed through to a 2026-07-28 child. Its
// change notifications still arrive.
func TestPolicyFilteredListsKeepTheirPages(t *testing.T) {
	server := testenv.BuildBinary(t, "./streamproxy/testdata/pagedserver")
	url := proxy(t, []string{"--policy", policyFile(t, `
version: 1
default: deny
rules:
  - {name: first-five, tools: ["tool-0[0-4]"], effect: allow}
  - {name: growing, tools: ["grow", "tool-1*"], users: ["grower"], effect: allow}
`)}, server)

	sid := open(t, url)
	var pages [][]string
	cursor := ""
	for range 10 {
		params := map[string]any{}
		if cursor != "" {
			params["cursor"] = cursor
		}
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": params})
		r := post(t, url, sid, string(body))
		pages = append(pages, listed(t, r, "tools", "name"))
		next, _ := r.messages[0]["result"].(map[string]any)["nextCursor"].(string)
		if cursor = next; cursor == "" {
			break
		}
	}
	// The server's pages: [grow tool-00 tool-01] [tool-02 tool-03 tool-04] [tool-05 tool-06 tool-07] [tool-08 tool-09].
	assert.Equal(t, [][]string{{"tool-00", "tool-01"}, {"tool-02", "tool-03", "tool-04"}, nil, nil}, pages)

	cs := connectAs(t, url, "X-User-Id", "1001")
	var all []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		require.NoError(t, err)
		all = append(all, tool.Name)
	}
	assert.Equal(t, []string{"tool-00", "tool-01", "tool-02", "tool-03", "tool-04"}, all)
	_, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "tool-07"})
	assert.ErrorContains(t, err, `tool "tool-07" is not allowed for this user (policy rule "default")`)

	// list_changed passes: a session of the user the policy lets grow the server hears of the new tool and sees it.
	sid = open(t, url, "X-User-Id", "grower")
	events, stop := streamOf(t, url, sid, "", "grower")
	defer stop()
	r := post(t, url, sid, `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"grow","arguments":{}}}`, "X-User-Id", "grower")
	require.Equal(t, 200, r.status)
	heard := slices.ContainsFunc(r.messages, func(m map[string]any) bool { return m["method"] == "notifications/tools/list_changed" })
	for !heard {
		select {
		case e := <-events:
			heard = strings.Contains(e.data, "notifications/tools/list_changed")
		case <-time.After(10 * time.Second):
			t.Fatal("no notifications/tools/list_changed")
		}
	}
	var grown []string
	for cursor := ""; ; {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": map[string]any{"cursor": cursor}})
		if cursor == "" {
			body = []byte(`{"jsonrpc":"2.0","id":5,"method":"tools/list"}`)
		}
		r := post(t, url, sid, string(body), "X-User-Id", "grower")
		grown = append(grown, listed(t, r, "tools", "name")...)
		if cursor, _ = r.messages[0]["result"].(map[string]any)["nextCursor"].(string); cursor == "" {
			break
		}
	}
	assert.Equal(t, []string{"grow", "tool-00", "tool-01", "tool-02", "tool-03", "tool-04", "tool-10"}, grown)
}

// A change of the policy file takes effect without dropping a session; a change that does not load leaves the last
// good policy in force.
func TestPolicyReload(t *testing.T) {
	file := policyFile(t, "version: 1\ndefault: allow\n")
	p, url, metrics := proxyProcess(t, testenv.FreePort(t), []string{"--policy", file, "--policy-reload", "100ms"}, everything(t)...)
	echo := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	sid := open(t, url)
	require.Nil(t, post(t, url, sid, echo).messages[0]["error"])

	require.NoError(t, os.WriteFile(file, []byte("version: 1\ndefault: allow\nrules:\n  - {name: no-echo, tools: [echo], effect: deny}\n"), 0o600))
	require.Eventually(t, func() bool { return metric(t, metrics, `streamproxy_policy_reloads_total{result="loaded"}`) == 1 },
		10*time.Second, 50*time.Millisecond)
	r := post(t, url, sid, echo)
	assert.Equal(t, 200, r.status, "the session outlives the reload")
	assert.Contains(t, rpcErrorOf(t, r)["message"], `policy rule "no-echo"`)

	require.NoError(t, os.WriteFile(file, []byte("version: 1\ndefault: allow\nrules:\n  - {name: broken, when: 'caller.nope', effect: deny}\n"), 0o600))
	require.Eventually(t, func() bool { return metric(t, metrics, `streamproxy_policy_reloads_total{result="failed"}`) == 1 },
		10*time.Second, 50*time.Millisecond)
	p.WaitLine(t, "does not load", 5*time.Second)
	assert.Contains(t, rpcErrorOf(t, post(t, url, sid, echo))["message"], `policy rule "no-echo"`, "the last good policy stays")
}

// A policy that does not load stops the start, naming the rule and its line.
func TestPolicyThatDoesNotLoadStopsTheStart(t *testing.T) {
	bin := testenv.BuildBinary(t, "./streamproxy")
	for _, tc := range []struct{ src, want string }{
		{"version: 1\ndefault: allow\nrules:\n  - name: ok\n    effect: allow\n  - name: typo\n    when: caller.grups.exists(g, g == 'x')\n    effect: deny\n",
			`rule "typo" at line 6: when: ERROR`},
		{"version: 1\ndefault: allow\nrules:\n  - name: misspelt\n    tool: [x]\n    effect: deny\n", `line 5: unknown key "tool"`},
	} {
		out, err := exec.Command(bin, "--policy", policyFile(t, tc.src), "--", "true").CombinedOutput()
		require.Error(t, err, "%s", out)
		assert.Contains(t, string(out), tc.want)
	}
}

// Rate limits of the policy: 429 with Retry-After and the limit's name, counted by name.
func TestPolicyRateLimit(t *testing.T) {
	url, metrics := proxyWithMetrics(t, []string{"--policy", policyFile(t, `
version: 1
default: allow
limits:
  - {name: echo-per-user, tools: [echo], rate: 2/h}
`)}, everything(t)...)
	echo := `{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}`
	sid := open(t, url)
	for range 2 {
		require.Equal(t, 200, post(t, url, sid, echo).status)
	}
	r := post(t, url, sid, echo)
	assert.Equal(t, http.StatusTooManyRequests, r.status)
	secs := r.header.Get("Retry-After")
	assert.NotEmpty(t, secs)
	assert.Contains(t, rpcErrorOf(t, r)["message"], `rate limit "echo-per-user"`)
	assert.Equal(t, 1.0, metric(t, metrics, `streamproxy_policy_limited_total{rule="echo-per-user"}`))

	body := statelessBody(5, "tools/call", map[string]any{"name": "echo", "arguments": map[string]any{"message": "x"}}, map[string]any{})
	assert.Equal(t, http.StatusTooManyRequests, postStateless(t, url, testUser, body).status, "the same bucket on both paths")
	assert.Equal(t, 200, postStateless(t, url, "another-user", body).status, "each user has a bucket of their own")
	assert.Equal(t, 200, post(t, url, sid, `{"jsonrpc":"2.0","id":6,"method":"tools/list"}`).status, "lists are not limited")
}

// Prompts, resources, resource templates and completions are decided and filtered like tools.
func TestPolicyPromptsResourcesAndCompletions(t *testing.T) {
	url := proxy(t, []string{"--policy", policyFile(t, `
version: 1
default: allow
rules:
  - {name: completable-for-team, prompts: ["completable-*"], groups: [team], effect: allow}
  - {name: no-completable, prompts: ["completable-*"], effect: deny}
  - {name: no-blobs, resources: ["demo://resource/dynamic/blob/"], effect: deny}
  - {name: no-architecture, resources: ["demo://resource/static/document/architecture.md"], effect: deny}
`)}, everything(t)...)
	sid := open(t, url)
	rpc := func(id int, method string, params map[string]any, headers ...string) reply {
		body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
		return post(t, url, sid, string(body), headers...)
	}
	refused := func(r reply, rule string) {
		t.Helper()
		assert.Contains(t, rpcErrorOf(t, r)["message"], `(policy rule "`+rule+`")`)
	}

	prompts := listed(t, rpc(2, "prompts/list", map[string]any{}), "prompts", "name")
	assert.Contains(t, prompts, "simple-prompt")
	assert.NotContains(t, prompts, "completable-prompt")
	refused(rpc(3, "prompts/get", map[string]any{"name": "completable-prompt", "arguments": map[string]any{"department": "Engineering", "name": "Alice"}}), "no-completable")
	complete := map[string]any{"ref": map[string]any{"type": "ref/prompt", "name": "completable-prompt"}, "argument": map[string]any{"name": "department", "value": "E"}}
	refused(rpc(4, "completion/complete", complete), "no-completable")
	r := rpc(5, "completion/complete", complete, "X-User-Groups", "team")
	require.Equal(t, 200, r.status)
	assert.Contains(t, r.messages[0]["result"].(map[string]any)["completion"].(map[string]any)["values"], "Engineering")

	resources := listed(t, rpc(6, "resources/list", map[string]any{}), "resources", "uri")
	assert.Contains(t, resources, "demo://resource/static/document/features.md")
	assert.NotContains(t, resources, "demo://resource/static/document/architecture.md")
	templates := listed(t, rpc(7, "resources/templates/list", map[string]any{}), "resourceTemplates", "uriTemplate")
	assert.Equal(t, []string{"demo://resource/dynamic/text/{resourceId}"}, templates)
	refused(rpc(8, "resources/read", map[string]any{"uri": "demo://resource/dynamic/blob/1"}), "no-blobs")
	r = rpc(9, "resources/read", map[string]any{"uri": "demo://resource/dynamic/text/1"})
	require.Equal(t, 200, r.status)
	assert.Nil(t, r.messages[0]["error"])
	refused(rpc(10, "resources/subscribe", map[string]any{"uri": "demo://resource/static/document/architecture.md"}), "no-architecture")
	refused(rpc(11, "completion/complete", map[string]any{"ref": map[string]any{"type": "ref/resource", "uri": "demo://resource/dynamic/blob/{resourceId}"},
		"argument": map[string]any{"name": "resourceId", "value": "1"}}), "no-blobs")

	// The stateless path: a listen stream may not follow a resource the caller may not subscribe to.
	body := statelessBody(12, "subscriptions/listen", map[string]any{"notifications": map[string]any{
		"resourceSubscriptions": []string{"demo://resource/static/document/architecture.md"}}}, map[string]any{})
	refused(postStateless(t, url, testUser, body), "no-architecture")
	refused(postStateless(t, url, testUser, statelessBody(13, "prompts/get", map[string]any{"name": "completable-prompt"}, map[string]any{})), "no-completable")
}

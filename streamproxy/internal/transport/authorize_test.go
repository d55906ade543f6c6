package transport

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/policy"
)

func TestFilterResult(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
version: 1
default: allow
rules:
  - {name: secret-prompt, prompts: ["secret*"], effect: deny}
  - {name: private, resources: ["file:///private/"], groups: [staff], scopes: [files:private], effect: allow}
  - {name: private-others, resources: ["file:///private/"], effect: deny}
  - {name: templates, resources: ["db://{table}"], effect: deny}
`), 0o600))
	src, err := policy.Open(file, nil, nil)
	require.NoError(t, err)
	h := New(Config{Policy: src, UserHeader: "X-User-Id", Identity: IdentityHeaders{Groups: "X-User-Groups", Scopes: "X-Scopes"}})
	r := httptest.NewRequest("POST", "/mcp", nil)
	r.Header.Set("X-User-Id", "1")

	got := h.filterResult(r, "prompts/list", json.RawMessage(`{"prompts":[{"name":"simple"},{"name":"secret-one"}],"nextCursor":"c2"}`))
	assert.JSONEq(t, `{"prompts":[{"name":"simple"}],"nextCursor":"c2"}`, string(got))
	got = h.filterResult(r, "prompts/list", json.RawMessage(`{"prompts":[{"name":"secret-one"}],"nextCursor":"c3"}`))
	assert.JSONEq(t, `{"prompts":[],"nextCursor":"c3"}`, string(got), "an emptied page keeps its cursor")

	resources := json.RawMessage(`{"resources":[{"uri":"file:///public/a"},{"uri":"file:///private/b"},{"name":"no uri"}]}`)
	assert.JSONEq(t, `{"resources":[{"uri":"file:///public/a"}]}`, string(h.filterResult(r, "resources/list", resources)),
		"outside the group: hidden; an item the policy cannot name: hidden")
	r.Header.Set("X-User-Groups", "staff")
	assert.JSONEq(t, `{"resources":[{"uri":"file:///public/a"},{"uri":"file:///private/b"}]}`, string(h.filterResult(r, "resources/list", resources)),
		"in the group, a step-up away: shown")

	templates := json.RawMessage(`{"resourceTemplates":[{"uriTemplate":"db://{table}"},{"uriTemplate":"file:///{path}"}]}`)
	assert.JSONEq(t, `{"resourceTemplates":[{"uriTemplate":"file:///{path}"}]}`, string(h.filterResult(r, "resources/templates/list", templates)))

	unchanged := json.RawMessage(`{"tools":[{"name":"a"}]}`)
	assert.Equal(t, string(unchanged), string(h.filterResult(r, "tools/list", unchanged)), "nothing hidden: the result as it was")
	assert.Equal(t, `{"x":1}`, string(h.filterResult(r, "server/discover", json.RawMessage(`{"x":1}`))))
}

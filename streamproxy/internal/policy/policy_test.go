package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), nil)
	require.NoError(t, err)
	return p
}

func call(tool string) *Request { return &Request{Method: "tools/call", Name: tool} }

func TestFirstMatchWins(t *testing.T) {
	p := mustParse(t, `
version: 1
default: deny
rules:
  - name: no-delete-for-interns
    tools: ["delete_*"]
    groups: [interns]
    effect: deny
  - name: writes-for-team
    tools: ["create_*", "delete_*"]
    groups: [team, interns]
    effect: allow
  - name: reads
    tools: ["read_graph", "search_*"]
    effect: allow
`)
	intern := &Caller{ID: "1", Groups: []string{"interns"}}
	member := &Caller{ID: "2", Groups: []string{"team"}}
	other := &Caller{ID: "3"}
	for _, tc := range []struct {
		c    *Caller
		tool string
		want Decision
	}{
		{intern, "delete_entities", Decision{Effect: Deny, Rule: "no-delete-for-interns"}},
		{intern, "create_entities", Decision{Effect: Allow, Rule: "writes-for-team"}},
		{member, "delete_entities", Decision{Effect: Allow, Rule: "writes-for-team"}},
		{other, "delete_entities", Decision{Effect: Deny, Rule: DefaultRule}},
		{other, "search_nodes", Decision{Effect: Allow, Rule: "reads"}},
		{other, "search", Decision{Effect: Deny, Rule: DefaultRule}},
	} {
		assert.Equal(t, tc.want, p.Decide(tc.c, call(tc.tool)), "%s calls %s", tc.c.ID, tc.tool)
	}
}

func TestTargets(t *testing.T) {
	p := mustParse(t, `
version: 1
default: allow
rules:
  - {name: tmp-prefix, resources: ["file:///tmp/"], effect: deny}
  - {name: secret-glob, resources: ["file:///*/secret*"], effect: deny}
  - {name: prompt, prompts: ["complex_?rompt"], effect: deny}
  - {name: tool-exact, tools: ["get-env"], effect: deny}
`)
	c := &Caller{ID: "1"}
	read := func(uri string) Decision { return p.Decide(c, &Request{Method: "resources/read", URI: uri}) }
	assert.Equal(t, "tmp-prefix", read("file:///tmp/a/b/c").Rule, "a prefix covers the whole subtree")
	assert.Equal(t, "secret-glob", read("file:///etc/secrets").Rule)
	assert.Equal(t, DefaultRule, read("file:///etc/a/secret").Rule, "* stops at /")
	assert.Equal(t, "tmp-prefix", p.Decide(c, &Request{Method: "resources/subscribe", URI: "file:///tmp/x"}).Rule)
	assert.Equal(t, "prompt", p.Decide(c, &Request{Method: "prompts/get", Name: "complex_prompt"}).Rule)
	assert.Equal(t, DefaultRule, p.Decide(c, &Request{Method: "prompts/get", Name: "get-env"}).Rule, "a tools rule does not name prompts")
	assert.Equal(t, "tool-exact", p.Decide(c, call("get-env")).Rule)
	assert.Equal(t, DefaultRule, p.Decide(c, call("get-env2")).Rule)
}

func TestCallerConditions(t *testing.T) {
	p := mustParse(t, `
version: 1
default: deny
rules:
  - {name: by-id, users: ["42"], effect: allow}
  - {name: by-login, logins: [Alice], effect: allow}
  - {name: by-email, emails: [bob@example.com], effect: allow}
  - {name: by-domain, email_domains: [corp.example], effect: allow}
  - {name: by-client, clients: [cli], effect: allow}
  - {name: by-id-and-group, users: ["7"], groups: [ops], effect: allow}
`)
	for _, tc := range []struct {
		c    Caller
		want string
	}{
		{Caller{ID: "42"}, "by-id"},
		{Caller{ID: "1", Login: "alice"}, "by-login"},
		{Caller{ID: "1", Email: "Bob@Example.com"}, "by-email"},
		{Caller{ID: "1", Email: "carol@corp.example"}, "by-domain"},
		{Caller{ID: "1", Email: "carol@evilcorp.example"}, DefaultRule},
		{Caller{ID: "1", ClientID: "cli"}, "by-client"},
		{Caller{ID: "7"}, DefaultRule},
		{Caller{ID: "7", Groups: []string{"dev", "ops"}}, "by-id-and-group"},
	} {
		assert.Equal(t, tc.want, p.Decide(&tc.c, call("x")).Rule, "%+v", tc.c)
	}
}

func TestScopesAskForStepUp(t *testing.T) {
	p := mustParse(t, `
version: 1
default: allow
rules:
  - name: env-needs-admin
    tools: ["get-env"]
    scopes: ["everything:admin"]
    effect: allow
`)
	c := &Caller{ID: "1", Scopes: []string{"mcp", "b"}}
	d := p.Decide(c, call("get-env"))
	assert.Equal(t, Decision{Effect: StepUp, Rule: "env-needs-admin", Scopes: []string{"everything:admin"}}, d)
	assert.Equal(t, []string{"b", "everything:admin", "mcp"}, ChallengeScopes(c, d))
	c.Scopes = append(c.Scopes, "everything:admin")
	assert.Equal(t, Decision{Effect: Allow, Rule: "env-needs-admin"}, p.Decide(c, call("get-env")))
}

func TestCEL(t *testing.T) {
	p := mustParse(t, `
version: 1
default: allow
rules:
  - name: no-writes-outside-tmp
    tools: ["write_file"]
    when: '!request.arguments.path.startsWith("/tmp/")'
    effect: deny
  - name: admins-by-expression
    when: '"admin" in caller.groups && caller.email.endsWith("@corp.example") && request.method == "tools/call"'
    effect: allow
  - name: rest-by-name
    when: 'request.name.startsWith("x")'
    effect: deny
  - name: nested-arguments
    tools: ["query"]
    when: 'request.arguments.limit > 100 || request.arguments.opts.tags.exists(t, t == "all") || request.arguments.dry == false'
    effect: deny
`)
	c := &Caller{ID: "1"}
	args := func(a string) *Request {
		return &Request{Method: "tools/call", Name: "write_file", Arguments: json.RawMessage(a)}
	}
	assert.Equal(t, DefaultRule, p.Decide(c, args(`{"path":"/tmp/a"}`)).Rule)
	assert.Equal(t, Decision{Effect: Deny, Rule: "no-writes-outside-tmp"}, p.Decide(c, args(`{"path":"/etc/passwd"}`)))
	assert.Equal(t, Decision{Effect: Deny, Rule: "no-writes-outside-tmp"}, p.Decide(c, args(`{}`)),
		"an expression that fails (no such key) denies: nothing is allowed by accident")
	assert.Equal(t, Decision{Effect: Deny, Rule: "no-writes-outside-tmp"}, p.Decide(c, args(`not json`)))
	admin := &Caller{ID: "2", Email: "a@corp.example", Groups: []string{"admin"}}
	assert.Equal(t, "admins-by-expression", p.Decide(admin, call("xyz")).Rule)
	assert.Equal(t, "rest-by-name", p.Decide(c, call("xyz")).Rule)
	query := func(a string) string {
		return p.Decide(c, &Request{Method: "tools/call", Name: "query", Arguments: json.RawMessage(a)}).Rule
	}
	assert.Equal(t, DefaultRule, query(`{"limit":5,"opts":{"tags":["a"]},"dry":true}`))
	assert.Equal(t, "nested-arguments", query(`{"limit":500,"opts":{"tags":["a"]},"dry":true}`), "numbers compare across int and double")
	assert.Equal(t, "nested-arguments", query(`{"limit":5,"opts":{"tags":["a","all"]},"dry":true}`))
	assert.Equal(t, "nested-arguments", query(`{"limit":5,"opts":{"tags":[]},"dry":false}`))
}

func TestLoadErrorsNameTheRuleAndLine(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"version: 1\ndefault: allow\nrules:\n  - name: a\n    effect: alow\n", `rule "a" at line 4: effect "alow"`},
		{"version: 1\ndefault: allow\nrules:\n  - name: a\n    effect: allow\n  - name: typo\n    tool: [x]\n    effect: deny\n", `line 7: unknown key "tool"`},
		{"version: 1\ndefault: allow\nrules:\n  - name: a\n    effect: allow\n  - name: cel\n    when: caller.grups == 1\n    effect: deny\n", `rule "cel" at line 6: when: ERROR`},
		{"version: 1\ndefault: allow\nrules:\n  - name: notbool\n    when: caller.id\n    effect: deny\n", `rule "notbool" at line 4: when: the expression is a string, not a bool`},
		{"version: 1\ndefault: allow\nrules:\n  - name: glob\n    tools: ['[x']\n    effect: deny\n", `rule "glob" at line 4: pattern "[x"`},
		{"version: 1\ndefault: allow\nrules:\n  - name: a\n    effect: deny\n  - name: a\n    effect: deny\n", `rule "a" at line 6: the name is taken by line 4`},
		{"version: 1\ndefault: allow\nrules:\n  - name: default\n    effect: deny\n", `names the default`},
		{"version: 1\ndefault: allow\nrules:\n  - effect: deny\n", `rule at line 4 has no name`},
		{"version: 1\ndefault: allow\nrules:\n  - name: s\n    scopes: [x]\n    effect: deny\n", `rule "s" at line 4: scopes are what an allow rule requires`},
		{"version: 1\ndefault: maybe\n", `default "maybe"`},
		{"version: 2\ndefault: allow\n", `version 2`},
		{"version: 1\ndefault: allow\nrulez: []\n", `field rulez not found`},
		{"version: 1\ndefault: allow\nlimits:\n  - name: l\n    rate: 10/day\n", `limit "l" at line 4: rate "10/day"`},
		{"version: 1\ndefault: allow\nlimits:\n  - name: l\n    rate: 10/m\n    per: [team]\n", `limit "l" at line 4: per "team"`},
		{"", "empty"},
	} {
		_, err := Parse([]byte(tc.src), nil)
		if assert.Error(t, err, tc.src) {
			assert.Contains(t, err.Error(), tc.want)
		}
	}
}

func TestRateLimits(t *testing.T) {
	p := mustParse(t, `
version: 1
default: allow
limits:
  - {name: writes-per-user, tools: ["write_*"], rate: 2/h}
  - {name: search-per-tool, tools: ["search"], rate: 1/h, per: [tool]}
`)
	alice, bob := &Caller{ID: "alice"}, &Caller{ID: "bob"}
	for range 2 {
		_, ok := p.Take(alice, call("write_a"))
		require.True(t, ok)
	}
	l, ok := p.Take(alice, call("write_b"))
	assert.False(t, ok, "the user's bucket is shared by the tools the limit names")
	assert.Equal(t, "writes-per-user", l.Rule)
	assert.Greater(t, l.RetryAfter, 20*time.Minute)
	_, ok = p.Take(bob, call("write_a"))
	assert.True(t, ok, "each user has a bucket of their own")
	_, ok = p.Take(alice, call("read"))
	assert.True(t, ok, "what no limit names is not limited")

	_, ok = p.Take(alice, call("search"))
	require.True(t, ok)
	l, ok = p.Take(bob, call("search"))
	assert.False(t, ok, "a per-tool bucket is shared by all users")
	assert.Equal(t, "search-per-tool", l.Rule)
}

func TestSourceKeepsTheLastGoodPolicy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(s string) { require.NoError(t, os.WriteFile(file, []byte(s), 0o600)) }
	write("version: 1\ndefault: allow\n")
	var reloads []bool
	s, err := Open(file, nil, func(ok bool) { reloads = append(reloads, ok) })
	require.NoError(t, err)
	assert.Equal(t, Allow, s.Current().Decide(&Caller{}, call("x")).Effect)

	write("version: 1\ndefault: deny\n")
	s.Reload()
	assert.Equal(t, Deny, s.Current().Decide(&Caller{}, call("x")).Effect)

	write("version: 1\ndefault: deny\nrules:\n  - name: broken\n    when: nope\n    effect: allow\n")
	s.Reload()
	assert.Equal(t, Deny, s.Current().Decide(&Caller{}, call("x")).Effect, "a policy that does not load changes nothing")
	s.Reload() // the same broken content: not reported twice
	assert.Equal(t, []bool{true, false}, reloads)

	_, err = Open(filepath.Join(t.TempDir(), "none.yaml"), nil, nil)
	assert.Error(t, err)
	write("version: 1\ndefault: deny\nrules:\n  - name: broken\n    when: nope\n    effect: allow\n")
	_, err = Open(file, nil, nil)
	assert.ErrorContains(t, err, `rule "broken" at line 4`)
}

func TestReloadKeepsTheBucketsOfUnchangedLimits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	write := func(s string) { require.NoError(t, os.WriteFile(file, []byte(s), 0o600)) }
	const limits = "limits:\n  - {name: writes, tools: [\"write\"], rate: 1/h}\n  - {name: reads, tools: [\"read\"], rate: 1/h}\n"
	write("version: 1\ndefault: allow\n" + limits)
	s, err := Open(file, nil, nil)
	require.NoError(t, err)
	alice := &Caller{ID: "alice"}
	for _, tool := range []string{"write", "read"} {
		_, ok := s.Current().Take(alice, call(tool))
		require.True(t, ok)
		_, ok = s.Current().Take(alice, call(tool))
		require.False(t, ok)
	}

	// A rule added above them moves their lines; the reads limit alone is rewritten.
	write("version: 1\ndefault: allow\nrules:\n  - {name: hide, tools: [\"secret\"], effect: deny}\n" +
		strings.Replace(limits, "tools: [\"read\"], rate: 1/h", "tools: [\"read\"], rate: 2/h", 1))
	s.Reload()
	require.Equal(t, Deny, s.Current().Decide(alice, call("secret")).Effect, "the new file is in force")
	l, ok := s.Current().Take(alice, call("write"))
	assert.False(t, ok, "an unchanged limit keeps its buckets: editing the file gives nobody a full one")
	assert.Equal(t, "writes", l.Rule)
	_, ok = s.Current().Take(alice, call("read"))
	assert.True(t, ok, "a changed limit starts with full buckets")
}

// fiftyRules is a policy of 50 rules in which the request below is decided by the last: the worst case of a first
// match, with globs, caller conditions and an expression on the arguments on the way.
func fiftyRules() string {
	var b strings.Builder
	b.WriteString("version: 1\ndefault: deny\nrules:\n")
	for i := range 49 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&b, "  - {name: r%d, tools: [\"tool_%d_*\"], groups: [g%d], effect: allow}\n", i, i, i)
		case 1:
			fmt.Fprintf(&b, "  - {name: r%d, tools: [\"*\"], when: 'request.arguments.n == %d', effect: deny}\n", i, i)
		default:
			fmt.Fprintf(&b, "  - {name: r%d, resources: [\"file:///r%d/\"], users: [u%d], effect: allow}\n", i, i, i)
		}
	}
	b.WriteString("  - {name: last, tools: [\"write_*\"], groups: [team], scopes: [mcp], effect: allow}\n")
	return b.String()
}

func TestFiftyRules(t *testing.T) {
	p := mustParse(t, fiftyRules())
	assert.Equal(t, Decision{Effect: Allow, Rule: "last"}, p.Decide(benchCaller, benchRequest))
}

var (
	benchCaller  = &Caller{ID: "1", Login: "alice", Scopes: []string{"mcp"}, Groups: []string{"team", "dev"}}
	benchRequest = &Request{Method: "tools/call", Name: "write_file", Arguments: json.RawMessage(`{"n":1000,"path":"/tmp/a"}`)}
)

// The shortcut for globs of the form prefix* agrees with path.Match.
func TestStarGlobsAgreeWithPathMatch(t *testing.T) {
	for _, g := range []string{"get_*", "*", "file:///tmp/*", "a\\*", "a*b*", "x?*"} {
		p := compilePatterns([]string{g})[0]
		for _, s := range []string{"", "get_", "get_x", "get_x/y", "got_x", "file:///tmp/a", "file:///tmp/a/b", "a*", "ab", "a/b", "xy"} {
			want, _ := path.Match(g, s)
			assert.Equal(t, want, p.globMatches(s), "%q against %q", g, s)
		}
	}
}

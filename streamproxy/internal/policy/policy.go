// Package policy decides who may use which tool, prompt and resource of one MCP server: a policy file of rules
// (first match wins, then a default) and rate limits, loaded and type-checked once (file.go), evaluated per request
// (here), kept current while the file changes (source.go). The transport only asks it: Decide for a call or a list
// item, Take for a rate limit. No policy file means no Policy, and everything is allowed as before.
package policy

import (
	"context"
	"encoding/json"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
)

// Effect is what a decision says about a request.
type Effect string

const (
	Allow  Effect = "allow"
	Deny   Effect = "deny"
	StepUp Effect = "step_up" // allowed once the token also carries Decision.Scopes
)

// DefaultRule is the rule name of a decision no rule made.
const DefaultRule = "default"

// Decision is the outcome of one evaluation, small enough to be recorded as it is: the effect, the rule that decided
// (DefaultRule when none matched) and, for StepUp, the scopes that rule needs.
type Decision struct {
	Effect Effect
	Rule   string
	Scopes []string
}

// Caller is who asks, as the gateway vouched for them in its identity headers.
type Caller struct {
	ID       string
	Login    string
	Email    string // verified, or empty
	ClientID string
	Scopes   []string
	Groups   []string
}

// Request is what is asked: the method, the tool or prompt name or the resource URI it names, and a tool's
// arguments (nil for a list item, which is decided as a call without arguments).
type Request struct {
	Method    string
	Name      string
	URI       string
	Arguments json.RawMessage
}

// The kinds of thing a rule names, and the methods that use each.
const (
	kindTool     = "tool"
	kindPrompt   = "prompt"
	kindResource = "resource"
)

var methodKinds = map[string]string{
	"tools/call":            kindTool,
	"prompts/get":           kindPrompt,
	"resources/read":        kindResource,
	"resources/subscribe":   kindResource,
	"resources/unsubscribe": kindResource,
}

// Governs reports whether a method is decided by the policy: the methods that use a tool, a prompt or a resource.
func Governs(method string) bool {
	_, ok := methodKinds[method]
	return ok
}

// Policy is one loaded policy file. It is safe for concurrent use; its rate limit buckets live as long as it does.
type Policy struct {
	defaultEffect Effect
	rules         []*rule
	limits        []*limit
	log           *slog.Logger
}

// rule is one rule of the file, compiled.
type rule struct {
	name   string
	effect Effect
	scopes []string // an allow rule's required scopes: a caller without them gets StepUp
	match  matcher
}

// matcher is what a rule or a limit matches: a target (tool, prompt, resource) and conditions on the caller.
type matcher struct {
	tools, prompts, resources []pattern
	anyTarget                 bool // no target given: every governed request
	users, logins, emails     []string
	emailDomains, groups      []string
	clients                   []string
	when                      cel.Program // nil: no expression
}

// Decide evaluates the rules in order for a request; the first that matches decides, else the default.
func (p *Policy) Decide(c *Caller, r *Request) Decision {
	v := vars{caller: c, request: r}
	for _, ru := range p.rules {
		ok, err := ru.match.matches(c, r, &v)
		if err != nil {
			// Fail closed: an expression that cannot be evaluated for this request never lets it through. A list
			// item has no arguments to evaluate, which is no news at every list.
			level := slog.LevelWarn
			if r.Arguments == nil {
				level = slog.LevelDebug
			}
			p.log.Log(context.Background(), level, "policy rule could not be evaluated: denied", "rule", ru.name,
				"method", r.Method, "name", r.Name, "uri", r.URI, "err", err)
			return Decision{Effect: Deny, Rule: ru.name}
		}
		if !ok {
			continue
		}
		if ru.effect == Allow && !hasAll(c.Scopes, ru.scopes) {
			return Decision{Effect: StepUp, Rule: ru.name, Scopes: ru.scopes}
		}
		return Decision{Effect: ru.effect, Rule: ru.name}
	}
	return Decision{Effect: p.defaultEffect, Rule: DefaultRule}
}

// ChallengeScopes are the scopes a step-up challenge asks for: the caller's and the needed ones, sorted, each once.
func ChallengeScopes(c *Caller, d Decision) []string {
	all := append(slices.Clone(c.Scopes), d.Scopes...)
	slices.Sort(all)
	return slices.Compact(all)
}

func (m *matcher) matches(c *Caller, r *Request, v *vars) (bool, error) {
	if !m.targets(r) || !m.callerMatches(c) {
		return false, nil
	}
	if m.when == nil {
		return true, nil
	}
	out, _, err := m.when.Eval(v)
	if err != nil {
		return false, err
	}
	b, _ := out.Value().(bool) // the type checker made it a bool
	return b, nil
}

func (m *matcher) targets(r *Request) bool {
	if m.anyTarget {
		return true
	}
	switch methodKinds[r.Method] {
	case kindTool:
		return matchName(m.tools, r.Name)
	case kindPrompt:
		return matchName(m.prompts, r.Name)
	case kindResource:
		return matchURI(m.resources, r.URI)
	}
	return false
}

// callerMatches holds when every condition given holds: one of its values each.
func (m *matcher) callerMatches(c *Caller) bool {
	if len(m.users) > 0 && !slices.Contains(m.users, c.ID) {
		return false
	}
	if len(m.logins) > 0 && !containsFold(m.logins, c.Login) {
		return false
	}
	if len(m.emails) > 0 && (c.Email == "" || !containsFold(m.emails, c.Email)) {
		return false
	}
	if len(m.emailDomains) > 0 {
		at := strings.LastIndexByte(c.Email, '@')
		if at < 0 || !containsFold(m.emailDomains, c.Email[at+1:]) {
			return false
		}
	}
	if len(m.groups) > 0 && !slices.ContainsFunc(m.groups, func(g string) bool { return slices.Contains(c.Groups, g) }) {
		return false
	}
	if len(m.clients) > 0 && !slices.Contains(m.clients, c.ClientID) {
		return false
	}
	return true
}

// pattern is a tool or prompt name (exact or a glob) or a resource URI (a prefix or a glob), told apart once at load.
type pattern struct {
	text string
	glob bool // path.Match: * and ? stop at /
	// star: the glob is text and one * after it, the commonest kind (get_*), matched without path.Match
	star bool
}

func compilePatterns(texts []string) []pattern {
	out := make([]pattern, len(texts))
	for i, t := range texts {
		p := pattern{text: t, glob: strings.ContainsAny(t, `*?[\`)}
		if prefix, ok := strings.CutSuffix(t, "*"); ok && !strings.ContainsAny(prefix, `*?[\`) {
			p.text, p.star = prefix, true
		}
		out[i] = p
	}
	return out
}

// globMatches matches a glob pattern as path.Match does.
func (p pattern) globMatches(s string) bool {
	if p.star {
		rest, ok := strings.CutPrefix(s, p.text)
		return ok && !strings.Contains(rest, "/")
	}
	ok, _ := path.Match(p.text, s)
	return ok
}

// matchName matches a tool or prompt name: equal to a pattern without glob characters, or matched by a glob.
func matchName(patterns []pattern, name string) bool {
	for _, p := range patterns {
		if p.glob && p.globMatches(name) || !p.glob && p.text == name {
			return true
		}
	}
	return false
}

// matchURI matches a resource URI: starting with a pattern without glob characters, or matched by a glob.
func matchURI(patterns []pattern, uri string) bool {
	for _, p := range patterns {
		if p.glob && p.globMatches(uri) || !p.glob && strings.HasPrefix(uri, p.text) {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(v string) bool { return strings.EqualFold(v, s) })
}

func hasAll(have, need []string) bool {
	for _, n := range need {
		if !slices.Contains(have, n) {
			return false
		}
	}
	return true
}

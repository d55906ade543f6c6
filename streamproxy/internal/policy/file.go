package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/google/cel-go/cel"
	"go.yaml.in/yaml/v3"
)

// The policy file (docs/policy.md):
//
//	version: 1
//	default: allow | deny
//	rules:  [{name, <match>, scopes, effect}]
//	limits: [{name, <match>, rate, burst, per}]
//	<match>: tools, prompts, resources, users, logins, emails, email_domains, groups, clients, when
//
// Every mistake stops the load with an error that names the rule and its line.

type fileSpec struct {
	Version int         `yaml:"version"`
	Default string      `yaml:"default"`
	Rules   []ruleSpec  `yaml:"rules"`
	Limits  []limitSpec `yaml:"limits"`
}

type matchSpec struct {
	Tools        []string `yaml:"tools"`
	Prompts      []string `yaml:"prompts"`
	Resources    []string `yaml:"resources"`
	Users        []string `yaml:"users"`
	Logins       []string `yaml:"logins"`
	Emails       []string `yaml:"emails"`
	EmailDomains []string `yaml:"email_domains"`
	Groups       []string `yaml:"groups"`
	Clients      []string `yaml:"clients"`
	When         string   `yaml:"when"`
}

var matchKeys = []string{"name", "tools", "prompts", "resources", "users", "logins", "emails", "email_domains", "groups", "clients", "when"}

type ruleSpec struct {
	Name      string `yaml:"name"`
	matchSpec `yaml:",inline"`
	Scopes    []string `yaml:"scopes"`
	Effect    string   `yaml:"effect"`
	line      int
}

func (r *ruleSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ruleSpec
	r.line = n.Line
	if err := knownKeys(n, append(slices.Clone(matchKeys), "scopes", "effect")); err != nil {
		return err
	}
	return n.Decode((*plain)(r))
}

type limitSpec struct {
	Name      string `yaml:"name"`
	matchSpec `yaml:",inline"`
	Rate      string   `yaml:"rate"`
	Burst     int      `yaml:"burst"`
	Per       []string `yaml:"per"`
	line      int
}

func (l *limitSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain limitSpec
	l.line = n.Line
	if err := knownKeys(n, append(slices.Clone(matchKeys), "rate", "burst", "per")); err != nil {
		return err
	}
	return n.Decode((*plain)(l))
}

// knownKeys refuses a mapping with a key it does not know: a misspelt condition must not widen a rule in silence.
func knownKeys(n *yaml.Node, known []string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a rule or limit is a mapping", n.Line)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: unknown key %q (known: %s)", k.Line, k.Value, strings.Join(known, ", "))
		}
	}
	return nil
}

// Parse reads and compiles a policy file; log takes warnings met while it is in use. The error names the rule or
// limit at fault and its line.
func Parse(data []byte, log *slog.Logger) (*Policy, error) {
	if log == nil {
		log = slog.Default()
	}
	var f fileSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the policy file is empty")
		}
		return nil, err
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("version %d: this streamproxy reads version 1 (say \"version: 1\")", f.Version)
	}
	p := &Policy{log: log}
	switch f.Default {
	case "allow", "deny":
		p.defaultEffect = Effect(f.Default)
	default:
		return nil, fmt.Errorf("default %q: say \"default: allow\" or \"default: deny\"", f.Default)
	}
	env, err := newCELEnv()
	if err != nil {
		return nil, fmt.Errorf("CEL environment: %w", err)
	}
	names := map[string]int{DefaultRule: 0}
	named := func(kind, name string, line int) error {
		if name == "" {
			return fmt.Errorf("%s at line %d has no name (names appear in denials, logs and metrics)", kind, line)
		}
		if strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") != "" {
			// Names go into challenges' error_description, a quoted string, and into metric labels.
			return fmt.Errorf("%s %q at line %d: a name is letters, digits and . _ : - only", kind, name, line)
		}
		if first, taken := names[name]; taken {
			if name == DefaultRule {
				return fmt.Errorf("%s %q at line %d: %q names the default's decisions", kind, name, line, DefaultRule)
			}
			return fmt.Errorf("%s %q at line %d: the name is taken by line %d", kind, name, line, first)
		}
		names[name] = line
		return nil
	}
	for _, rs := range f.Rules {
		if err := named("rule", rs.Name, rs.line); err != nil {
			return nil, err
		}
		ru, err := compileRule(env, rs)
		if err != nil {
			return nil, fmt.Errorf("rule %q at line %d: %w", rs.Name, rs.line, err)
		}
		p.rules = append(p.rules, ru)
	}
	for _, ls := range f.Limits {
		if err := named("limit", ls.Name, ls.line); err != nil {
			return nil, err
		}
		l, err := compileLimit(env, ls)
		if err != nil {
			return nil, fmt.Errorf("limit %q at line %d: %w", ls.Name, ls.line, err)
		}
		p.limits = append(p.limits, l)
	}
	return p, nil
}

func compileRule(env *cel.Env, rs ruleSpec) (*rule, error) {
	ru := &rule{name: rs.Name, scopes: rs.Scopes}
	switch rs.Effect {
	case "allow", "deny":
		ru.effect = Effect(rs.Effect)
	default:
		return nil, fmt.Errorf("effect %q: say \"effect: allow\" or \"effect: deny\"", rs.Effect)
	}
	if ru.effect == Deny && len(rs.Scopes) > 0 {
		return nil, errors.New("scopes are what an allow rule requires (a caller without them is asked to step up); to deny by scope, say when: '\"s\" in caller.scopes'")
	}
	for _, s := range rs.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			return nil, fmt.Errorf("scope %q: a scope is one token without spaces, quotes or backslashes", s)
		}
	}
	m, err := compileMatch(env, rs.matchSpec)
	if err != nil {
		return nil, err
	}
	ru.match = m
	return ru, nil
}

func compileMatch(env *cel.Env, ms matchSpec) (matcher, error) {
	m := matcher{tools: compilePatterns(ms.Tools), prompts: compilePatterns(ms.Prompts),
		resources: compilePatterns(ms.Resources), users: ms.Users, logins: ms.Logins,
		emails: ms.Emails, emailDomains: ms.EmailDomains, groups: ms.Groups, clients: ms.Clients}
	m.anyTarget = len(ms.Tools) == 0 && len(ms.Prompts) == 0 && len(ms.Resources) == 0
	for _, g := range slices.Concat(ms.Tools, ms.Prompts, ms.Resources) {
		if g == "" {
			return m, errors.New("an empty pattern matches nothing: remove it")
		}
		if _, err := path.Match(g, ""); err != nil {
			return m, fmt.Errorf("pattern %q: %w", g, err)
		}
	}
	for _, d := range ms.EmailDomains {
		if strings.Contains(d, "@") {
			return m, fmt.Errorf("email domain %q: give the domain alone, without @", d)
		}
	}
	if ms.When != "" {
		prg, err := compileWhen(env, ms.When)
		if err != nil {
			return m, fmt.Errorf("when: %w", err)
		}
		m.when = prg
	}
	return m, nil
}

package oidc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

// Policy is who may log in through one OpenID provider. A user is allowed by any one rule; the zero Policy allows
// nobody.
//
//   - Subjects: exact sub values as the provider issues them (case-sensitive), or "*" for anyone the provider
//     authenticates.
//   - Emails: addresses (case-insensitive), matched only when the provider says the address is verified.
//   - Domains: the domain of a verified address, exactly (example.com does not admit sub.example.com).
//   - Groups: values of the groups claim (Config.GroupsClaim: groups, roles, hd, ...), exactly.
type Policy struct{ Subjects, Emails, Domains, Groups []string }

// ParsePolicy reads the four comma-separated lists. Entries are trimmed, empty ones and duplicates dropped; e-mail
// addresses and domains are lower-cased, subjects and groups are kept as they are (providers compare them exactly).
// A malformed entry is an error naming it.
func ParsePolicy(subjects, emails, domains, groups string) (Policy, error) {
	var p Policy
	for _, s := range flagenv.Split(subjects) {
		if s == "*" {
			p.Subjects = []string{"*"}
			continue
		}
		if len(s) > 255 {
			return Policy{}, fmt.Errorf("allowed subjects: %q is longer than 255 characters, the most a sub may be", s[:40]+"...")
		}
		if !slices.Contains(p.Subjects, "*") {
			p.Subjects = appendNew(p.Subjects, s)
		}
	}
	for _, e := range flagenv.Split(emails) {
		e = strings.ToLower(e)
		local, domain, ok := strings.Cut(e, "@")
		if !ok || local == "" || !validDomain(domain) {
			return Policy{}, fmt.Errorf("allowed emails: %q is not an e-mail address (name@example.com)", e)
		}
		p.Emails = appendNew(p.Emails, e)
	}
	for _, d := range flagenv.Split(domains) {
		d = strings.ToLower(strings.TrimPrefix(d, "@"))
		if !validDomain(d) {
			return Policy{}, fmt.Errorf("allowed email domains: %q is not a domain name (example.com)", d)
		}
		p.Domains = appendNew(p.Domains, d)
	}
	for _, g := range flagenv.Split(groups) {
		p.Groups = appendNew(p.Groups, g)
	}
	return p, nil
}

func appendNew(l []string, s string) []string {
	if slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 || !strings.Contains(d, ".") || strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Empty reports whether the policy allows nobody.
func (p Policy) Empty() bool {
	return len(p.Subjects) == 0 && len(p.Emails) == 0 && len(p.Domains) == 0 && len(p.Groups) == 0
}

// identity is what the rules look at: the provider's sub, the address only if verified, the groups claim.
type identity struct {
	sub, verifiedEmail string
	groups             []string
}

// allows applies the rules.
func (p Policy) allows(id identity) bool {
	if slices.Contains(p.Subjects, "*") || slices.Contains(p.Subjects, id.sub) {
		return true
	}
	if id.verifiedEmail != "" {
		email := strings.ToLower(id.verifiedEmail)
		if slices.Contains(p.Emails, email) {
			return true
		}
		if i := strings.LastIndexByte(email, '@'); i >= 0 && slices.Contains(p.Domains, email[i+1:]) {
			return true
		}
	}
	for _, g := range id.groups {
		if slices.Contains(p.Groups, g) {
			return true
		}
	}
	return false
}

// MayRefresh is the check at token refresh, where only what was recorded at login is at hand (the sub and the
// verified address): the subject, e-mail and domain rules are checked again, and a policy with groups keeps
// admitting users it admitted at login, since groups can only be read by logging in again (every grant ends at
// --grant-max-age for that).
func (p Policy) MayRefresh(sub, verifiedEmail string) bool {
	return p.allows(identity{sub: sub, verifiedEmail: verifiedEmail}) || len(p.Groups) > 0
}

// String describes the policy for the start-up log (it holds no secret).
func (p Policy) String() string {
	if p.Empty() {
		return "nobody (no allowed subjects, emails, email domains or groups configured)"
	}
	var parts []string
	for _, r := range []struct {
		name string
		l    []string
	}{{"subjects", p.Subjects}, {"emails", p.Emails}, {"domains", p.Domains}, {"groups", p.Groups}} {
		if len(r.l) > 0 {
			parts = append(parts, r.name+"="+strings.Join(r.l, ","))
		}
	}
	return strings.Join(parts, " ")
}

package github

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Policy is who may log in: listed users (or "*"), members of listed organizations, members of listed teams
// ("org/team-slug"). Entries are lower case: GitHub logins, organization names and team slugs are case-insensitive.
// The zero Policy admits nobody.
type Policy struct{ Users, Orgs, Teams []string }

// Names GitHub accepts. Logins are letters, digits and hyphens; Enterprise Managed Users add "_shortcode", so the
// underscore is allowed too. Team slugs are GitHub's lower-case form of the team name.
var (
	namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
)

const maxNameLen = 100

// ParsePolicy reads comma lists (users, organizations, "org/team" teams). Entries are trimmed and lower-cased, empty
// entries and duplicates are dropped, and a malformed entry is an error naming it. users may be "*" (any GitHub user).
// All three empty is valid and admits nobody (see Policy.Empty).
func ParsePolicy(users, orgs, teams string) (Policy, error) {
	var p Policy
	for _, u := range splitList(users) {
		if u == "*" {
			p.Users = []string{"*"}
			continue
		}
		if !validName(u) {
			return Policy{}, fmt.Errorf("allowed GitHub users: %q is not a GitHub login (letters, digits, hyphens) or *", u)
		}
		if !slices.Contains(p.Users, "*") && !slices.Contains(p.Users, u) {
			p.Users = append(p.Users, u)
		}
	}
	for _, o := range splitList(orgs) {
		if !validName(o) {
			return Policy{}, fmt.Errorf("allowed GitHub organizations: %q is not a GitHub organization name", o)
		}
		if !slices.Contains(p.Orgs, o) {
			p.Orgs = append(p.Orgs, o)
		}
	}
	for _, t := range splitList(teams) {
		org, slug, ok := strings.Cut(t, "/")
		if !ok || !validName(org) || len(slug) > maxNameLen || !slugPattern.MatchString(slug) {
			return Policy{}, fmt.Errorf("allowed GitHub teams: %q is not of the form org/team-slug (e.g. my-org/platform-team)", t)
		}
		if !slices.Contains(p.Teams, t) {
			p.Teams = append(p.Teams, t)
		}
	}
	return p, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.ToLower(strings.TrimSpace(part)); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func validName(s string) bool { return len(s) <= maxNameLen && namePattern.MatchString(s) }

// Empty reports whether the policy admits nobody; the server should say so at start.
func (p Policy) Empty() bool { return len(p.Users) == 0 && len(p.Orgs) == 0 && len(p.Teams) == 0 }

// NeedsMembership reports whether the policy names organizations or teams, which Login checks on GitHub (and which
// need the read:org scope).
func (p Policy) NeedsMembership() bool { return len(p.Orgs) > 0 || len(p.Teams) > 0 }

// AllowsLogin reports whether the user list alone admits login (case-insensitive; "*" admits anyone). It needs no
// call to GitHub, so it can be re-checked at token refresh.
func (p Policy) AllowsLogin(login string) bool {
	login = strings.ToLower(strings.TrimSpace(login))
	if login == "" {
		return false
	}
	for _, u := range p.Users {
		if u == "*" || u == login {
			return true
		}
	}
	return false
}

// MayRefresh is the check for token refresh, where no GitHub token is at hand: the user list is re-checked, and a
// policy with organizations or teams keeps admitting users it admitted at login, since membership can only be
// verified by logging in again.
func (p Policy) MayRefresh(login string) bool { return p.AllowsLogin(login) || p.NeedsMembership() }

// String describes the policy for the start-up log (it holds no secret).
func (p Policy) String() string {
	if p.Empty() {
		return "nobody (no allowed users, organizations or teams configured)"
	}
	var parts []string
	if len(p.Users) > 0 {
		parts = append(parts, "users="+strings.Join(p.Users, ","))
	}
	if len(p.Orgs) > 0 {
		parts = append(parts, "orgs="+strings.Join(p.Orgs, ","))
	}
	if len(p.Teams) > 0 {
		parts = append(parts, "teams="+strings.Join(p.Teams, ","))
	}
	return strings.Join(parts, " ")
}

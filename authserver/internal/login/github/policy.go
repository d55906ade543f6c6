package github

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

// Policy is who may log in: listed users (or "*"), members of listed organizations, members of listed teams
// ("org/team-slug"). Entries are lower case: GitHub logins, organization names and team slugs are case-insensitive.
// A user entry is a login or "id:<numeric GitHub id>" (UserIDs). The zero Policy admits nobody.
//
// A login names whoever holds it today, and GitHub logins change hands (a renamed or deleted account frees its
// login). So the Provider pins each listed login to the account it first admits under it (LoginPins) and refuses
// any other account that later holds that login; an id entry names one account for good.
type Policy struct{ Users, UserIDs, Orgs, Teams []string }

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
	for _, u := range flagenv.Split(strings.ToLower(users)) {
		if u == "*" {
			p.Users = []string{"*"}
			continue
		}
		if id, ok := strings.CutPrefix(u, "id:"); ok {
			if !validID(id) {
				return Policy{}, fmt.Errorf("allowed GitHub users: %q is not id:<numeric GitHub user id>, e.g. id:583231", u)
			}
			if !slices.Contains(p.UserIDs, id) {
				p.UserIDs = append(p.UserIDs, id)
			}
			continue
		}
		if !validName(u) {
			return Policy{}, fmt.Errorf("allowed GitHub users: %q is not a GitHub login (letters, digits, hyphens) or *", u)
		}
		if !slices.Contains(p.Users, "*") && !slices.Contains(p.Users, u) {
			p.Users = append(p.Users, u)
		}
	}
	for _, o := range flagenv.Split(strings.ToLower(orgs)) {
		if !validName(o) {
			return Policy{}, fmt.Errorf("allowed GitHub organizations: %q is not a GitHub organization name", o)
		}
		if !slices.Contains(p.Orgs, o) {
			p.Orgs = append(p.Orgs, o)
		}
	}
	for _, t := range flagenv.Split(strings.ToLower(teams)) {
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

func validName(s string) bool { return len(s) <= maxNameLen && namePattern.MatchString(s) }

func validID(s string) bool {
	if s == "" || len(s) > 20 || s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Empty reports whether the policy admits nobody; the server should say so at start.
func (p Policy) Empty() bool {
	return len(p.Users) == 0 && len(p.UserIDs) == 0 && len(p.Orgs) == 0 && len(p.Teams) == 0
}

// AllowsID reports whether the account with this numeric id is listed by id.
func (p Policy) AllowsID(id string) bool { return id != "" && slices.Contains(p.UserIDs, id) }

// AllowsAnyone reports whether the user list is "*".
func (p Policy) AllowsAnyone() bool { return slices.Contains(p.Users, "*") }

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

// MayRefresh is the check for token refresh, where no GitHub token is at hand: the user list is re-checked (the
// account's id, or the login it had at login time, which was then checked against its pin), and a policy with
// organizations or teams keeps admitting users it admitted at login, since membership can only be verified by
// logging in again (grants end at their maximum age for that).
func (p Policy) MayRefresh(id, login string) bool {
	return p.AllowsID(id) || p.AllowsLogin(login) || p.NeedsMembership()
}

// String describes the policy for the start-up log (it holds no secret).
func (p Policy) String() string {
	if p.Empty() {
		return "nobody (no allowed users, organizations or teams configured)"
	}
	var parts []string
	if len(p.Users) > 0 {
		parts = append(parts, "users="+strings.Join(p.Users, ","))
	}
	if len(p.UserIDs) > 0 {
		parts = append(parts, "user_ids="+strings.Join(p.UserIDs, ","))
	}
	if len(p.Orgs) > 0 {
		parts = append(parts, "orgs="+strings.Join(p.Orgs, ","))
	}
	if len(p.Teams) > 0 {
		parts = append(parts, "teams="+strings.Join(p.Teams, ","))
	}
	return strings.Join(parts, " ")
}

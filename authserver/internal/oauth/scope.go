package oauth

import (
	"slices"
	"strings"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Scopes follow RFC 6749 §3.3, read tolerantly, because real clients send scope strings a strict server would
// refuse (Claude.ai has been seen sending stray whitespace, scopes the server never listed, and every scope of the
// metadata) and a refusal ends the user's connection attempt:
//
//   - any run of whitespace separates scopes, leading and trailing whitespace is ignored, repeats count once;
//   - scopes this server does not offer, or that the client did not register, are left out of the grant instead of
//     failing the request; the token response's scope says what was granted, and the consent page shows both;
//   - offline_access (OpenID Connect Core §11, which MCP clients use) is understood: it is granted to clients
//     registered for the refresh_token grant, which get refresh tokens whether or not they ask for it;
//   - a request that names no scope this server grants, including one naming none at all, gets the default: the
//     client's registered scope, else the server's first scope (the one MCP access needs), as RFC 6749 §3.3 allows
//     ("process the request using a pre-defined default value").
//
// Nothing is ever granted beyond what the client could get by asking exactly: the tolerance only turns refusals
// into narrower grants.

// offlineAccess is the scope that asks for refresh tokens.
const offlineAccess = "offline_access"

// scopesSupported is what the metadata advertises: the configured scopes and offline_access.
func (s *Server) scopesSupported() []string {
	if slices.Contains(s.cfg.Scopes, offlineAccess) {
		return s.cfg.Scopes
	}
	return append(slices.Clone(s.cfg.Scopes), offlineAccess)
}

// grantScope reads a requested scope string for client c and returns the scope granted and the scopes left out
// (each space separated, sorted).
func (s *Server) grantScope(raw string, c *store.Client) (granted, ignored string) {
	allowed, defaults := s.cfg.Scopes, s.cfg.Scopes[:1]
	if c.Scope != "" {
		allowed = strings.Fields(c.Scope)
		defaults = allowed
	}
	refreshes := slices.Contains(c.GrantTypes, "refresh_token")
	grantable := func(sc string) bool {
		if sc == offlineAccess {
			return refreshes
		}
		return slices.Contains(allowed, sc)
	}
	var got, left []string
	for _, sc := range strings.Fields(raw) {
		if grantable(sc) {
			got = append(got, sc)
		} else {
			left = append(left, sc)
		}
	}
	if !slices.ContainsFunc(got, func(sc string) bool { return sc != offlineAccess }) {
		for _, sc := range defaults {
			if sc != offlineAccess && grantable(sc) {
				got = append(got, sc)
			}
		}
	}
	return joinScopes(got), joinScopes(left)
}

// narrowScope is the scope of a refresh that asks for requested (RFC 6749 §6): the part of the granted scope it
// names; never more than granted, and all of it when the request names nothing that was granted.
func narrowScope(granted, requested string) string {
	have := strings.Fields(granted)
	var keep []string
	for _, sc := range strings.Fields(requested) {
		if slices.Contains(have, sc) {
			keep = append(keep, sc)
		}
	}
	if len(keep) == 0 {
		return granted
	}
	return joinScopes(keep)
}

// registeredScope is the scope a registration keeps (RFC 7591 §2 lets the server replace the requested value):
// the requested scopes this server offers; empty (the server's default applies) when that leaves no scope other
// than offline_access.
func (s *Server) registeredScope(requested string) string {
	var keep []string
	for _, sc := range strings.Fields(requested) {
		if slices.Contains(s.scopesSupported(), sc) {
			keep = append(keep, sc)
		}
	}
	if !slices.ContainsFunc(keep, func(sc string) bool { return sc != offlineAccess }) {
		return ""
	}
	return joinScopes(keep)
}

func joinScopes(scopes []string) string {
	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	return strings.Join(slices.Compact(scopes), " ")
}

// scopeDescriptions says, for the consent page, what each granted scope lets the application do.
func scopeDescriptions(scope string) []scopeLine {
	var out []scopeLine
	for _, sc := range strings.Fields(scope) {
		line := scopeLine{Name: sc}
		switch sc {
		case "mcp":
			line.Text = "use this MCP server's tools, resources and prompts as you"
		case offlineAccess:
			line.Text = "stay connected: renew its access without asking you again, until you or the operator revoke it"
		}
		out = append(out, line)
	}
	return out
}

type scopeLine struct{ Name, Text string }

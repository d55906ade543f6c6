package oauth

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Scopes follow RFC 6749 §3.3, read tolerantly, because real clients send scope strings a strict server would
// refuse (Claude.ai has been seen sending stray whitespace, scopes the server never listed, and every scope of the
// metadata) and a refusal ends the user's connection attempt:
//
//   - any run of whitespace separates scopes, leading and trailing whitespace is ignored, repeats count once;
//   - scopes this server does not offer, or (for a client the operator registered) that the client did not register,
//     are left out of the grant instead of failing the request; the token response's scope says what was granted,
//     and the consent page shows both;
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
// (each space separated, sorted). A client the operator registered is held to its registered scope. A client that
// registered itself (or a metadata-document client) may ask for any offered scope: its registered scope is only its
// default, since anyone may register any scope, and a client asking for more later (step-up: the MCP server
// answered insufficient_scope) must be able to; the consent page shows the user every scope before it is granted.
func (s *Server) grantScope(raw string, c *store.Client) (granted, ignored string) {
	allowed, defaults := s.cfg.Scopes, s.cfg.Scopes[:1]
	if c.Scope != "" {
		defaults = strings.Fields(c.Scope)
		if operatorClient(c) {
			allowed = defaults
		}
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

// Built-in descriptions of the scopes every deployment has, for a scope the operator gave no description.
var builtinScopeText = map[string]string{
	"mcp":         "use this MCP server's tools, resources and prompts as you",
	offlineAccess: "stay connected: renew its access without asking you again, until you or the operator revoke it",
}

// scopeLines says, for the consent page, what each scope of scope lets the application do, and marks as new those
// the user has not approved for this application before (approved: a past approval's scope, "" if none).
func (s *Server) scopeLines(scope, approved string) []scopeLine {
	before := strings.Fields(approved)
	var out []scopeLine
	for _, sc := range strings.Fields(scope) {
		text, ok := s.cfg.ScopeDescriptions[sc]
		if !ok {
			text = builtinScopeText[sc]
		}
		out = append(out, scopeLine{Name: sc, Text: text, New: len(before) > 0 && !slices.Contains(before, sc)})
	}
	return out
}

type scopeLine struct {
	Name, Text string
	New        bool // not in what the user approved for this application before: asked for by a step-up
}

// CheckScopes checks the offered scopes (--scopes): at least one, each a scope-token of RFC 6749 §3.3 (printable
// ASCII without space, quote or backslash), none twice.
func CheckScopes(scopes []string) error {
	if len(scopes) == 0 {
		return errors.New("no scopes offered: give at least the one MCP access needs (e.g. mcp)")
	}
	for i, sc := range scopes {
		if strings.IndexFunc(sc, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' }) >= 0 {
			return fmt.Errorf("scope %q: a scope is printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)", sc)
		}
		if slices.Contains(scopes[:i], sc) {
			return fmt.Errorf("scope %q is offered twice", sc)
		}
	}
	return nil
}

// ParseScopeDescriptions reads --scope-descriptions: entries "scope=what it lets the application do" separated by
// semicolons or new lines (descriptions are sentences, which hold commas). Each scope must be offered and described
// once; a description is at most 200 characters of printable text.
func ParseScopeDescriptions(raw string, offered []string) (map[string]string, error) {
	out := map[string]string{}
	for _, entry := range strings.FieldsFunc(raw, func(r rune) bool { return r == ';' || r == '\n' }) {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		name, text, ok := strings.Cut(entry, "=")
		name, text = strings.TrimSpace(name), strings.TrimSpace(text)
		switch {
		case !ok || name == "" || text == "":
			return nil, fmt.Errorf("%q is not scope=description (e.g. everything:admin=read the server's environment)", entry)
		case !slices.Contains(offered, name) && name != offlineAccess:
			return nil, fmt.Errorf("scope %q has a description but is not offered (--scopes %s)", name, strings.Join(offered, ","))
		case utf8.RuneCountInString(text) > 200 || strings.IndexFunc(text, unicode.IsControl) >= 0:
			return nil, fmt.Errorf("the description of scope %q must be at most 200 characters of text on one line", name)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("scope %q is described twice", name)
		}
		out[name] = text
	}
	return out, nil
}

package oauth_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
)

// newGroupsEnv is an authorization server whose GitHub user octo is in the organizations acme, other and acme-secret
// (which hides its membership from the OAuth app) and the team acme/platform, with groups declared.
func newGroupsEnv(t *testing.T, b backendCase, groups ...string) *env {
	gh := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{{ID: 1001, Login: "octo", Orgs: []string{"acme", "other", "acme-secret"}, Teams: []string{"acme/platform"},
			Emails: []fakegithub.Email{{Email: "octo@example.com", Primary: true, Verified: true}}}},
		Apps:           []fakegithub.App{{ClientID: ghClient, ClientSecret: ghSecret}},
		RestrictedOrgs: []string{"acme-secret"},
	})
	st, r := b.open(t)
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, gh: gh, http: &http.Client{}, redis: r, groups: groups}
	e.start("octo")
	return e
}

// tokenGroups runs a whole authorization for a new public client and returns the access token's groups claim and
// the refresh token's successor's.
func (e *env) tokenGroups() (any, any) {
	client, p := e.publicClient(), newPKCE()
	status, tok, _ := e.tokenRequest(exchange(client, e.code(client, p), p), "", "")
	require.Equal(e.t, http.StatusOK, status, tok)
	_, claims := jtiOf(e.t, tok["access_token"].(string))
	status, tok, _ = e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
	require.Equal(e.t, http.StatusOK, status, tok)
	_, refreshed := jtiOf(e.t, tok["access_token"].(string))
	return claims["groups"], refreshed["groups"]
}

// GitHub organizations and teams the user is in become the token's groups claim, limited to the declared ones;
// a refresh keeps the groups read at login.
func TestGitHubGroupsClaim(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newGroupsEnv(t, b, "acme/platform", "acme", "acme/ops", "staff", "acme-secret")
			first, refreshed := e.tokenGroups()
			assert.Equal(t, []any{"acme", "acme/platform"}, first,
				"declared and a member: other is not declared, acme/ops not joined, acme-secret does not tell")
			assert.Equal(t, first, refreshed)
		})
	}
	e := newGroupsEnv(t, backends[0])
	first, _ := e.tokenGroups()
	assert.Nil(t, first, "nothing declared: no groups claim")
}

// An OpenID provider's groups claim becomes the token's groups claim, limited to the declared groups.
func TestOpenIDGroupsClaim(t *testing.T) {
	e := newOIDCEnv(t, backends[0], false, rules(t, "", "", "corp.example", ""))
	e.groups = []string{"staff", "admins"}
	e.start("octo")
	client, p := e.publicClient(), newPKCE()
	status, tok, _ := e.tokenRequest(exchange(client, e.codeVia(client, p, ""), p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	_, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, []any{"staff"}, claims["groups"], "alice is in staff and mcp-users; only staff is declared")
}

func TestParseGroups(t *testing.T) {
	g, err := login.ParseGroups(" acme, acme/platform ,,admins,acme")
	require.NoError(t, err)
	assert.Equal(t, []string{"acme", "acme/platform", "admins"}, g)
	for _, bad := range []string{"domain admins", "a\tb", "ops\u200e"} {
		_, err := login.ParseGroups("acme," + bad)
		assert.ErrorContains(t, err, "no whitespace or control characters", bad)
	}
}

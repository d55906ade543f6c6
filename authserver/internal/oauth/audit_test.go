package oauth_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// auditEnv is an env whose server writes its audit trail to the returned buffer.
func auditEnv(t *testing.T) (*env, *testenv.SyncBuffer, *audit.Logger) {
	e := newEnv(t, backends[0], "octo")
	var out testenv.SyncBuffer
	trail := audit.New(&out, nil, audit.Options{Service: "authserver", Log: quiet})
	e.tweak = func(cfg *oauth.Config) { cfg.Audit = trail }
	e.start("octo")
	return e, &out, trail
}

// events reads the trail written so far (after trail.Close, all of it).
func events(t *testing.T, out *testenv.SyncBuffer) []audit.Event {
	var evs []audit.Event
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var e audit.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), sc.Text())
		evs = append(evs, e)
	}
	return evs
}

// only returns the events named name with the given outcome.
func only(evs []audit.Event, name, outcome string) []audit.Event {
	var out []audit.Event
	for _, e := range evs {
		if e.Name == name && e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

// A scripted session (a registration, logins allowed and refused, consents approved, remembered and denied,
// tokens issued, refreshed, replayed and revoked, the client deleted) leaves one event for each, with the user, the
// client and the grant's scope and resource, and none of the secrets that went by: no token, code, verifier or
// client secret.
func TestAuditTrailOfASession(t *testing.T) {
	e, out, trail := auditEnv(t)
	var secrets []string // everything a reader of the trail must not find

	status, c := e.register(map[string]any{"client_name": "Audited", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	id, secret, regTok := c["client_id"].(string), c["client_secret"].(string), c["registration_access_token"].(string)
	secrets = append(secrets, secret, regTok)
	token := func(f url.Values) map[string]any {
		f.Set("client_secret", secret)
		_, body, _ := e.tokenRequest(f, "", "")
		return body
	}

	// Login, consent (remembered), code, tokens.
	p := newPKCE()
	o := e.browseAnswering(authQuery(id, p), "approve", true)
	require.NotNil(t, o.location, o.page)
	code := o.location.Query().Get("code")
	tok := token(exchange(id, code, p))
	require.Contains(t, tok, "access_token", tok)
	secrets = append(secrets, code, p.verifier, tok["access_token"].(string), tok["refresh_token"].(string))
	_, claims := jtiOf(t, tok["access_token"].(string))

	// The code again: refused, and its grant revoked.
	again := token(exchange(id, code, p))
	assert.Equal(t, "invalid_grant", again["error"])

	// A second login is approved from the remembered consent; its refresh token rotates, then is replayed.
	p2 := newPKCE()
	o = e.browse(authQuery(id, p2), "")
	require.NotNil(t, o.location, o.page)
	code2 := o.location.Query().Get("code")
	tok2 := token(exchange(id, code2, p2))
	rotated := token(refreshForm(id, tok2["refresh_token"].(string)))
	require.Contains(t, rotated, "access_token", rotated)
	replay := token(refreshForm(id, tok2["refresh_token"].(string)))
	assert.Equal(t, "invalid_grant", replay["error"])
	secrets = append(secrets, code2, p2.verifier, tok2["access_token"].(string), tok2["refresh_token"].(string),
		rotated["access_token"].(string), rotated["refresh_token"].(string))

	// A third grant, its access token revoked at /revoke.
	p3 := newPKCE()
	o = e.browse(authQuery(id, p3), "")
	require.NotNil(t, o.location, o.page)
	tok3 := token(exchange(id, o.location.Query().Get("code"), p3))
	secrets = append(secrets, o.location.Query().Get("code"), tok3["access_token"].(string), tok3["refresh_token"].(string))
	resp, err := e.http.PostForm(e.issuer+"/revoke", url.Values{"client_id": {id}, "client_secret": {secret},
		"token": {tok3["access_token"].(string)}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// A consent denied (asked again: prompt=consent), and a user the allow list refuses.
	o = e.browse(authQuery(id, newPKCE(), "prompt", "consent"), "deny")
	require.NotNil(t, o.location, o.page)
	require.NoError(t, e.gh.SetLogin("mallory"))
	o = e.browse(authQuery(id, newPKCE()), "approve")
	require.Equal(t, http.StatusForbidden, o.status)

	// The client deletes itself (RFC 7592).
	req, _ := http.NewRequest(http.MethodDelete, e.issuer+"/register/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+regTok)
	resp, err = e.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	require.NoError(t, trail.Close())
	evs := events(t, out)
	for _, ev := range evs {
		assert.Equal(t, audit.Version, ev.Version)
		assert.Equal(t, "authserver", ev.Service)
		assert.False(t, ev.Time.IsZero())
	}

	reg := only(evs, "client.registered", audit.OutcomeSuccess)
	if assert.Len(t, reg, 1) {
		assert.Equal(t, id, reg[0].ClientID)
		assert.Equal(t, "Audited", reg[0].ClientName)
	}
	logins := only(evs, "login", audit.OutcomeSuccess)
	if assert.Len(t, logins, 4, "four logins went through GitHub") {
		assert.Equal(t, "1001", logins[0].UserID)
		assert.Equal(t, "octo", logins[0].UserLogin)
		assert.Equal(t, "github", logins[0].Provider)
		assert.Equal(t, id, logins[0].ClientID)
	}
	refused := only(evs, "login", audit.OutcomeDenied)
	if assert.Len(t, refused, 1) {
		assert.Equal(t, "mallory", refused[0].UserLogin)
		assert.NotEmpty(t, refused[0].Reason)
	}
	granted := only(evs, "consent", audit.OutcomeSuccess)
	if assert.Len(t, granted, 3, "approved once, then remembered twice") {
		assert.Equal(t, "approved by the user", granted[0].Reason)
		assert.Equal(t, "remembered from an earlier approval", granted[1].Reason)
		assert.Equal(t, "mcp", granted[0].Scope)
		assert.Equal(t, resource, granted[0].Resource)
		assert.Equal(t, "1001", granted[0].UserID)
	}
	denied := only(evs, "consent", audit.OutcomeDenied)
	if assert.Len(t, denied, 1) {
		assert.Equal(t, "octo", denied[0].UserLogin)
		assert.Equal(t, "mcp", denied[0].Scope)
	}
	issued := only(evs, "token.issued", audit.OutcomeSuccess)
	if assert.Len(t, issued, 3) {
		assert.Equal(t, claims["jti"], issued[0].TokenID)
		assert.Equal(t, "authorization_code", issued[0].GrantType)
		assert.Equal(t, id, issued[0].ClientID)
		assert.Equal(t, "1001", issued[0].UserID)
		assert.Equal(t, resource, issued[0].Resource)
	}
	assert.Len(t, only(evs, "token.refreshed", audit.OutcomeSuccess), 1)
	revokedGrants := only(evs, "grant.revoked", audit.OutcomeSuccess)
	if assert.Len(t, revokedGrants, 2) {
		assert.Equal(t, "authorization code reused", revokedGrants[0].Reason)
		assert.Contains(t, revokedGrants[1].Reason, "refresh token replayed")
		assert.Equal(t, "octo", revokedGrants[1].UserLogin)
	}
	assert.Len(t, only(evs, "token.refused", audit.OutcomeDenied), 2, "the reused code and the replayed refresh token")
	if rv := only(evs, "token.revoked", audit.OutcomeSuccess); assert.Len(t, rv, 1) {
		assert.Equal(t, "access token", rv[0].Reason)
		assert.NotEmpty(t, rv[0].TokenID)
	}
	if del := only(evs, "client.deleted", audit.OutcomeSuccess); assert.Len(t, del, 1) {
		assert.Equal(t, id, del[0].ClientID)
	}

	trailText := out.String()
	for _, s := range append(secrets, ghSecret) {
		require.NotEmpty(t, s)
		assert.NotContains(t, trailText, s, "a secret reached the audit trail")
	}
}

package oauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
)

// prompt=consent (OpenID Connect Core §3.1.2.1) shows the consent page even when the user's approval is remembered.
func TestPromptConsentAsksAgain(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	status, c := e.register(map[string]any{"client_name": "Web app", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	client := c["client_id"].(string)
	p := newPKCE()
	first := e.browseRemember(authQuery(client, p))
	require.NotNil(t, first.location, first.page)
	remembered := e.browse(authQuery(client, p), "")
	require.NotNil(t, remembered.location, "the approval is remembered: %s", remembered.page)

	o := e.browse(authQuery(client, p, "prompt", "consent"), "")
	assert.Nil(t, o.location, "no code without asking again")
	assert.Contains(t, o.page, `name="csrf"`, "the consent page is shown")
	assert.Contains(t, o.page, `name="remember"`, "and may be remembered again")
	o = e.browse(authQuery(client, p, "prompt", "login consent"), "approve")
	require.NotNil(t, o.location, o.page)
	assert.NotEmpty(t, o.location.Query().Get("code"), "approving it ends in a code")
}

// prompt=none (OpenID Connect Core §3.1.2.1) must show no page. This server signs users in at an identity provider
// for every authorization, so it answers login_required (§3.1.2.6) at once, to the client, and starts nothing.
func TestPromptNoneAnswersLoginRequired(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	client := e.publicClient()
	o := e.browse(authQuery(client, newPKCE(), "prompt", "none"), "")
	require.NotNil(t, o.location, "the error goes back to the client: %s", o.page)
	q := o.location.Query()
	assert.Equal(t, "login_required", q.Get("error"))
	assert.NotEmpty(t, q.Get("error_description"))
	assert.Equal(t, "st-123", q.Get("state"))
	assert.Equal(t, e.issuer, q.Get("iss"))
	n, err := e.store.PendingCount(context.Background(), client)
	require.NoError(t, err)
	assert.Zero(t, n, "no login was started")

	o = e.browse(authQuery(client, newPKCE(), "prompt", "none consent"), "")
	require.NotNil(t, o.location, o.page)
	assert.Equal(t, "invalid_request", o.location.Query().Get("error"), "none with another value is malformed")
}

// Through an OpenID provider, prompt=none is passed on: a user the provider cannot log in unseen gets
// login_required; a user it logs in unseen gets a code when this server remembers the approval, and consent_required
// when it would have to ask.
func TestPromptNoneThroughOpenIDProvider(t *testing.T) {
	e := newOIDCEnv(t, backends[0], false, rules(t, "", "", "corp.example", ""))
	status, c := e.register(map[string]any{"client_name": "Web app", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	confidential := c["client_id"].(string)
	public := e.publicClient()

	// No session at the provider: it cannot log the user in without its page.
	b := newBrowser(t)
	o := b.run(e.issuer+"/authorize?"+authQuery(confidential, newPKCE(), "prompt", "none").Encode(), "", "", "")
	require.NotNil(t, o.location, "the error goes back to the client: %s", o.page)
	assert.Equal(t, "login_required", o.location.Query().Get("error"))
	assert.Equal(t, "st-123", o.location.Query().Get("state"))
	assert.Zero(t, e.hydra.Logins(), "the provider's login page was not used")

	// The user logs in (the provider remembers it) and approves, remembered here too.
	e.hydra.SetRemember(true)
	wb := webbrowser.New(b.c)
	wb.Action, wb.Remember, wb.StopAt = "approve", true, []string{redirectURI}
	res, err := wb.Run(context.Background(), e.issuer+"/authorize?"+authQuery(confidential, newPKCE()).Encode())
	require.NoError(t, err)
	require.NotNil(t, res.Location, res.Page)
	require.NotEmpty(t, res.Location.Query().Get("code"))

	// Now nothing needs the user: a code, no page on the way.
	p := newPKCE()
	o = b.run(e.issuer+"/authorize?"+authQuery(confidential, p, "prompt", "none").Encode(), "", "", "")
	require.NotNil(t, o.location, o.page)
	require.Empty(t, o.location.Query().Get("error"), o.location.Query().Get("error_description"))
	form := exchange(confidential, o.location.Query().Get("code"), p)
	form.Set("client_secret", c["client_secret"].(string))
	status, tok, _ := e.tokenRequest(form, "", "")
	require.Equal(t, http.StatusOK, status, tok)

	// A client whose approval is not remembered (a public client on a loopback address is asked every time).
	o = b.run(e.issuer+"/authorize?"+authQuery(public, newPKCE(), "prompt", "none").Encode(), "", "", "")
	require.NotNil(t, o.location, o.page)
	assert.Equal(t, "consent_required", o.location.Query().Get("error"))
}

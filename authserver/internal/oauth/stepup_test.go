package oauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
)

const newMark = `<b class="new">(new: not approved before)</b>`

func describedScopes(cfg *oauth.Config) {
	cfg.ScopeDescriptions = map[string]string{"admin": "read the server's environment and secrets"}
}

// A step-up: a client holding mcp asks again for mcp and admin (the MCP server answered insufficient_scope). The
// consent page is shown for the union, with each scope's description and what is new marked; the code, the access
// token and every refresh carry the union.
func TestStepUpConsent(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, "octo")
			e.tweak = describedScopes
			e.start("octo")
			testStepUpConsent(t, e)
		})
	}
}

func testStepUpConsent(t *testing.T, e *env) {
	status, c := e.register(map[string]any{"client_name": "Web app", "redirect_uris": []string{redirectURI}, "scope": "mcp",
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	client, secret := c["client_id"].(string), c["client_secret"].(string)
	first := e.browseRemember(authQuery(client, newPKCE()))
	require.NotNil(t, first.location, first.page)
	again := e.browse(authQuery(client, newPKCE()), "")
	require.NotNil(t, again.location, "mcp alone is remembered: %s", again.page)

	// The wider request is not covered by the remembered approval: the page is shown, for the union.
	o := e.browse(authQuery(client, newPKCE(), "scope", "mcp admin"), "")
	require.Nil(t, o.location, "a wider scope is never granted without asking")
	assert.Contains(t, o.page, "<code>admin</code>: read the server&#39;s environment and secrets "+newMark)
	assert.Contains(t, o.page, "<code>mcp</code>: use this MCP server&#39;s tools, resources and prompts as you</li>",
		"what was approved before is not marked")

	p := newPKCE()
	o = e.browse(authQuery(client, p, "scope", "mcp admin"), "approve")
	require.NotNil(t, o.location, o.page)
	form := exchange(client, o.location.Query().Get("code"), p)
	form.Set("client_secret", secret)
	status, tok, _ := e.tokenRequest(form, "", "")
	require.Equal(t, http.StatusOK, status, tok)
	assert.Equal(t, "admin mcp", tok["scope"])
	_, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, "admin mcp", claims["scope"])
	f := refreshForm(client, tok["refresh_token"].(string))
	f.Set("client_secret", secret)
	status, tok, _ = e.tokenRequest(f, "", "")
	require.Equal(t, http.StatusOK, status, tok)
	assert.Equal(t, "admin mcp", tok["scope"], "the refresh keeps the union")
	_, claims = jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, "admin mcp", claims["scope"])

	// The union was approved without remembering it: the remembered approval of mcp stands, and the union is asked again.
	o = e.browse(authQuery(client, newPKCE()), "")
	assert.NotNil(t, o.location, "mcp alone is still remembered: %s", o.page)
	o = e.browse(authQuery(client, newPKCE(), "scope", "admin mcp"), "")
	assert.Nil(t, o.location, "the union is asked again")
}

// A public client on a loopback address (the MCP SDKs) is asked every time; what it adds by a step-up is still marked
// as new, from what the user approved last time. A self-registered client's registered scope is its default, not a
// ceiling: the SDKs register with the scope of the first challenge and must be able to ask for more.
func TestStepUpOfPublicClient(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	e.tweak = describedScopes
	e.start("octo")
	status, c := e.register(map[string]any{"client_name": "SDK", "redirect_uris": []string{redirectURI}, "scope": "mcp",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	client := c["client_id"].(string)

	o := e.browse(authQuery(client, newPKCE(), "scope", ""), "")
	assert.Contains(t, o.page, "<code>mcp</code>", "nothing asked: the registered scope")
	assert.NotContains(t, o.page, newMark, "nothing was approved before: nothing is marked")
	require.NotNil(t, e.browse(authQuery(client, newPKCE()), "approve").location)

	o = e.browse(authQuery(client, newPKCE(), "scope", "mcp admin"), "")
	require.Nil(t, o.location)
	assert.Contains(t, o.page, "<code>admin</code>: read the server&#39;s environment and secrets "+newMark)
	assert.NotContains(t, o.page, "It also asked for", "admin is offered to a self-registered client")
	p := newPKCE()
	o = e.browse(authQuery(client, p, "scope", "mcp admin"), "approve")
	require.NotNil(t, o.location, o.page)
	status, tok, _ := e.tokenRequest(exchange(client, o.location.Query().Get("code"), p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	assert.Equal(t, "admin mcp", tok["scope"])

	// A client the operator registered stays held to its registered scope.
	require.NoError(t, e.store.CreateClient(context.Background(), &store.Client{ID: "operator-client", Name: "Ops",
		RedirectURIs: []string{redirectURI}, GrantTypes: []string{"authorization_code"}, TokenEndpointAuth: "none", Scope: "mcp"}))
	o = e.browse(authQuery("operator-client", newPKCE(), "scope", "mcp admin"), "")
	assert.Contains(t, o.page, "It also asked for <code>admin</code>")
}

// With prompt=none nothing is shown, so a wider scope than the remembered approval ends in consent_required.
func TestStepUpWithPromptNoneIsRefused(t *testing.T) {
	e := newOIDCEnv(t, backends[0], false, rules(t, "", "", "corp.example", ""))
	status, c := e.register(map[string]any{"client_name": "Web app", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	client := c["client_id"].(string)
	b := newBrowser(t)
	e.hydra.SetRemember(true)
	wb := webbrowser.New(b.c)
	wb.Action, wb.Remember, wb.StopAt = "approve", true, []string{redirectURI}
	res, err := wb.Run(context.Background(), e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode())
	require.NoError(t, err)
	require.NotNil(t, res.Location, res.Page)

	o := b.run(e.issuer+"/authorize?"+authQuery(client, newPKCE(), "prompt", "none").Encode(), "", "", "")
	require.NotNil(t, o.location, o.page)
	require.NotEmpty(t, o.location.Query().Get("code"), "the remembered scope needs no page")
	o = b.run(e.issuer+"/authorize?"+authQuery(client, newPKCE(), "prompt", "none", "scope", "mcp admin").Encode(), "", "", "")
	require.NotNil(t, o.location, o.page)
	assert.Equal(t, "consent_required", o.location.Query().Get("error"))
	assert.Empty(t, o.location.Query().Get("code"))
}

func TestScopeSettings(t *testing.T) {
	offered := []string{"mcp", "everything:admin"}
	d, err := oauth.ParseScopeDescriptions("everything:admin = read the server's environment, all of it ;\nmcp=use tools", offered)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"everything:admin": "read the server's environment, all of it", "mcp": "use tools"}, d)
	for raw, want := range map[string]string{
		"admin=x":     `scope "admin" has a description but is not offered`,
		"mcp=a;mcp=b": `scope "mcp" is described twice`,
		"mcp":         "is not scope=description",
		"mcp=":        "is not scope=description",
		"mcp=bell\a":  "at most 200 characters of text on one line",
		"everything:admin=" + string(make([]byte, 201)): "at most 200 characters",
	} {
		_, err := oauth.ParseScopeDescriptions(raw, offered)
		require.Error(t, err, raw)
		assert.Contains(t, err.Error(), want)
	}
	require.NoError(t, oauth.CheckScopes(offered))
	assert.ErrorContains(t, oauth.CheckScopes([]string{"mcp", "a b"}), `scope "a b"`)
	assert.ErrorContains(t, oauth.CheckScopes([]string{"mcp", `a"b`}), "quotes")
	assert.ErrorContains(t, oauth.CheckScopes([]string{"mcp", "mcp"}), "offered twice")
	assert.Error(t, oauth.CheckScopes(nil))
}

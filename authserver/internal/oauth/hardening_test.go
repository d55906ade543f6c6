package oauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// startAuthorize sends the browser's first request of an authorization and returns the answer without following it.
func (e *env) startAuthorize(q url.Values) *http.Response {
	e.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.issuer + "/authorize?" + q.Encode())
	require.NoError(e.t, err)
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp
}

// An anonymous authorization request cannot make the server store much: every stored parameter
// is bounded, each client's requests in flight are capped, and /authorize and /device_authorization are
// rate-limited per address.
func TestAuthorizationRequestsAreBounded(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e := newEnv(t, b, "octo")
			e.tweak = func(c *oauth.Config) { c.MaxPendingPerClient = 3 }
			e.start("octo")
			ctx := context.Background()
			client := e.publicClient()
			p := newPKCE()
			pending := func(id string) int {
				n, err := e.store.PendingCount(ctx, id)
				require.NoError(t, err)
				return n
			}

			resp := e.startAuthorize(authQuery(client, p, "state", strings.Repeat("s", 512<<10)))
			assert.Equal(t, http.StatusRequestURITooLong, resp.StatusCode, "a 512 KiB query is refused outright")
			for name, c := range map[string]struct {
				q    url.Values
				code string
			}{
				"long state":    {authQuery(client, p, "state", strings.Repeat("s", 1025)), "invalid_request"},
				"long scope":    {authQuery(client, p, "scope", "mcp "+strings.Repeat("x", 1100)), "invalid_scope"},
				"long resource": {authQuery(client, p, "resource", resource+"/"+strings.Repeat("r", 2100)), "invalid_target"},
			} {
				resp := e.startAuthorize(c.q)
				require.Equal(t, http.StatusFound, resp.StatusCode, name)
				loc, err := url.Parse(resp.Header.Get("Location"))
				require.NoError(t, err)
				assert.Equal(t, c.code, loc.Query().Get("error"), name)
				if name == "long state" {
					assert.Empty(t, loc.Query().Get("state"), "a state too long is not sent back either")
				}
			}
			assert.Zero(t, pending(client), "nothing was stored for refused requests")

			// Requests within the bounds are stored, up to the client's cap.
			for range 3 {
				resp := e.startAuthorize(authQuery(client, p, "state", strings.Repeat("s", 1024)))
				require.Equal(t, http.StatusFound, resp.StatusCode)
				require.True(t, strings.HasPrefix(resp.Header.Get("Location"), e.gh.URL), "on to GitHub")
			}
			assert.Equal(t, 3, pending(client))
			resp = e.startAuthorize(authQuery(client, p))
			require.Equal(t, http.StatusFound, resp.StatusCode)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			assert.Equal(t, "temporarily_unavailable", loc.Query().Get("error"), "a client at its cap gets no more")
			assert.Equal(t, 3, pending(client))
			other := e.publicClient()
			resp = e.startAuthorize(authQuery(other, p))
			assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), e.gh.URL), "another client is not affected")

			// The device endpoint: the same bounds and the same cap (device grants count with authorization requests).
			dev := e.deviceClient()
			status, out := e.deviceAuthorize(url.Values{"client_id": {dev}, "resource": {resource}, "scope": {strings.Repeat("x", 1100)}})
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_scope", out["error"])
			status, out = e.deviceAuthorize(url.Values{"client_id": {dev}, "resource": {resource + strings.Repeat("r", 2100)}})
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_target", out["error"])
			for range 3 {
				status, out = e.deviceAuthorize(url.Values{"client_id": {dev}, "resource": {resource}})
				require.Equal(t, http.StatusOK, status, out)
			}
			status, out = e.deviceAuthorize(url.Values{"client_id": {dev}, "resource": {resource}})
			assert.Equal(t, http.StatusTooManyRequests, status)
			assert.Equal(t, "temporarily_unavailable", out["error"])
		})
	}
}

func TestAuthorizationEndpointsAreRateLimited(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	e.tweak = func(c *oauth.Config) { c.AuthorizePerMinute = 10 }
	e.start("octo")
	client, dev := e.publicClient(), e.deviceClient()
	p := newPKCE()
	for i := range 10 {
		resp := e.startAuthorize(authQuery(client, p))
		require.Equal(t, http.StatusFound, resp.StatusCode, "request %d", i+1)
	}
	resp := e.startAuthorize(authQuery(client, p))
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "60", resp.Header.Get("Retry-After"))
	for range 10 {
		status, out := e.deviceAuthorize(url.Values{"client_id": {dev}, "resource": {resource}})
		require.Equal(t, http.StatusOK, status, out)
	}
	status, out := e.deviceAuthorize(url.Values{"client_id": {dev}, "resource": {resource}})
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, "slow_down", out["error"])
}

// Before the user has done anything, an error is not sent to a self-registered client's https
// redirect URI (anyone can register one, which would make /authorize an open redirector); it is shown here. A
// loopback redirect URI, which only a program on the user's machine can receive, still gets its error.
func TestNoOpenRedirectBeforeUserInteraction(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	status, c := e.register(map[string]any{"client_name": "Anyone", "redirect_uris": []string{"https://evil.example/cb"},
		"token_endpoint_auth_method": "none"})
	require.Equal(t, http.StatusCreated, status, c)
	evil := c["client_id"].(string)
	p := newPKCE()
	for name, q := range map[string]url.Values{
		"bad response_type": authQuery(evil, p, "redirect_uri", "https://evil.example/cb", "response_type", "token"),
		"no PKCE":           authQuery(evil, p, "redirect_uri", "https://evil.example/cb", "code_challenge", ""),
		"foreign resource":  authQuery(evil, p, "redirect_uri", "https://evil.example/cb", "resource", "https://x.example/mcp"),
		"prompt=none":       authQuery(evil, p, "redirect_uri", "https://evil.example/cb", "prompt", "none"),
	} {
		o := e.browse(q, "")
		assert.Nil(t, o.location, "%s: no redirect to the registered https URI", name)
		assert.Equal(t, http.StatusBadRequest, o.status, name)
		assert.Contains(t, o.page, "Nothing was sent back to the application", name)
	}
	o := e.browse(authQuery(e.publicClient(), p, "response_type", "token"), "")
	require.NotNil(t, o.location, "a loopback redirect URI still gets the error")
	assert.Equal(t, "unsupported_response_type", o.location.Query().Get("error"))
}

// browseRemember is browse with the consent's "remember" box ticked.
func (e *env) browseRemember(query url.Values) outcome {
	return e.browseAnswering(query, "approve", true)
}

// A public client returning to a loopback address is asked for consent every time (any program
// listening on the user's machine can claim to be it); other clients may have their approval remembered.
func TestConsentAlwaysAskedForLoopbackPublicClients(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	p := newPKCE()
	public := e.publicClient()
	first := e.browseRemember(authQuery(public, p))
	require.NotNil(t, first.location)
	o := e.browse(authQuery(public, p), "")
	assert.Nil(t, o.location, "no code without asking again")
	assert.Contains(t, o.page, `name="csrf"`, "the consent page is shown again")
	assert.NotContains(t, o.page, `name="remember"`, "and offers no remembering")

	status, c := e.register(map[string]any{"client_name": "Web app", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	confidential := c["client_id"].(string)
	first = e.browseRemember(authQuery(confidential, p))
	require.NotNil(t, first.location)
	o = e.browse(authQuery(confidential, p), "")
	require.NotNil(t, o.location, "a confidential client's remembered approval is used: %s", o.page)
	assert.NotEmpty(t, o.location.Query().Get("code"))
}

// The consent page shows hosts in their ASCII (punycode) form and flags a name that mixes alphabets, so that a
// look-alike host cannot pass for the one the user knows.
func TestConsentShowsLookAlikeHosts(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	status, c := e.register(map[string]any{"client_name": "PayPal", "redirect_uris": []string{"https://xn--pypal-4ve.com/cb"},
		"token_endpoint_auth_method": "client_secret_post"})
	require.Equal(t, http.StatusCreated, status, c)
	o := e.browse(authQuery(c["client_id"].(string), newPKCE(), "redirect_uri", "https://xn--pypal-4ve.com/cb"), "")
	require.Equal(t, http.StatusOK, o.status, o.page)
	assert.Contains(t, o.page, `<span class="host">xn--pypal-4ve.com</span>`, "the ASCII form is what is shown")
	assert.Contains(t, o.page, "pаypal.com", "with the international form beside it")
	assert.Contains(t, o.page, "mixes alphabets (Latin, Cyrillic)")
}

// On an https issuer the browser-binding cookie has the __Host- prefix (Secure, Path=/, no
// Domain: no sibling subdomain can plant it).
func TestAuthCookieHasHostPrefixOnHTTPS(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	ctx := context.Background()
	require.NoError(t, e.store.CreateClient(ctx, &store.Client{ID: "cli", RedirectURIs: []string{redirectURI},
		TokenEndpointAuth: "none", GrantTypes: []string{"authorization_code"}, IssuedAt: time.Now()}))
	const issuer = "https://auth.example.com"
	policy, err := github.ParsePolicy("octo", "", "")
	require.NoError(t, err)
	gh, err := github.New(github.Config{ClientID: ghClient, ClientSecret: ghSecret, WebURL: e.gh.WebURL(), APIURL: e.gh.APIURL(),
		RedirectURL: oauth.CallbackURL(issuer)}, policy, nil)
	require.NoError(t, err)
	srv, err := oauth.New(oauth.Config{Issuer: issuer, Resources: []string{resource}, Scopes: []string{"mcp"},
		CodeTTL: time.Minute, AccessTTL: time.Hour, RefreshTTL: time.Hour, AuthRequestTTL: 10 * time.Minute},
		e.store, &keys.Manager{Store: e.store, MaxTokenLifetime: time.Hour}, loginsOf(t, e.store, gh.LoginProvider()), quiet)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, issuer+"/authorize?"+authQuery("cli", newPKCE()).Encode(), nil))
	require.Equal(t, http.StatusFound, rec.Code, rec.Body.String())
	cookie := rec.Header().Get("Set-Cookie")
	assert.True(t, strings.HasPrefix(cookie, "__Host-mcpgw_auth="), cookie)
	assert.Contains(t, cookie, "; Path=/")
	assert.Contains(t, cookie, "; Secure")
	assert.NotContains(t, strings.ToLower(cookie), "domain=")
}

// The GitHub login is made with PKCE (S256), so that a code caught on its way back is worth nothing without the
// verifier, which stays with the pending request; the whole flow still ends in a code.
func TestGitHubLoginUsesPKCE(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	client := e.publicClient()
	resp := e.startAuthorize(authQuery(client, newPKCE()))
	require.Equal(t, http.StatusFound, resp.StatusCode)
	gh, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(gh.String(), e.gh.URL), gh.String())
	assert.Equal(t, "S256", gh.Query().Get("code_challenge_method"))
	assert.Len(t, gh.Query().Get("code_challenge"), 43)
	ar, err := e.store.GetAuthRequest(context.Background(), gh.Query().Get("state"))
	require.NoError(t, err)
	assert.NotEmpty(t, ar.Login.Verifier, "the verifier is kept with the request, never sent")
	assert.NotContains(t, gh.String(), ar.Login.Verifier)
	assert.NotEmpty(t, e.code(client, newPKCE()), "GitHub (the fake checks PKCE) accepts the login")
}

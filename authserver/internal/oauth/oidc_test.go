package oauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/oidc"
	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/hydratest"
	"github.com/mcp-oauth-gateway/gateway/plugin"
)

// Logins through a real OpenID provider (ORY Hydra, internal/hydratest) on both stores: the claim rules, the
// identity in the tokens, the chooser beside GitHub, the device flow, and what an attacker may try at the callback.

var (
	alice = hydratest.User{Subject: "a-100", Claims: map[string]any{"email": "alice@corp.example", "email_verified": true,
		"preferred_username": "alice", "name": "Alice Liddell", "groups": []string{"staff", "mcp-users"}}}
	// mallory's address is not verified by the provider, and she is in no allowed group.
	mallory = hydratest.User{Subject: "m-666", Claims: map[string]any{"email": "alice@corp.example", "email_verified": false,
		"preferred_username": "mallory", "groups": []string{"staff"}}}
)

// oidcEnv is an authorization server whose users log in through Hydra as the provider "corp" (display name Corp),
// with GitHub beside it when withGitHub.
type oidcEnv struct {
	*env
	hydra  *hydratest.Server
	policy oidc.Policy // the corp provider's rules; change, then e.start, to restart with others
}

func newOIDCEnv(t *testing.T, b backendCase, withGitHub bool, policy oidc.Policy) *oidcEnv {
	t.Helper()
	h := hydratest.Start(t)
	h.SetUser(alice)
	gh := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{{ID: 1001, Login: "octo", Name: "Octo Cat",
			Emails: []fakegithub.Email{{Email: "octo@example.com", Primary: true, Verified: true}}}},
		Apps: []fakegithub.App{{ClientID: ghClient, ClientSecret: ghSecret}},
	})
	st, r := b.open(t)
	t.Cleanup(func() { st.Close() })
	oe := &oidcEnv{env: &env{t: t, store: st, gh: gh, http: &http.Client{}, redis: r}, hydra: h, policy: policy}
	oe.providers = func(issuer string, g *github.Provider) []login.Provider {
		callback := issuer + oidc.CallbackPath("corp")
		id, secret := h.Client(t, callback)
		p, err := oidc.New(context.Background(), oidc.Config{Name: "corp", Issuer: h.Issuer, ClientID: id, ClientSecret: secret,
			RedirectURL: callback, Scopes: []string{"openid", "email", "profile", "groups"}}, oe.policy, nil)
		require.NoError(t, err)
		if withGitHub {
			return []login.Provider{g.LoginProvider(), p}
		}
		return []login.Provider{p}
	}
	oe.start("octo")
	return oe
}

func rules(t *testing.T, subjects, emails, domains, groups string) oidc.Policy {
	t.Helper()
	p, err := oidc.ParsePolicy(subjects, emails, domains, groups)
	require.NoError(t, err)
	return p
}

// browser is a user's browser: cookies, no automatic redirects.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(u)
	require.NoError(b.t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

var providerLink = regexp.MustCompile(`<a class="provider" href="([^"]+)">Continue with ([^<]+)</a>`)

// hidden finds the consent form's hidden fields.
var hidden = regexp.MustCompile(`name="(request|csrf)" value="([^"]*)"`)

// run follows the flow from u like a user (internal/browser, with this browser's cookies): redirects through the
// authorization server, Hydra and its login app; on the chooser it picks choose; on the consent page it answers
// approve. It stops at the redirect to the client, at a redirect whose URL starts with stopAt (not followed), or on
// any other page.
func (b *browser) run(u, choose, approve, stopAt string) outcome {
	b.t.Helper()
	wb := webbrowser.New(b.c)
	wb.Choose, wb.Action, wb.StopAt = choose, approve, []string{redirectURI}
	if stopAt != "" {
		wb.StopAt = append(wb.StopAt, stopAt)
	}
	res, err := wb.Run(context.Background(), u)
	require.NoError(b.t, err)
	return outcome{status: res.Status, location: res.Location, page: res.Page}
}

// codeVia runs a whole authorization through the chosen provider and returns the client's code.
func (e *oidcEnv) codeVia(client string, p pkce, choose string) string {
	o := newBrowser(e.t).run(e.issuer+"/authorize?"+authQuery(client, p).Encode(), choose, "approve", "")
	require.NotNil(e.t, o.location, "the flow stopped on a page: %d %s", o.status, o.page)
	require.Empty(e.t, o.location.Query().Get("error"), o.location.Query().Get("error_description"))
	return o.location.Query().Get("code")
}

// verify asks the plugin about a token, as Traefik would for the MCP server: the status, and the identity headers
// the backend gets.
func (e *oidcEnv) verify(token string) (int, http.Header) {
	e.t.Helper()
	cfg := plugin.CreateConfig()
	cfg.Issuer, cfg.Resource, cfg.Scopes = e.issuer, resource, []string{"mcp"}
	var seen http.Header
	mw, err := plugin.New(context.Background(), http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	}), cfg, "oidc-test")
	require.NoError(e.t, err)
	var rec *httptest.ResponseRecorder
	require.Eventually(e.t, func() bool { // 503 until the plugin has read the keys, in the background
		rec = httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, resource, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		mw.ServeHTTP(rec, req)
		return rec.Code != http.StatusServiceUnavailable
	}, 10*time.Second, 20*time.Millisecond, "the plugin never read the issuer's keys")
	return rec.Code, seen
}

func TestOIDCLogin(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testOIDCLogin(t, newOIDCEnv(t, b, false, rules(t, "", "", "corp.example", ""))) })
	}
}

// One OpenID provider: /authorize goes straight to it (no chooser); the token names the user by the provider's sub,
// namespaced; the identity headers carry the login name and the verified address; refresh re-checks the rules.
func testOIDCLogin(t *testing.T, e *oidcEnv) {
	client := e.publicClient()
	p := newPKCE()
	resp, _ := newBrowser(t).get(e.issuer + "/authorize?" + authQuery(client, p).Encode())
	require.Equal(t, http.StatusFound, resp.StatusCode)
	to, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(to.String(), e.hydra.Issuer+"/oauth2/auth?"), "straight to the provider: %s", to)
	assert.Equal(t, "S256", to.Query().Get("code_challenge_method"))
	assert.NotEmpty(t, to.Query().Get("nonce"))
	ar, err := e.store.GetAuthRequest(context.Background(), to.Query().Get("state"))
	require.NoError(t, err)
	assert.Equal(t, "corp", ar.Login.Provider)
	assert.Equal(t, ar.Login.Nonce, to.Query().Get("nonce"))
	assert.Equal(t, oauth2.S256ChallengeFromVerifier(ar.Login.Verifier), to.Query().Get("code_challenge"))

	status, tok, _ := e.tokenRequest(exchange(client, e.codeVia(client, p, ""), p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	_, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, "corp:a-100", claims["sub"], "the provider's sub, namespaced by the provider")
	assert.Equal(t, "alice", claims["username"])
	assert.Equal(t, "Alice Liddell", claims["name"])
	assert.Equal(t, "alice@corp.example", claims["email"])
	code, h := e.verify(tok["access_token"].(string))
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "corp:a-100", h.Get("X-User-Id"))
	assert.Equal(t, "alice", h.Get("X-User-Name"))
	assert.Equal(t, "alice@corp.example", h.Get("X-User-Email"))

	// The same user logging in again is the same user (a stable id), whatever their name says now.
	e.hydra.SetUser(hydratest.User{Subject: "a-100", Claims: map[string]any{"email": "alice@corp.example", "email_verified": true,
		"preferred_username": "alice.liddell"}})
	p2 := newPKCE()
	_, tok2, _ := e.tokenRequest(exchange(client, e.codeVia(client, p2, ""), p2), "", "")
	_, claims2 := jtiOf(t, tok2["access_token"].(string))
	assert.Equal(t, "corp:a-100", claims2["sub"])
	assert.Equal(t, "alice.liddell", claims2["username"])

	status, refreshed, _ := e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
	require.Equal(t, http.StatusOK, status, refreshed)

	// The operator narrows the rules: at the next refresh the grant ends, with the reason.
	e.policy = rules(t, "", "", "other.example", "")
	e.start("octo")
	status, out, _ := e.tokenRequest(refreshForm(client, refreshed["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", out["error"])
	assert.Equal(t, "Corp user alice is no longer allowed to use this server", out["error_description"])
}

func TestOIDCRefusals(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			testOIDCRefusals(t, newOIDCEnv(t, b, true, rules(t, "", "alice@corp.example", "", "mcp-users")))
		})
	}
}

// What the rules refuse, and what an attacker may send the callback: an unverified address, a wrong group, a
// response from another issuer, a replayed nonce, a callback at another provider's address.
func testOIDCRefusals(t *testing.T, e *oidcEnv) {
	client := e.publicClient()
	corpCallback := e.issuer + oidc.CallbackPath("corp")

	t.Run("unverified email and wrong group", func(t *testing.T) {
		e.hydra.SetUser(mallory) // alice's address, unverified; in staff, not mcp-users
		defer e.hydra.SetUser(alice)
		o := newBrowser(t).run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "approve", "")
		assert.Equal(t, http.StatusForbidden, o.status)
		assert.Contains(t, o.page, "Corp user mallory is not allowed to use this server: Corp does not say that the e-mail "+
			"address alice@corp.example is verified, so it cannot admit them; they are in none of the allowed groups")
		assert.Contains(t, o.page, "allow your Corp account")
		assert.Contains(t, o.page, "error=access_denied", "the way back tells the client")
		assert.NotContains(t, o.page, "mcp-users", "the refusal does not list who is allowed")
	})

	t.Run("wrong group", func(t *testing.T) {
		e.hydra.SetUser(hydratest.User{Subject: "b-1", Claims: map[string]any{"preferred_username": "bob", "groups": []string{"admins"}}})
		defer e.hydra.SetUser(alice)
		o := newBrowser(t).run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "approve", "")
		assert.Equal(t, http.StatusForbidden, o.status)
		assert.Contains(t, o.page, "Corp user bob is not allowed to use this server: they are in none of the allowed groups")
	})

	t.Run("replayed nonce", func(t *testing.T) {
		// The provider issues two codes for one authorization URL (one nonce): both ID tokens are genuine, fresh and
		// carry this login's nonce. The first finishes the login; the second is a replay and must be refused.
		b := newBrowser(t)
		o := b.run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "", e.hydra.Issuer)
		require.NotNil(t, o.location, "%d %s", o.status, o.page)
		authURL := o.location.String()
		first := b.run(authURL, "", "", corpCallback)
		second := b.run(authURL, "", "", corpCallback)
		require.NotNil(t, first.location)
		require.NotNil(t, second.location)
		require.NotEqual(t, first.location.Query().Get("code"), second.location.Query().Get("code"))
		resp, consentPage := b.get(first.location.String())
		require.Equal(t, http.StatusOK, resp.StatusCode, consentPage)
		assert.Contains(t, consentPage, "as Corp user <b>alice</b>", "the consent page names the provider")
		resp, page := b.get(second.location.String())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, page, "This Corp login was already completed once and cannot be used again")
		resp, page = b.get(first.location.String())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "nor the first callback twice")
		assert.Contains(t, page, "already completed")

		// Two answers at once (two nodes, a double-clicked link): the attempt finishes once.
		b2 := newBrowser(t)
		o = b2.run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "", e.hydra.Issuer)
		require.NotNil(t, o.location)
		var cbs []string
		for range 4 {
			back := b2.run(o.location.String(), "", "", corpCallback)
			require.NotNil(t, back.location)
			cbs = append(cbs, back.location.String())
		}
		statuses := make(chan int, len(cbs))
		for _, cb := range cbs {
			go func() {
				resp, err := b2.c.Get(cb)
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		wins := 0
		for range cbs {
			switch st := <-statuses; st {
			case http.StatusOK:
				wins++
			case http.StatusBadRequest:
			default:
				t.Errorf("a concurrent callback got HTTP %d", st)
			}
		}
		assert.Equal(t, 1, wins, "exactly one answer finishes the attempt")

		// The genuine login is unharmed: its consent form still works.
		m := hidden.FindAllStringSubmatch(consentPage, -1)
		require.Len(t, m, 2)
		resp, err := b.c.PostForm(e.issuer+"/consent", url.Values{m[0][1]: {m[0][2]}, m[1][1]: {m[1][2]}, "action": {"approve"}})
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusFound, resp.StatusCode)
		assert.NotEmpty(t, resp.Header.Get("Location"))
		assert.Contains(t, resp.Header.Get("Location"), "code=")
	})

	t.Run("response from another issuer", func(t *testing.T) {
		// A second provider, whose tokens are even signed with the first one's key (tenants of one multi-tenant
		// provider): its response, with a code it issued for our callback, is delivered to corp's callback.
		other := hydratest.Start(t)
		other.ShareSigningKey(t, e.hydra)
		other.SetUser(alice)
		b := newBrowser(t)
		o := b.run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "", e.hydra.Issuer)
		require.NotNil(t, o.location)
		q := o.location.Query()
		id, secret := other.Client(t, corpCallback)
		foreign := (&oauth2.Config{ClientID: id, ClientSecret: secret, RedirectURL: corpCallback, Scopes: strings.Fields(q.Get("scope")),
			Endpoint: oauth2.Endpoint{AuthURL: other.Issuer + "/oauth2/auth"}}).AuthCodeURL(q.Get("state"),
			oauth2.SetAuthURLParam("nonce", q.Get("nonce")), oauth2.SetAuthURLParam("code_challenge", q.Get("code_challenge")),
			oauth2.SetAuthURLParam("code_challenge_method", "S256"))
		back := b.run(foreign, "", "", corpCallback)
		require.NotNil(t, back.location)
		injected := back.location.Query()
		injected.Set("iss", other.Issuer) // RFC 9207: the response says where it comes from
		resp, page := b.get(corpCallback + "?" + injected.Encode())
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Contains(t, page, "Corp login failed")
		injected.Del("iss") // without it, corp's token endpoint does not know the other provider's code
		resp, _ = b.get(corpCallback + "?" + injected.Encode())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "and the attempt is over anyway")
	})

	t.Run("callback at another provider's address", func(t *testing.T) {
		b := newBrowser(t)
		o := b.run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "", e.hydra.Issuer)
		require.NotNil(t, o.location)
		back := b.run(o.location.String(), "", "", corpCallback)
		require.NotNil(t, back.location)
		resp, page := b.get(e.issuer + "/github/callback?" + back.location.RawQuery)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.Contains(t, page, "did not start a GitHub login for this request")
		resp, _ = b.get(e.issuer + "/github/callback?" + url.Values{"state": {back.location.Query().Get("state")},
			"error": {"access_denied"}}.Encode())
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "nor can another provider's address cancel it")
		resp, _ = b.get(back.location.String())
		assert.Equal(t, http.StatusOK, resp.StatusCode, "the right callback still finishes the login")
	})

	t.Run("cancelled at the provider", func(t *testing.T) {
		e.hydra.SetDeny("the user cancelled")
		defer e.hydra.SetDeny("")
		o := newBrowser(t).run(e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode(), "Corp", "approve", "")
		require.NotNil(t, o.location, "%d %s", o.status, o.page)
		assert.Equal(t, "access_denied", o.location.Query().Get("error"))
		assert.Equal(t, "the user did not authorize the login at Corp", o.location.Query().Get("error_description"))
	})
}

func TestOIDCBesideGitHub(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			testOIDCBesideGitHub(t, newOIDCEnv(t, b, true, rules(t, "", "", "corp.example", "")))
		})
	}
}

// GitHub and an OpenID provider at once: a chooser; GitHub's users keep their numeric ids; the device flow goes
// through the chooser too; a grant's refresh is judged by the provider its user logged in with.
func testOIDCBesideGitHub(t *testing.T, e *oidcEnv) {
	client := e.publicClient()
	resp, page := newBrowser(t).get(e.issuer + "/authorize?" + authQuery(client, newPKCE()).Encode())
	require.Equal(t, http.StatusOK, resp.StatusCode, "a chooser, not a redirect")
	links := providerLink.FindAllStringSubmatch(page, -1)
	require.Len(t, links, 2, page)
	assert.Equal(t, "GitHub", links[0][2])
	assert.Equal(t, "Corp", links[1][2])
	assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))

	pc, pg := newPKCE(), newPKCE()
	_, corpTok, _ := e.tokenRequest(exchange(client, e.codeVia(client, pc, "Corp"), pc), "", "")
	_, ghTok, _ := e.tokenRequest(exchange(client, e.codeVia(client, pg, "GitHub"), pg), "", "")
	_, corp := jtiOf(t, corpTok["access_token"].(string))
	_, gh := jtiOf(t, ghTok["access_token"].(string))
	assert.Equal(t, "corp:a-100", corp["sub"])
	assert.Equal(t, "1001", gh["sub"], "GitHub users keep their numeric ids: earlier tokens, grants and consents stay theirs")
	assert.Equal(t, "octo", gh["username"])

	// An unknown choice, or a choice for a request of another browser.
	b := newBrowser(t)
	resp, _ = b.get(e.issuer + "/authorize?" + authQuery(client, newPKCE()).Encode())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	ar := regexp.MustCompile(`request=([^&"]+)`).FindStringSubmatch(page)
	require.NotNil(t, ar)
	resp, _ = newBrowser(t).get(e.issuer + "/login?request=" + ar[1] + "&provider=corp")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "another browser's request")
	links = providerLink.FindAllStringSubmatch(mustBody(t, b, e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode()), -1)
	require.NotEmpty(t, links)
	resp, page = b.get(strings.Replace(strings.ReplaceAll(links[0][1], "&amp;", "&"), "provider=github", "provider=gitlab", 1))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, page, "Unknown sign-in option")

	// The device flow: code, chooser, the provider, consent naming the code, tokens for the provider's user.
	dc := e.deviceClient()
	status, da := e.deviceAuthorize(url.Values{"client_id": {dc}, "scope": {"mcp"}, "resource": {resource}})
	require.Equal(t, http.StatusOK, status, da)
	db := newBrowser(t)
	resp, page = db.get(da["verification_uri_complete"].(string))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, page, "Next you log in with GitHub or Corp")
	resp2, err := db.c.PostForm(e.issuer+"/device", url.Values{"user_code": {da["user_code"].(string)}})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	require.Equal(t, http.StatusOK, resp2.StatusCode, "the chooser")
	assert.Contains(t, string(body), "To approve the device showing the code")
	links = providerLink.FindAllStringSubmatch(string(body), -1)
	require.Len(t, links, 2)
	o := db.run(strings.ReplaceAll(links[1][1], "&amp;", "&"), "", "approve", "")
	require.Equal(t, http.StatusOK, o.status, o.page)
	assert.Contains(t, o.page, "Device approved")
	status, devTok, _ := e.tokenRequest(devicePoll(dc, da["device_code"].(string)), "", "")
	require.Equal(t, http.StatusOK, status, devTok)
	_, dclaims := jtiOf(t, devTok["access_token"].(string))
	assert.Equal(t, "corp:a-100", dclaims["sub"])

	// Refresh is judged by each user's own provider: narrowing corp's rules ends corp's grants only.
	e.policy = rules(t, "", "", "other.example", "")
	e.start("octo")
	status, out, _ := e.tokenRequest(refreshForm(client, corpTok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status, out)
	assert.Equal(t, "Corp user alice is no longer allowed to use this server", out["error_description"])
	status, out, _ = e.tokenRequest(refreshForm(client, ghTok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusOK, status, out)

	// A provider taken out of the settings: its users' grants end at their next refresh.
	e.providers = func(_ string, g *github.Provider) []login.Provider { return []login.Provider{g.LoginProvider()} }
	e.start("octo")
	status, out, _ = e.tokenRequest(refreshForm(dc, devTok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "this server no longer accepts logins through corp, where user alice logged in", out["error_description"])

	// A provider that cannot be reached when the server starts: the server starts all the same, choosing the provider
	// gets a page that says so (503), and GitHub's logins go on.
	e.providers = func(issuer string, g *github.Provider) []login.Provider {
		p, err := oidc.New(context.Background(), oidc.Config{Name: "corp", Issuer: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s",
			RedirectURL: issuer + oidc.CallbackPath("corp")}, e.policy, nil)
		require.NoError(t, err)
		return []login.Provider{g.LoginProvider(), p}
	}
	e.start("octo")
	b = newBrowser(t)
	links = providerLink.FindAllStringSubmatch(mustBody(t, b, e.issuer+"/authorize?"+authQuery(client, newPKCE()).Encode()), -1)
	require.Len(t, links, 2)
	resp, page = b.get(strings.ReplaceAll(links[1][1], "&amp;", "&"))
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, page)
	assert.Equal(t, "30", resp.Header.Get("Retry-After"))
	assert.Contains(t, page, "Signing in with Corp is not possible right now")
	assert.NotEmpty(t, e.codeVia(client, newPKCE(), "GitHub"), "GitHub's logins go on")
}

func mustBody(t *testing.T, b *browser, u string) string {
	t.Helper()
	resp, page := b.get(u)
	require.Equal(t, http.StatusOK, resp.StatusCode, page)
	return page
}

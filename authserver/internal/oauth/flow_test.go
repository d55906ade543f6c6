package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientlife"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

const (
	resource    = "https://gw.example.com/everything/mcp"
	otherMCP    = "https://gw.example.com/memory/mcp"
	redirectURI = "http://127.0.0.1:3000/callback"
	ghClient    = "gh-app"
	ghSecret    = "gh-secret"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is one authorization server with a fake GitHub, on a given store.
type env struct {
	t      *testing.T
	issuer string
	store  store.Store
	gh     *fakegithub.Server
	http   *http.Client
	redis  *testenv.Redis
	docs   *clientmeta.Fetcher // client metadata documents (CIMD); nil: off
	keys   *clientmeta.Fetcher // client key sets (private_key_jwt jwks_uri); nil: inline keys only
	life   clientlife.Policy   // registered clients' lifetimes; zero: the default below
	tweak  func(*oauth.Config) // changes the configuration before the server starts; nil: none
	srv    *oauth.Server       // the server start made last
	groups []string            // the declared groups (--groups)
	// providers are the identity providers users log in with, given the issuer and the GitHub provider; nil: GitHub only.
	providers func(issuer string, gh *github.Provider) []login.Provider
}

type backendCase struct {
	name string
	open func(t *testing.T) (store.Store, *testenv.Redis)
}

var backends = []backendCase{
	{"embedded", func(t *testing.T) (store.Store, *testenv.Redis) {
		s, err := embedded.Open("", quiet)
		require.NoError(t, err)
		return s, nil
	}},
	{"redis", func(t *testing.T) (store.Store, *testenv.Redis) {
		r := testenv.StartRedis(t)
		s, err := redisstore.Open(context.Background(), redisstore.Options{URL: r.URL, Logger: quiet})
		require.NoError(t, err)
		return s, r
	}},
}

func newEnv(t *testing.T, b backendCase, allowed string) *env {
	t.Helper()
	gh := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{
			{ID: 1001, Login: "octo", Name: "Octo Cat", Emails: []fakegithub.Email{{Email: "octo@example.com", Primary: true, Verified: true}}},
			{ID: 1002, Login: "mallory", Name: "Mallory"},
		},
		Apps: []fakegithub.App{{ClientID: ghClient, ClientSecret: ghSecret}},
	})
	st, r := b.open(t)
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, gh: gh, http: &http.Client{}, redis: r}
	e.start(allowed)
	return e
}

// start serves the authorization server with the given GitHub allow list; calling it again replaces the server
// on the same store (a restart with new settings).
func (e *env) start(allowed string) {
	t := e.t
	ts := httptest.NewUnstartedServer(nil)
	issuer := "http://" + ts.Listener.Addr().String()
	policy, err := github.ParsePolicy(allowed, "", "")
	require.NoError(t, err)
	gh, err := github.New(github.Config{ClientID: ghClient, ClientSecret: ghSecret, WebURL: e.gh.WebURL(), APIURL: e.gh.APIURL(),
		RedirectURL: oauth.CallbackURL(issuer), Pins: e.store, Groups: e.groups}, policy, nil)
	require.NoError(t, err)
	km := &keys.Manager{Store: e.store, MaxTokenLifetime: time.Hour}
	require.NoError(t, km.Ensure(context.Background()))
	cfg := oauth.Config{
		Issuer: issuer, Resources: []string{resource, otherMCP}, Scopes: []string{"mcp", "admin"},
		CodeTTL: time.Minute, AccessTTL: time.Hour, RefreshTTL: 24 * time.Hour, Clients: e.lifetimes(),
		AuthRequestTTL: 10 * time.Minute, ConsentTTL: time.Hour, RegisterPerMinute: 600, RegisterBurst: 50,
		FeedPollInterval: 5 * time.Second,
		ClientMetadata:   e.docs,
		ClientKeys:       e.keys,
		DeviceCodeTTL:    10 * time.Minute, DevicePollInterval: 5 * time.Second, DeviceAttemptsPerMinute: 600,
	}
	if e.tweak != nil {
		e.tweak(&cfg)
	}
	providers := []login.Provider{gh.LoginProvider()}
	if e.providers != nil {
		providers = e.providers(issuer, gh)
	}
	logins, err := login.New(e.store, providers...)
	require.NoError(t, err)
	logins.KeepGroups(e.groups)
	srv, err := oauth.New(cfg, e.store, km, logins, quiet)
	require.NoError(t, err)
	ts.Config.Handler = srv.Handler()
	e.srv = srv
	ts.Start()
	t.Cleanup(ts.Close)
	e.issuer = issuer
}

func (e *env) lifetimes() clientlife.Policy {
	if e.life == (clientlife.Policy{}) {
		return clientlife.Policy{Unused: time.Hour, Idle: 24 * time.Hour}
	}
	return e.life
}

func (e *env) register(meta map[string]any) (int, map[string]any) {
	b, _ := json.Marshal(meta)
	resp, err := e.http.Post(e.issuer+"/register", "application/json", strings.NewReader(string(b)))
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

func (e *env) publicClient() string {
	status, c := e.register(map[string]any{"client_name": "Test client", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(e.t, http.StatusCreated, status, c)
	return c["client_id"].(string)
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := strings.Repeat("v", 20) + base64.RawURLEncoding.EncodeToString([]byte(time.Now().String()))
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

// outcome is where a browser's run ended: the redirect to the client, or the last page when it stopped on one.
type outcome struct {
	status   int
	location *url.URL
	page     string
}

// browse follows the authorization flow like a user's browser (internal/browser), answering the consent page with
// approve ("" stops there), and returns where it ended. It stops at the first redirect that leaves the authorization
// server and the fake GitHub.
func (e *env) browse(query url.Values, approve string) outcome {
	return e.browseAnswering(query, approve, false)
}

// browseAnswering is browse, with the consent's "remember" box ticked when remember.
func (e *env) browseAnswering(query url.Values, approve string, remember bool) outcome {
	e.t.Helper()
	b := webbrowser.New(nil)
	b.Action, b.Remember, b.Within = approve, remember, []string{e.issuer + "/", e.gh.URL + "/"}
	res, err := b.Run(context.Background(), e.issuer+"/authorize?"+query.Encode())
	require.NoError(e.t, err)
	return outcome{status: res.Status, location: res.Location, page: res.Page}
}

func authQuery(clientID string, p pkce, extra ...string) url.Values {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"}, "state": {"st-123"}, "scope": {"mcp"},
		"resource": {resource}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			q.Del(extra[i])
		} else {
			q.Set(extra[i], extra[i+1])
		}
	}
	return q
}

// code runs the whole browser flow and returns a code.
func (e *env) code(clientID string, p pkce) string {
	o := e.browse(authQuery(clientID, p), "approve")
	require.NotNil(e.t, o.location, "flow stopped on a page: %d %s", o.status, o.page)
	q := o.location.Query()
	require.Empty(e.t, q.Get("error"), q.Get("error_description"))
	assert.Equal(e.t, "st-123", q.Get("state"))
	assert.Equal(e.t, e.issuer, q.Get("iss"), "RFC 9207 iss in the authorization response")
	return q.Get("code")
}

func (e *env) tokenRequest(form url.Values, basicUser, basicPass string) (int, map[string]any, http.Header) {
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(basicUser, basicPass)
	}
	resp, err := e.http.Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out, resp.Header
}

func exchange(clientID, code string, p pkce) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "client_id": {clientID}, "code": {code},
		"code_verifier": {p.verifier}, "redirect_uri": {redirectURI}, "resource": {resource}}
}

func refreshForm(clientID, rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {rt}}
}

func (e *env) revoked(jti string) bool {
	ok, err := e.store.IsRevoked(context.Background(), jti)
	require.NoError(e.t, err)
	return ok
}

func jtiOf(t *testing.T, token string) (map[string]any, map[string]any) {
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	var h, c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, json.Unmarshal(hb, &h))
	require.NoError(t, json.Unmarshal(cb, &c))
	return h, c
}

func TestFlow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testFlow(t, newEnv(t, b, "OCTO, someone-else")) })
	}
}

func testFlow(t *testing.T, e *env) {
	client := e.publicClient()
	p := newPKCE()
	code := e.code(client, p)

	status, tok, hdr := e.tokenRequest(exchange(client, code, p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	assert.Equal(t, "no-store", hdr.Get("Cache-Control"))
	assert.Equal(t, "Bearer", tok["token_type"])
	head, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, "at+jwt", head["typ"])
	assert.Equal(t, "ES256", head["alg"])
	assert.NotEmpty(t, head["kid"])
	assert.Equal(t, e.issuer, claims["iss"])
	assert.Equal(t, "1001", claims["sub"])
	assert.Equal(t, resource, claims["aud"])
	assert.Equal(t, client, claims["client_id"])
	assert.Equal(t, "mcp", claims["scope"])
	assert.Equal(t, "octo", claims["username"])
	assert.Equal(t, "octo@example.com", claims["email"])
	firstJTI := claims["jti"].(string)

	// The token verifies against the published JWKS.
	resp, err := e.http.Get(e.issuer + "/.well-known/jwks.json")
	require.NoError(t, err)
	var set struct{ Keys []jwk.Object }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&set))
	resp.Body.Close()
	require.NotEmpty(t, set.Keys)
	_, err = jwt.Parse(tok["access_token"].(string), func(tk *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tk.Header["kid"] {
				x, _ := base64.RawURLEncoding.DecodeString(k.X)
				y, _ := base64.RawURLEncoding.DecodeString(k.Y)
				return jwkKey(x, y)
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}, jwt.WithValidMethods([]string{"ES256"}))
	require.NoError(t, err)

	// The code is single use: a second exchange fails and revokes what the first issued.
	status, body, _ := e.tokenRequest(exchange(client, code, p), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"])
	assert.True(t, e.revoked(firstJTI), "the replayed code's access token is published as revoked")
	status, _, _ = e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status, "the replayed code's refresh token is dead")

	// A fresh grant: refresh rotates, and replaying the old refresh token revokes the whole family.
	p = newPKCE()
	_, tok, _ = e.tokenRequest(exchange(client, e.code(client, p), p), "", "")
	rt1 := tok["refresh_token"].(string)
	status, tok2, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
	require.Equal(t, http.StatusOK, status, tok2)
	rt2 := tok2["refresh_token"].(string)
	assert.NotEqual(t, rt1, rt2, "refresh tokens rotate")
	_, c2 := jtiOf(t, tok2["access_token"].(string))
	status, body, _ = e.tokenRequest(refreshForm(client, rt1), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"])
	assert.True(t, e.revoked(c2["jti"].(string)), "replay revokes the access tokens of the family")
	status, _, _ = e.tokenRequest(refreshForm(client, rt2), "", "")
	assert.Equal(t, http.StatusBadRequest, status, "replay revokes the newest refresh token too")

	// The feed lists the revoked jtis with a cursor.
	resp, err = e.http.Get(e.issuer + "/revocations?since=0")
	require.NoError(t, err)
	var feed struct {
		Cursor  int64
		Revoked []struct {
			JTI string
			Exp int64
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&feed))
	resp.Body.Close()
	var listed []string
	for _, r := range feed.Revoked {
		listed = append(listed, r.JTI)
	}
	assert.Contains(t, listed, firstJTI)
	assert.Contains(t, listed, c2["jti"])
	assert.Positive(t, feed.Cursor)
}

func TestConfidentialClientsAndRevocation(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testConfidentialClientsAndRevocation(t, newEnv(t, b, "octo")) })
	}
}

func testConfidentialClientsAndRevocation(t *testing.T, e *env) {
	status, c := e.register(map[string]any{"client_name": "Claude", "redirect_uris": []string{"https://claude.ai/api/mcp/auth_callback", redirectURI},
		"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status, c)
	id, secret := c["client_id"].(string), c["client_secret"].(string)
	require.NotEmpty(t, secret)
	assert.Contains(t, c, "registration_access_token")
	assert.Equal(t, e.issuer+"/register/"+id, c["registration_client_uri"])
	assert.EqualValues(t, 0, c["client_secret_expires_at"], "the secret has no date; an unused registration ends instead")

	p := newPKCE()
	form := exchange(id, e.code(id, p), p)
	form.Set("client_secret", "wrong")
	status, body, h := e.tokenRequest(form, "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", body["error"])
	assert.Empty(t, h.Get("WWW-Authenticate"), "no Basic challenge for a client that did not use Basic")
	form.Del("client_secret")
	status, _, h = e.tokenRequest(form, id, "wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, `Basic realm="token"`, h.Get("WWW-Authenticate"), "a client that used Basic is challenged for Basic (RFC 6749 §5.2)")
	status, _, _ = e.tokenRequest(form, "", "")
	assert.Equal(t, http.StatusUnauthorized, status, "a confidential client must send its secret")
	form.Set("client_secret", secret)
	status, tok, _ := e.tokenRequest(form, "", "")
	require.Equal(t, http.StatusOK, status, tok)

	// Introspection and revocation, client-authenticated.
	post := func(path string, f url.Values) (int, map[string]any) {
		resp, err := e.http.PostForm(e.issuer+path, f)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	auth := url.Values{"client_id": {id}, "client_secret": {secret}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for a, b := range auth {
			f[a] = b
		}
		f.Set(k, v)
		return f
	}
	_, in := post("/introspect", with("token", tok["access_token"].(string)))
	assert.Equal(t, true, in["active"])
	assert.Equal(t, "octo", in["username"])
	status, _ = post("/revoke", with("token", tok["access_token"].(string)))
	assert.Equal(t, http.StatusOK, status)
	_, in = post("/introspect", with("token", tok["access_token"].(string)))
	assert.Equal(t, false, in["active"], "a revoked access token is inactive")
	status, _ = post("/revoke", with("token", tok["refresh_token"].(string)))
	assert.Equal(t, http.StatusOK, status)
	f2 := with("refresh_token", tok["refresh_token"].(string))
	f2.Set("grant_type", "refresh_token")
	status, _, _ = e.tokenRequest(f2, "", "")
	assert.Equal(t, http.StatusBadRequest, status, "a revoked refresh token is refused")
	status, _ = post("/revoke", url.Values{"client_id": {id}, "client_secret": {"wrong"}, "token": {"x"}})
	assert.Equal(t, http.StatusUnauthorized, status)

	// RFC 7592: read with the registration token; nothing without it; DELETE revokes and removes.
	regTok := c["registration_access_token"].(string)
	manage := func(method, tokn string) *http.Response {
		req, _ := http.NewRequest(method, e.issuer+"/register/"+id, nil)
		if tokn != "" {
			req.Header.Set("Authorization", "Bearer "+tokn)
		}
		resp, err := e.http.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	r := manage(http.MethodGet, "")
	assert.Equal(t, http.StatusUnauthorized, r.StatusCode)
	assert.Contains(t, r.Header.Get("WWW-Authenticate"), "Bearer")
	assert.Equal(t, http.StatusUnauthorized, manage(http.MethodGet, "wrong").StatusCode)
	other := e.publicClient()
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/register/"+other, nil)
	req.Header.Set("Authorization", "Bearer "+regTok)
	resp, err := e.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "a registration token opens only its own client")
	assert.Equal(t, http.StatusOK, manage(http.MethodGet, regTok).StatusCode)

	p = newPKCE()
	f := exchange(id, e.code(id, p), p)
	f.Set("client_secret", secret)
	_, live, _ := e.tokenRequest(f, "", "")
	_, lc := jtiOf(t, live["access_token"].(string))
	assert.Equal(t, http.StatusNoContent, manage(http.MethodDelete, regTok).StatusCode)
	assert.True(t, e.revoked(lc["jti"].(string)), "deleting a client revokes its access tokens")
	assert.Equal(t, http.StatusUnauthorized, manage(http.MethodGet, regTok).StatusCode)
}

func TestAuthorizeRejections(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testAuthorizeRejections(t, newEnv(t, b, "octo")) })
	}
}

func testAuthorizeRejections(t *testing.T, e *env) {
	client := e.publicClient()
	p := newPKCE()

	// Bad client or redirect URI: an error page, never a redirect.
	for name, q := range map[string]url.Values{
		"unknown client":        authQuery("nope", p),
		"prefix-sharing host":   authQuery(client, p, "redirect_uri", "http://127.0.0.1.evil.com:3000/callback"),
		"userinfo trick":        authQuery(client, p, "redirect_uri", "http://127.0.0.1@evil.com/callback"),
		"longer path":           authQuery(client, p, "redirect_uri", "http://127.0.0.1:3000/callback/more"),
		"unregistered https":    authQuery(client, p, "redirect_uri", "https://evil.com/callback"),
		"localhost.evil.com":    authQuery(client, p, "redirect_uri", "http://localhost.evil.com/callback"),
		"script in client name": authQuery("<script>alert(1)</script>", p),
	} {
		t.Run(name, func(t *testing.T) {
			o := e.browse(q, "")
			assert.Nil(t, o.location, "must not redirect")
			assert.Equal(t, http.StatusBadRequest, o.status)
			assert.NotContains(t, o.page, "<script>alert")
		})
	}

	// With a good client and redirect URI, errors go back to the client.
	for name, c := range map[string]struct {
		q    url.Values
		code string
	}{
		"no PKCE":           {authQuery(client, p, "code_challenge", ""), "invalid_request"},
		"plain PKCE":        {authQuery(client, p, "code_challenge_method", "plain"), "invalid_request"},
		"token flow":        {authQuery(client, p, "response_type", "token"), "unsupported_response_type"},
		"foreign resource":  {authQuery(client, p, "resource", "https://evil.example.com/mcp"), "invalid_target"},
		"missing resource":  {authQuery(client, p, "resource", ""), "invalid_target"},
		"user denies":       {authQuery(client, p), "access_denied"},
		"other loopback ok": {authQuery(client, p, "redirect_uri", "http://127.0.0.1:45678/callback"), ""},
	} {
		t.Run(name, func(t *testing.T) {
			action := "approve"
			if c.code == "access_denied" {
				action = "deny"
			}
			o := e.browse(c.q, action)
			require.NotNil(t, o.location, "page %d: %s", o.status, o.page)
			assert.Equal(t, c.code, o.location.Query().Get("error"), o.location.Query().Get("error_description"))
			if c.code != "" {
				assert.Equal(t, "st-123", o.location.Query().Get("state"))
			}
		})
	}

	// A user outside the allow list sees why, and is offered the way back with access_denied.
	require.NoError(t, e.gh.SetLogin("mallory"))
	o := e.browse(authQuery(client, p), "approve")
	assert.Equal(t, http.StatusForbidden, o.status)
	assert.Contains(t, o.page, "mallory")
	assert.Contains(t, o.page, "error=access_denied")
}

func TestTokenRejections(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testTokenRejections(t, newEnv(t, b, "octo")) })
	}
}

func testTokenRejections(t *testing.T, e *env) {
	a, b := e.publicClient(), e.publicClient()
	p := newPKCE()

	code := e.code(a, p)
	f := exchange(a, code, p)
	f.Set("code_verifier", newPKCE().verifier)
	status, body, _ := e.tokenRequest(f, "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"], "wrong PKCE verifier")

	code = e.code(a, p)
	status, body, _ = e.tokenRequest(exchange(b, code, p), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"], "a code redeemed by another client")

	f = exchange(a, e.code(a, p), p)
	f.Del("code_verifier")
	status, body, _ = e.tokenRequest(f, "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_request", body["error"], "missing verifier")

	f = exchange(a, e.code(a, p), p)
	f.Set("resource", otherMCP)
	status, body, _ = e.tokenRequest(f, "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_target", body["error"], "the token request's resource must match the authorization's")

	_, tok, _ := e.tokenRequest(exchange(a, e.code(a, p), p), "", "")
	status, body, _ = e.tokenRequest(refreshForm(b, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"], "a refresh token used by another client")
	status, _, _ = e.tokenRequest(refreshForm(a, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusOK, status, "the misuse did not burn the owner's token")

	status, body, _ = e.tokenRequest(url.Values{"grant_type": {"password"}, "client_id": {a}}, "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "unsupported_grant_type", body["error"])
	status, body, _ = e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "client_id": {"ghost"}}, "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", body["error"])
}

// A user removed from the allow list loses access at the next refresh.
func TestAllowListRecheckedAtRefresh(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testAllowListRecheckedAtRefresh(t, newEnv(t, b, "octo")) })
	}
}

func testAllowListRecheckedAtRefresh(t *testing.T, e *env) {
	client := e.publicClient()
	p := newPKCE()
	_, tok, _ := e.tokenRequest(exchange(client, e.code(client, p), p), "", "")
	e.start("someone-else") // the operator changes the allow list and restarts
	status, body, _ := e.tokenRequest(refreshForm(client, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"])
	assert.Contains(t, body["error_description"], "no longer allowed")
}

func TestRegistrationRejections(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testRegistrationRejections(t, newEnv(t, b, "octo")) })
	}
}

func testRegistrationRejections(t *testing.T, e *env) {
	for name, c := range map[string]struct {
		meta map[string]any
		code string
	}{
		"no redirect":        {map[string]any{"client_name": "x"}, "invalid_redirect_uri"},
		"fragment":           {map[string]any{"redirect_uris": []string{"https://a.example/cb#x"}}, "invalid_redirect_uri"},
		"userinfo":           {map[string]any{"redirect_uris": []string{"http://localhost@evil.com/cb"}}, "invalid_redirect_uri"},
		"http not loopback":  {map[string]any{"redirect_uris": []string{"http://localhost.evil.com/cb"}}, "invalid_redirect_uri"},
		"wildcard":           {map[string]any{"redirect_uris": []string{"https://*.example.com/cb"}}, "invalid_redirect_uri"},
		"javascript":         {map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}, "invalid_redirect_uri"},
		"data":               {map[string]any{"redirect_uris": []string{"data:text/html,hi"}}, "invalid_redirect_uri"},
		"too many":           {map[string]any{"redirect_uris": strings.Split(strings.Repeat("https://a.example/cb,", 11), ",")[:11]}, "invalid_redirect_uri"},
		"bad auth method":    {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "client_secret_jwt"}, "invalid_client_metadata"},
		"keys missing":       {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"},
		"keys and uri":       {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks", "jwks": map[string]any{"keys": []any{}}}, "invalid_client_metadata"},
		"http jwks_uri":      {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://a.example/jwks"}, "invalid_client_metadata"},
		"empty jwks":         {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{}}}, "invalid_client_metadata"},
		"HMAC alg":           {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks", "token_endpoint_auth_signing_alg": "HS256"}, "invalid_client_metadata"},
		"keys without jwt":   {map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none", "jwks_uri": "https://a.example/jwks"}, "invalid_client_metadata"},
		"implicit grant":     {map[string]any{"redirect_uris": []string{redirectURI}, "grant_types": []string{"implicit"}}, "invalid_client_metadata"},
		"name too long":      {map[string]any{"redirect_uris": []string{redirectURI}, "client_name": strings.Repeat("n", 500)}, "invalid_client_metadata"},
		"not a list":         {map[string]any{"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"},
		"private-use scheme": {map[string]any{"redirect_uris": []string{"com.example.app:/callback"}}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			status, body := e.register(c.meta)
			if c.code == "" {
				assert.Equal(t, http.StatusCreated, status, body)
				return
			}
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, c.code, body["error"])
			assert.NotEmpty(t, body["error_description"])
		})
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		req, _ := http.NewRequest(http.MethodGet, e.issuer+path, nil)
		req.Header.Set("Origin", "http://localhost:6274")
		resp, err := e.http.Do(req)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		resp.Body.Close()
		assert.Equal(t, "*", resp.Header.Get("Access-Control-Allow-Origin"))
		assert.Equal(t, e.issuer, m["issuer"], "issuer exactly as configured")
		assert.Equal(t, []any{"S256"}, m["code_challenge_methods_supported"])
		assert.Equal(t, []any{"code"}, m["response_types_supported"])
		assert.Equal(t, true, m["authorization_response_iss_parameter_supported"])
		assert.ElementsMatch(t, []any{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"}, m["token_endpoint_auth_methods_supported"])
		assert.ElementsMatch(t, []any{"RS256", "PS256", "ES256"}, m["token_endpoint_auth_signing_alg_values_supported"])
		assert.Contains(t, m["revocation_endpoint_auth_methods_supported"], "private_key_jwt")
		assert.ElementsMatch(t, []any{"mcp", "admin", "offline_access"}, m["scopes_supported"])
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint",
			"introspection_endpoint", "jwks_uri", "revocation_feed_endpoint"} {
			assert.True(t, strings.HasPrefix(m[k].(string), e.issuer+"/"), k)
		}
	}
}

// When Redis is down, endpoints answer 503 and issue nothing; when it is back, they work again.
func TestStoreDown(t *testing.T) {
	e := newEnv(t, backends[1], "octo")
	client := e.publicClient()
	p := newPKCE()
	code := e.code(client, p)
	e.redis.Stop()
	status, body, hdr := e.tokenRequest(exchange(client, code, p), "", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, "temporarily_unavailable", body["error"])
	assert.NotEmpty(t, hdr.Get("Retry-After"))
	assert.NotContains(t, body, "access_token")
	resp, err := e.http.Get(e.issuer + "/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)

	e.redis.Restart(t)
	require.Eventually(t, func() bool {
		r, err := e.http.Get(e.issuer + "/health")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	}, 10*time.Second, 100*time.Millisecond)
	status, _, _ = e.tokenRequest(exchange(client, code, p), "", "")
	assert.Equal(t, http.StatusOK, status, "the code survived the outage (AOF) and was not consumed by the failed attempt")
}

func jwkKey(x, y []byte) (*ecdsa.PublicKey, error) {
	return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
}

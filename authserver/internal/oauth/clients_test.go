package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientassertion"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientlife"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
)

// keyPair signs client assertions the way a private_key_jwt client does.
type keyPair struct {
	kid    string
	method jwt.SigningMethod
	key    crypto.Signer
}

func rsaPair(t *testing.T, kid string) keyPair {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	return keyPair{kid, jwt.SigningMethodRS256, k}
}

func ecPair(t *testing.T, kid string) keyPair {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return keyPair{kid, jwt.SigningMethodES256, k}
}

func (k keyPair) jwks() map[string]any {
	o, err := jwk.Key{ID: k.kid, Public: k.key.Public()}.Encode()
	if err != nil {
		panic(err) // the test's own keys are RSA or P-256
	}
	return map[string]any{"keys": []any{o}}
}

// assertion is a fresh RFC 7523 client assertion for clientID with audience aud.
func (k keyPair) assertion(t *testing.T, clientID, aud string) string {
	return k.assertionFor(t, clientID, aud)
}

// assertionFor is assertion with any aud claim (a list, say).
func (k keyPair) assertionFor(t *testing.T, clientID string, aud any) string {
	now := time.Now()
	tok := jwt.NewWithClaims(k.method, jwt.MapClaims{"iss": clientID, "sub": clientID, "aud": aud, "iat": now.Unix(),
		"exp": now.Add(time.Minute).Unix(), "jti": rand.Text()})
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.key)
	require.NoError(t, err)
	return s
}

func withAssertion(f url.Values, a string) url.Values {
	f.Set("client_assertion_type", clientassertion.Type)
	f.Set("client_assertion", a)
	return f
}

// docHost serves client documents and key sets over https, trusted by the env's fetcher.
func docHost(t *testing.T, e *env, routes map[string]func(base string) any) string {
	mux := http.NewServeMux()
	for path, body := range routes {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(body("https://" + r.Host))
		})
	}
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	f := clientmeta.New(clientmeta.Config{AllowPrivateAddresses: true, RootCAs: pool})
	e.docs, e.keys = f, f
	e.start("octo")
	return ts.URL
}

func TestPrivateKeyJWT(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testPrivateKeyJWT(t, newEnv(t, b, "octo")) })
	}
}

func testPrivateKeyJWT(t *testing.T, e *env) {
	signing, stranger, ec := rsaPair(t, "2026-11"), rsaPair(t, "2026-11"), ecPair(t, "ec")
	base := docHost(t, e, map[string]func(string) any{
		// ChatGPT's shape: private_key_jwt only, RS256, keys by URL.
		"/oauth/abc/client.json": func(base string) any {
			return map[string]any{"client_id": base + "/oauth/abc/client.json", "client_name": "ChatGPT", "client_uri": "https://chatgpt.com/",
				"redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code", "refresh_token"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "private_key_jwt",
				"token_endpoint_auth_signing_alg": "RS256", "jwks_uri": base + "/oauth/jwks.json"}
		},
		// The variant that also lists none.
		"/oauth/def/client.json": func(base string) any {
			return map[string]any{"client_id": base + "/oauth/def/client.json", "client_name": "ChatGPT",
				"redirect_uris": []string{redirectURI}, "grant_types": []string{"authorization_code", "refresh_token"},
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_methods_supported": []string{"none", "private_key_jwt"},
				"jwks_uri": base + "/oauth/jwks.json"}
		},
		"/oauth/jwks.json": func(string) any { return signing.jwks() },
	})
	strict, lenient := base+"/oauth/abc/client.json", base+"/oauth/def/client.json"
	token := e.issuer + "/token"

	// The whole flow with assertions: code, token, refresh; aud may be the token endpoint or the issuer.
	p := newPKCE()
	status, tok, _ := e.tokenRequest(withAssertion(exchange(strict, e.code(strict, p), p), signing.assertion(t, strict, token)), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	_, claims := jtiOf(t, tok["access_token"].(string))
	assert.Equal(t, strict, claims["client_id"])
	used := signing.assertion(t, strict, e.issuer)
	f := withAssertion(refreshForm(strict, tok["refresh_token"].(string)), used)
	f.Del("client_id") // RFC 7523 §3: the assertion names the client
	status, tok, _ = e.tokenRequest(f, "", "")
	require.Equal(t, http.StatusOK, status, tok)

	// Refusals, each 401 invalid_client with a reason.
	for name, c := range map[string]struct {
		form url.Values
		want string
	}{
		"replayed assertion": {withAssertion(refreshForm(strict, tok["refresh_token"].(string)), used), "already used"},
		"no assertion":       {refreshForm(strict, tok["refresh_token"].(string)), "authenticates with private_key_jwt, not none"},
		"another key":        {withAssertion(refreshForm(strict, tok["refresh_token"].(string)), stranger.assertion(t, strict, token)), "signature does not verify"},
		"not the declared alg": {withAssertion(refreshForm(strict, tok["refresh_token"].(string)), ec.assertion(t, strict, token)),
			"algorithm this server does not accept"},
		"another server's aud": {withAssertion(refreshForm(strict, tok["refresh_token"].(string)), signing.assertion(t, strict, "https://other.example/token")),
			"aud must be this authorization server's issuer identifier, " + e.issuer + " (or " + token + ")"},
		// draft-ietf-oauth-rfc7523bis: one string, never a list, even one that names this server (audience injection).
		"aud a list naming this server": {withAssertion(refreshForm(strict, tok["refresh_token"].(string)),
			signing.assertionFor(t, strict, []string{"https://other.example", e.issuer})), "not a list"},
		"aud the issuer alone, in a list": {withAssertion(refreshForm(strict, tok["refresh_token"].(string)),
			signing.assertionFor(t, strict, []string{e.issuer})), "not a list"},
		"aud another endpoint of this server": {withAssertion(refreshForm(strict, tok["refresh_token"].(string)),
			signing.assertion(t, strict, e.issuer+"/introspect")), "aud must be"},
		"another client's assertion": {withAssertion(refreshForm(lenient, "x"), signing.assertion(t, strict, token)), "differs from the client assertion's iss"},
	} {
		t.Run(name, func(t *testing.T) {
			status, out, _ := e.tokenRequest(c.form, "", "")
			assert.Equal(t, http.StatusUnauthorized, status)
			assert.Equal(t, "invalid_client", out["error"])
			assert.Contains(t, out["error_description"], c.want)
		})
	}
	status, tok2, _ := e.tokenRequest(withAssertion(refreshForm(strict, tok["refresh_token"].(string)), signing.assertion(t, strict, token)), "", "")
	assert.Equal(t, http.StatusOK, status, "the refusals burned nothing: %v", tok2)

	// Two methods at once is a malformed request.
	f = withAssertion(refreshForm(strict, "x"), signing.assertion(t, strict, token))
	f.Set("client_secret", "s")
	status, out, _ := e.tokenRequest(f, "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_request", out["error"])

	// Malformed client authentication: a clear error, nothing consumed.
	f = refreshForm(strict, "x")
	f.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer")
	f.Set("client_assertion", "x")
	status, out, _ = e.tokenRequest(f, "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_request", out["error"])
	assert.Contains(t, out["error_description"], "client_assertion_type must be")
	status, out, _ = e.tokenRequest(withAssertion(refreshForm(strict, "x"), "not-a-jwt"), "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", out["error"])
	assert.Contains(t, out["error_description"], "not a JWT")
	status, out = e.register(map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "private_key_jwt", "jwks": nil})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, out["error_description"], "needs the client's public keys")

	// A document that also lists none may use either.
	p = newPKCE()
	status, tok, _ = e.tokenRequest(exchange(lenient, e.code(lenient, p), p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	status, tok, _ = e.tokenRequest(withAssertion(refreshForm(lenient, tok["refresh_token"].(string)), signing.assertion(t, lenient, token)), "", "")
	require.Equal(t, http.StatusOK, status, tok)

	// Revocation and introspection take assertions too, with the same aud: the issuer (or the token endpoint); the
	// URL of the endpoint itself is not accepted.
	resp, err := e.http.PostForm(e.issuer+"/introspect", withAssertion(url.Values{"client_id": {lenient}, "token": {tok["access_token"].(string)}},
		signing.assertion(t, lenient, e.issuer+"/introspect")))
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp.Body.Close()
	resp, err = e.http.PostForm(e.issuer+"/introspect", withAssertion(url.Values{"client_id": {lenient}, "token": {tok["access_token"].(string)}},
		signing.assertion(t, lenient, e.issuer)))
	require.NoError(t, err)
	var in map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&in))
	resp.Body.Close()
	assert.Equal(t, true, in["active"])

	// A registered client may choose private_key_jwt, with its keys inline; it gets no secret.
	status, reg := e.register(map[string]any{"client_name": "Agent", "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "private_key_jwt",
		"token_endpoint_auth_signing_alg": "ES256", "jwks": ec.jwks()})
	require.Equal(t, http.StatusCreated, status, reg)
	assert.NotContains(t, reg, "client_secret")
	assert.Equal(t, "ES256", reg["token_endpoint_auth_signing_alg"])
	assert.NotNil(t, reg["jwks"])
	agent := reg["client_id"].(string)
	p = newPKCE()
	status, tok, _ = e.tokenRequest(withAssertion(exchange(agent, e.code(agent, p), p), ec.assertion(t, agent, token)), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	status, out, _ = e.tokenRequest(refreshForm(agent, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusUnauthorized, status, "a private_key_jwt client cannot fall back to none: %v", out)

	// And by URL, fetched through the same guarded fetcher.
	status, reg = e.register(map[string]any{"client_name": "Agent 2", "redirect_uris": []string{redirectURI},
		"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": base + "/oauth/jwks.json"})
	require.Equal(t, http.StatusCreated, status, reg)
	agent2 := reg["client_id"].(string)
	p = newPKCE()
	status, tok, _ = e.tokenRequest(withAssertion(exchange(agent2, e.code(agent2, p), p), signing.assertion(t, agent2, token)), "", "")
	require.Equal(t, http.StatusOK, status, tok)
}

func TestScopeTolerance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testScopeTolerance(t, newEnv(t, b, "octo")) })
	}
}

func testScopeTolerance(t *testing.T, e *env) {
	client := e.publicClient() // registered for refresh_token
	status, c := e.register(map[string]any{"client_name": "No refresh", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none"})
	require.Equal(t, http.StatusCreated, status, c)
	noRefresh := c["client_id"].(string)

	// Claude.ai's habits: stray whitespace, repeats, a scope nobody listed. The consent page shows what is granted,
	// and what is not.
	messy := "  mcp\toffline_access   claudeai mcp "
	o := e.browse(authQuery(client, newPKCE(), "scope", messy), "")
	require.Equal(t, http.StatusOK, o.status, o.page)
	assert.Contains(t, o.page, "<code>mcp</code>: use this MCP server")
	assert.Contains(t, o.page, "<code>offline_access</code>: stay connected")
	assert.Contains(t, o.page, "It also asked for <code>claudeai</code>")

	for name, c := range map[string]struct {
		client, scope, want string
	}{
		"messy":                     {client, messy, "mcp offline_access"},
		"only unknown: the default": {client, "openid profile claudeai", "mcp"},
		"only offline_access":       {client, " offline_access", "mcp offline_access"},
		"none at all":               {client, "", "mcp"},
		"every metadata scope":      {client, "mcp admin offline_access", "admin mcp offline_access"},
		"offline_access without the refresh grant": {noRefresh, "mcp offline_access", "mcp"},
	} {
		t.Run(name, func(t *testing.T) {
			p := newPKCE()
			o := e.browse(authQuery(c.client, p, "scope", c.scope), "approve")
			require.NotNil(t, o.location, "%d %s", o.status, o.page)
			require.Empty(t, o.location.Query().Get("error"), o.location.Query().Get("error_description"))
			status, tok, _ := e.tokenRequest(exchange(c.client, o.location.Query().Get("code"), p), "", "")
			require.Equal(t, http.StatusOK, status, tok)
			assert.Equal(t, c.want, tok["scope"], "the token response says what was granted")
			_, claims := jtiOf(t, tok["access_token"].(string))
			assert.Equal(t, c.want, claims["scope"])
		})
	}

	// A refresh narrows, ignores what was not granted, and never widens.
	p := newPKCE()
	o = e.browse(authQuery(client, p, "scope", "mcp admin"), "approve")
	_, tok, _ := e.tokenRequest(exchange(client, o.location.Query().Get("code"), p), "", "")
	require.Equal(t, "admin mcp", tok["scope"])
	f := refreshForm(client, tok["refresh_token"].(string))
	f.Set("scope", " mcp  offline_access root")
	status, tok, _ = e.tokenRequest(f, "", "")
	require.Equal(t, http.StatusOK, status, tok)
	assert.Equal(t, "mcp", tok["scope"])
	f = refreshForm(client, tok["refresh_token"].(string))
	f.Set("scope", "admin")
	_, tok, _ = e.tokenRequest(f, "", "")
	assert.Equal(t, "mcp", tok["scope"], "admin was narrowed away: a refresh cannot bring it back")

	// Registration keeps the scopes this server offers and says so.
	status, reg := e.register(map[string]any{"client_name": "x", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none",
		"scope": "admin  claudeai"})
	require.Equal(t, http.StatusCreated, status, reg)
	assert.Equal(t, "admin", reg["scope"])
	adminOnly := reg["client_id"].(string)
	p = newPKCE()
	o = e.browse(authQuery(adminOnly, p, "scope", ""), "approve")
	_, tok, _ = e.tokenRequest(exchange(adminOnly, o.location.Query().Get("code"), p), "", "")
	assert.Equal(t, "admin", tok["scope"], "a client asking for nothing gets its registered scope")
	p = newPKCE()
	o = e.browse(authQuery(adminOnly, p, "scope", "mcp"), "approve")
	_, tok, _ = e.tokenRequest(exchange(adminOnly, o.location.Query().Get("code"), p), "", "")
	assert.Equal(t, "mcp", tok["scope"], "a self-registered client's registered scope is its default, not a ceiling")
	status, reg = e.register(map[string]any{"client_name": "x", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none",
		"scope": "claudeai"})
	require.Equal(t, http.StatusCreated, status, reg)
	assert.NotContains(t, reg, "scope", "nothing offered: the server's default applies")
}

// Registrations nobody uses go away; used ones stay, pushed forward by each use. A client that is gone gets 401
// invalid_client at the token endpoint, which makes real clients register again.
func TestClientLifetimes(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testClientLifetimes(t, b) })
	}
}

func testClientLifetimes(t *testing.T, b backendCase) {
	e := newEnv(t, b, "octo")
	e.life = clientlife.Policy{Unused: time.Second, Idle: time.Hour}
	e.start("octo")
	ctx := context.Background()
	idle, active := e.publicClient(), e.publicClient()
	p := newPKCE()
	status, tok, _ := e.tokenRequest(exchange(active, e.code(active, p), p), "", "")
	require.Equal(t, http.StatusOK, status, tok)
	c, err := e.store.GetClient(ctx, active)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), c.LastUsedAt, 5*time.Second, "the use is recorded")
	assert.WithinDuration(t, time.Now().Add(time.Hour), c.ExpiresAt, 5*time.Second, "and keeps the client an hour past it")

	time.Sleep(1600 * time.Millisecond)
	status, out, _ := e.tokenRequest(exchange(idle, "some-code", p), "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", out["error"])
	assert.Contains(t, out["error_description"], "register again")
	o := e.browse(authQuery(idle, newPKCE()), "approve")
	assert.Equal(t, http.StatusBadRequest, o.status)
	assert.Contains(t, o.page, "Unknown application")
	status, tok, _ = e.tokenRequest(refreshForm(active, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusOK, status, "the used client outlived the unused rule: %v", tok)

	// A client deleted through RFC 7592 is unknown at once.
	status, reg := e.register(map[string]any{"client_name": "x", "redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}})
	require.Equal(t, http.StatusCreated, status)
	id := reg["client_id"].(string)
	p = newPKCE()
	_, tok, _ = e.tokenRequest(exchange(id, e.code(id, p), p), "", "")
	req, _ := http.NewRequest(http.MethodDelete, e.issuer+"/register/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+reg["registration_access_token"].(string))
	resp, err := e.http.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	status, out, _ = e.tokenRequest(refreshForm(id, tok["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", out["error"])
}

// Clients that derive the metadata address from the MCP URL's path get the same document.
func TestMetadataAtPathSuffixedAddresses(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	for _, path := range []string{"/.well-known/oauth-authorization-server/everything/mcp", "/.well-known/openid-configuration/everything/mcp"} {
		var m map[string]any
		resp, err := e.http.Get(e.issuer + path)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&m))
		resp.Body.Close()
		assert.Equal(t, e.issuer, m["issuer"])
		assert.True(t, strings.HasSuffix(m["token_endpoint"].(string), "/token"))
	}
}

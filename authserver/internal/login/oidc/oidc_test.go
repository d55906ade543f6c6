package oidc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/hydratest"
)

// The redirect URI registered at Hydra. Nothing listens there: the browser below stops at the redirect to it.
const redirectURL = "http://127.0.0.1:1/oidc/corp/callback"

func newProvider(t *testing.T, h *hydratest.Server, cfg Config, policy Policy) *Provider {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = h.Client(t, redirectURL)
	}
	if cfg.Name == "" {
		cfg.Name = "corp"
	}
	cfg.Issuer, cfg.RedirectURL = h.Issuer, redirectURL
	p, err := New(context.Background(), cfg, policy, nil)
	require.NoError(t, err)
	return p
}

func mustPolicy(t *testing.T, subjects, emails, domains, groups string) Policy {
	t.Helper()
	p, err := ParsePolicy(subjects, emails, domains, groups)
	require.NoError(t, err)
	return p
}

func newAttempt(provider string) store.LoginAttempt {
	return store.LoginAttempt{Provider: provider, Verifier: oauth2.GenerateVerifier(), Nonce: rand.Text()}
}

// authURL is where p sends the browser for attempt a.
func authURL(t *testing.T, p *Provider, state string, a store.LoginAttempt) string {
	t.Helper()
	u, err := p.AuthCodeURL(context.Background(), state, a)
	require.NoError(t, err)
	return u
}

// browse is the user's browser: from the provider's authorization URL through Hydra and its login and consent app
// to the redirect back to us, whose query it returns.
func browse(t *testing.T, authURL string) url.Values {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := authURL
	for range 10 {
		resp, err := c.Get(next)
		require.NoError(t, err)
		resp.Body.Close()
		require.True(t, resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther, "HTTP %d at %s", resp.StatusCode, next)
		loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		if strings.HasPrefix(loc.String(), redirectURL) {
			return loc.Query()
		}
		next = loc.String()
	}
	t.Fatal("the login did not come back")
	return nil
}

// wholeLogin is a whole login: the browser's round trip, then Login with what came back.
func wholeLogin(t *testing.T, p *Provider, a store.LoginAttempt) (*store.User, error) {
	t.Helper()
	q := browse(t, authURL(t, p, "state-"+rand.Text(), a))
	require.Empty(t, q.Get("error"), q.Get("error_description"))
	return p.Login(context.Background(), login.Callback{Code: q.Get("code"), Issuer: q.Get("iss")}, a)
}

func denied(t *testing.T, err error) *login.DeniedError {
	t.Helper()
	var d *login.DeniedError
	require.ErrorAs(t, err, &d)
	return d
}

// The claim rules against a real provider: a user is let in by subject, verified e-mail, e-mail domain or group,
// and only so.
func TestClaimRules(t *testing.T) {
	h := hydratest.Start(t)
	alice := hydratest.User{Subject: "248289761001", Claims: map[string]any{"email": "alice@example.com",
		"email_verified": true, "preferred_username": "alice", "name": "Alice Liddell", "groups": []string{"staff", "mcp-users"}}}
	h.SetUser(alice)

	t.Run("verified e-mail", func(t *testing.T) {
		p := newProvider(t, h, Config{}, mustPolicy(t, "", "Alice@Example.com", "", ""))
		u, err := wholeLogin(t, p, newAttempt("corp"))
		require.NoError(t, err)
		assert.Equal(t, store.User{ID: "corp:248289761001", Provider: "corp", Login: "alice", Name: "Alice Liddell",
			Email: "alice@example.com", Groups: []string{"staff", "mcp-users"}}, *u,
			"the id is the provider's sub, namespaced by the provider's name; every group (the login service keeps the declared ones)")
	})
	t.Run("subject", func(t *testing.T) {
		p := newProvider(t, h, Config{}, mustPolicy(t, "someone-else, 248289761001", "", "", ""))
		_, err := wholeLogin(t, p, newAttempt("corp"))
		require.NoError(t, err)
	})
	t.Run("domain", func(t *testing.T) {
		p := newProvider(t, h, Config{}, mustPolicy(t, "", "", "example.com", ""))
		_, err := wholeLogin(t, p, newAttempt("corp"))
		require.NoError(t, err)
		p = newProvider(t, h, Config{}, mustPolicy(t, "", "", "sub.example.com, example.org", ""))
		_, err = wholeLogin(t, p, newAttempt("corp"))
		assert.Equal(t, "Corp user alice is not allowed to use this server", denied(t, err).Reason, "sub.example.com is not example.com")
	})
	t.Run("group", func(t *testing.T) {
		p := newProvider(t, h, Config{DisplayName: "Corp SSO"}, mustPolicy(t, "", "", "", "mcp-users"))
		_, err := wholeLogin(t, p, newAttempt("corp"))
		require.NoError(t, err)
	})
	t.Run("wrong group", func(t *testing.T) {
		p := newProvider(t, h, Config{DisplayName: "Corp SSO"}, mustPolicy(t, "", "", "", "admins, MCP-USERS"))
		_, err := wholeLogin(t, p, newAttempt("corp"))
		d := denied(t, err)
		assert.Equal(t, "alice", d.Login)
		assert.Equal(t, "Corp SSO user alice is not allowed to use this server: they are in none of the allowed groups", d.Reason,
			"groups compare exactly, and the refusal does not list the allowed ones")
	})
	t.Run("roles in a nested claim", func(t *testing.T) {
		h.SetUser(hydratest.User{Subject: "kc-1", Claims: map[string]any{"realm_access": map[string]any{"roles": []string{"mcp"}}}})
		defer h.SetUser(alice)
		p := newProvider(t, h, Config{GroupsClaim: "realm_access.roles"}, mustPolicy(t, "", "", "", "mcp"))
		u, err := wholeLogin(t, p, newAttempt("corp"))
		require.NoError(t, err)
		assert.Equal(t, "kc-1", u.Login, "no name claim and no verified address: the sub names the user")
		assert.Empty(t, u.Email)
	})
	t.Run("no groups claim", func(t *testing.T) {
		h.SetUser(hydratest.User{Subject: "bob-1", Claims: map[string]any{"preferred_username": "bob"}})
		defer h.SetUser(alice)
		p := newProvider(t, h, Config{}, mustPolicy(t, "", "", "", "staff"))
		_, err := wholeLogin(t, p, newAttempt("corp"))
		assert.Contains(t, denied(t, err).Reason, "Corp sent no groups claim for them")
	})
	t.Run("nobody configured", func(t *testing.T) {
		p := newProvider(t, h, Config{}, Policy{})
		_, err := wholeLogin(t, p, newAttempt("corp"))
		assert.Contains(t, denied(t, err).Reason, "allows no Corp user yet: its administrator must configure")
	})
	t.Run("anyone", func(t *testing.T) {
		p := newProvider(t, h, Config{}, mustPolicy(t, "*", "", "", ""))
		_, err := wholeLogin(t, p, newAttempt("corp"))
		require.NoError(t, err)
	})
}

// An address the provider has not verified is worth nothing: it lets nobody in by address or domain, and it is not
// put in the user's record (so never in a token or an X-User-Email header).
func TestUnverifiedEmail(t *testing.T) {
	h := hydratest.Start(t)
	for name, verified := range map[string]any{"false": false, "absent": nil, "string": "no"} {
		t.Run(name, func(t *testing.T) {
			claims := map[string]any{"email": "mallory@example.com", "preferred_username": "mallory"}
			if verified != nil {
				claims["email_verified"] = verified
			}
			h.SetUser(hydratest.User{Subject: "m-1", Claims: claims})
			p := newProvider(t, h, Config{}, mustPolicy(t, "", "mallory@example.com", "example.com", ""))
			_, err := wholeLogin(t, p, newAttempt("corp"))
			d := denied(t, err)
			assert.Equal(t, "Corp user mallory is not allowed to use this server: Corp does not say that the e-mail address "+
				"mallory@example.com is verified, so it cannot admit them", d.Reason)

			p = newProvider(t, h, Config{}, mustPolicy(t, "m-1", "", "", ""))
			u, err := wholeLogin(t, p, newAttempt("corp"))
			require.NoError(t, err)
			assert.Empty(t, u.Email, "an unverified address is not the user's")
		})
	}
	// Some providers (AWS Cognito) send the flag as a string.
	h.SetUser(hydratest.User{Subject: "c-1", Claims: map[string]any{"email": "carol@example.com", "email_verified": "true"}})
	p := newProvider(t, h, Config{}, mustPolicy(t, "", "", "example.com", ""))
	u, err := wholeLogin(t, p, newAttempt("corp"))
	require.NoError(t, err)
	assert.Equal(t, "carol@example.com", u.Email)
	assert.Equal(t, "carol@example.com", u.Login, "no preferred_username: the verified address names the user")
}

// The ID token must be this login's: a token carrying another attempt's nonce is refused even though the provider
// issued and signed it, and a code redeemed with another verifier is refused by the provider (PKCE).
func TestNonceAndPKCE(t *testing.T) {
	h := hydratest.Start(t)
	p := newProvider(t, h, Config{}, mustPolicy(t, "*", "", "", ""))
	a := newAttempt("corp")
	q := browse(t, authURL(t, p, "state-"+rand.Text(), a))

	other := a
	other.Nonce = rand.Text()
	_, err := p.Login(context.Background(), login.Callback{Code: q.Get("code")}, other)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nonce is not this login's")

	a2 := newAttempt("corp")
	q = browse(t, authURL(t, p, "state-"+rand.Text(), a2))
	wrong := a2
	wrong.Verifier = oauth2.GenerateVerifier()
	_, err = p.Login(context.Background(), login.Callback{Code: q.Get("code")}, wrong)
	assert.ErrorIs(t, err, login.ErrCodeRejected, "Hydra refuses a verifier that is not the challenge's")

	a3 := newAttempt("corp")
	q = browse(t, authURL(t, p, "state-"+rand.Text(), a3))
	_, err = p.Login(context.Background(), login.Callback{Code: q.Get("code")}, a3)
	require.NoError(t, err)
	_, err = p.Login(context.Background(), login.Callback{Code: q.Get("code")}, a3)
	assert.ErrorIs(t, err, login.ErrCodeRejected, "a code is used once")

	_, err = p.Login(context.Background(), login.Callback{}, a2)
	assert.ErrorIs(t, err, login.ErrCodeRejected)
	_, err = p.Login(context.Background(), login.Callback{Code: "x"}, store.LoginAttempt{Provider: "corp"})
	assert.ErrorContains(t, err, "no PKCE verifier or nonce")
}

// tokenFrom logs in at h through p's configuration and returns the raw token response, unverified.
func tokenFrom(t *testing.T, p *Provider, a store.LoginAttempt) *oauth2.Token {
	t.Helper()
	q := browse(t, authURL(t, p, "state-"+rand.Text(), a))
	tok, err := p.ready.Load().oauth.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(a.Verifier))
	require.NoError(t, err)
	return tok
}

// What go-oidc checks of the ID token, each with a real token from a real provider: the issuer (a token from
// another provider), the audience (a token issued to another client of the same provider), the signature (a token
// altered on the way), the expiry.
func TestIDTokenChecks(t *testing.T) {
	a := hydratest.StartWith(t, hydratest.Options{IDTokenTTL: 2 * time.Second})
	b := hydratest.Start(t)
	pa := newProvider(t, a, Config{}, mustPolicy(t, "*", "", "", ""))
	pb := newProvider(t, b, Config{}, mustPolicy(t, "*", "", "", ""))
	ctx := context.Background()

	t.Run("wrong issuer", func(t *testing.T) {
		at := newAttempt("corp")
		tok := tokenFrom(t, pb, at)
		_, err := pb.identify(ctx, tok, at.Nonce)
		require.NoError(t, err, "the token is good for the provider that issued it")
		_, err = pa.identify(ctx, tok, at.Nonce)
		assert.ErrorContains(t, err, "failed to verify signature", "another provider's key is not a's")

		// Tenants of a multi-tenant provider (Entra ID, Auth0, ...) share its signing keys: only the issuer tells
		// their tokens apart. b signs with a's key now; its token's signature verifies at a, its issuer does not.
		b.ShareSigningKey(t, a)
		tok = tokenFrom(t, pb, at)
		_, err = pb.identify(ctx, tok, at.Nonce)
		require.NoError(t, err)
		_, err = pa.identify(ctx, tok, at.Nonce)
		assert.ErrorContains(t, err, "issued by a different provider")

		// RFC 9207: a response whose iss names another provider is refused before its code is used.
		q := browse(t, authURL(t, pa, "state-"+rand.Text(), at))
		_, err = pa.Login(ctx, login.Callback{Code: q.Get("code"), Issuer: b.Issuer}, at)
		assert.ErrorContains(t, err, "it comes from another provider")
	})
	t.Run("wrong audience", func(t *testing.T) {
		other := newProvider(t, a, Config{}, mustPolicy(t, "*", "", "", "")) // another client at the same provider
		at := newAttempt("corp")
		tok := tokenFrom(t, other, at)
		_, err := pa.identify(ctx, tok, at.Nonce)
		assert.ErrorContains(t, err, "expected audience")
	})
	t.Run("altered signature", func(t *testing.T) {
		at := newAttempt("corp")
		tok := tokenFrom(t, pa, at)
		raw := tok.Extra("id_token").(string)
		parts := strings.Split(raw, ".")
		sig := []byte(parts[2])
		// Another character of the base64url alphabet: the signature still decodes, and no longer verifies.
		if sig[10] == 'A' {
			sig[10] = 'B'
		} else {
			sig[10] = 'A'
		}
		altered := tok.WithExtra(map[string]any{"id_token": parts[0] + "." + parts[1] + "." + string(sig)})
		_, err := pa.identify(ctx, altered, at.Nonce)
		assert.ErrorContains(t, err, "signature")
		_, err = pa.identify(ctx, tok.WithExtra(map[string]any{}), at.Nonce)
		assert.ErrorContains(t, err, "no ID token")
	})
	t.Run("expired", func(t *testing.T) {
		at := newAttempt("corp")
		tok := tokenFrom(t, pa, at)
		_, err := pa.identify(ctx, tok, at.Nonce)
		require.NoError(t, err)
		time.Sleep(2100 * time.Millisecond)
		_, err = pa.identify(ctx, tok, at.Nonce)
		assert.ErrorContains(t, err, "token is expired")
	})
}

// Discovery: the issuer configured must be exactly the one the provider states; an unreachable provider does not
// stop the start, and says where it looked.
func TestDiscovery(t *testing.T) {
	h := hydratest.Start(t)
	id, secret := h.Client(t, redirectURL)
	cfg := Config{Name: "corp", Issuer: strings.Replace(h.Issuer, "127.0.0.1", "localhost", 1), ClientID: id, ClientSecret: secret,
		RedirectURL: redirectURL}
	_, err := New(context.Background(), cfg, Policy{}, nil)
	assert.ErrorContains(t, err, "names the issuer \""+h.Issuer+"\", not")

	cfg.Issuer = h.Issuer + "/"
	_, err = New(context.Background(), cfg, Policy{}, nil)
	assert.ErrorContains(t, err, "set the issuer to exactly the provider's", "a trailing slash is another issuer")

	cfg.Issuer = "http://127.0.0.1:1"
	p, err := New(context.Background(), cfg, Policy{}, nil)
	require.NoError(t, err, "an unreachable provider does not stop the start")
	assert.ErrorIs(t, p.Ready(), login.ErrUnavailable)
	assert.ErrorContains(t, p.Ready(), "discovery at http://127.0.0.1:1/.well-known/openid-configuration failed")

	for _, bad := range []Config{
		{Name: "github", Issuer: h.Issuer, ClientID: id, ClientSecret: secret, RedirectURL: redirectURL},
		{Name: "Corp", Issuer: h.Issuer, ClientID: id, ClientSecret: secret, RedirectURL: redirectURL},
		{Name: "corp", Issuer: h.Issuer, ClientID: id, RedirectURL: redirectURL},
		{Name: "corp", Issuer: "accounts.google.com", ClientID: id, ClientSecret: secret, RedirectURL: redirectURL},
		{Name: "corp", Issuer: h.Issuer, ClientID: id, ClientSecret: secret, RedirectURL: "/oidc/corp/callback"},
	} {
		_, err := New(context.Background(), bad, Policy{}, nil)
		assert.Error(t, err, "%+v", bad)
	}

	p, err = New(context.Background(), Config{Name: "corp", Issuer: h.Issuer, ClientID: id, ClientSecret: secret,
		RedirectURL: redirectURL, Scopes: []string{"email"}}, Policy{}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"openid", "email"}, p.ready.Load().oauth.Scopes, "openid is always asked for")
	assert.Equal(t, "/oidc/corp/callback", p.CallbackPath())
	u, err := url.Parse(authURL(t, p, "st", newAttempt("corp")))
	require.NoError(t, err)
	assert.Equal(t, "S256", u.Query().Get("code_challenge_method"))
	assert.NotEmpty(t, u.Query().Get("nonce"))
}

// With userinfo on, its claims complete the ID token's, and its sub must be the ID token's.
func TestUserInfo(t *testing.T) {
	h := hydratest.Start(t)
	h.SetUser(hydratest.User{Subject: "u-7", Claims: map[string]any{"email": "dave@example.com", "email_verified": true,
		"groups": []string{"mcp"}}})
	p := newProvider(t, h, Config{UserInfo: true}, mustPolicy(t, "", "", "", "mcp"))
	u, err := wholeLogin(t, p, newAttempt("corp"))
	require.NoError(t, err)
	assert.Equal(t, "dave@example.com", u.Email)

	merged := mergeClaims(map[string]any{"email": "a@example.com"}, map[string]any{"email": "b@example.com",
		"email_verified": true, "groups": []any{"x"}})
	assert.Equal(t, map[string]any{"email": "a@example.com", "groups": []any{"x"}}, merged,
		"an address and its verification come from one source")
}

// A provider whose app is also an upstream asks for the upstream's scopes at login and hands each admitted login's
// token to be kept; a refused login keeps nothing, and a token that cannot be kept fails the login.
func TestKeepTokens(t *testing.T) {
	h := hydratest.Start(t)
	p := newProvider(t, h, Config{ExtraScopes: []string{"offline_access", "openid"}}, mustPolicy(t, "", "", "example.com", ""))
	type kept struct {
		user string
		tok  *oauth2.Token
	}
	var got []kept
	p.KeepTokens(func(_ context.Context, userID string, tok *oauth2.Token) error {
		got = append(got, kept{userID, tok})
		if userID == "corp:broken" {
			return errors.New("the store is down")
		}
		return nil
	})
	assert.Contains(t, authURL(t, p, "s", newAttempt("corp")), "scope=openid+email+profile+offline_access", "each scope once, the extra ones last")

	h.SetUser(hydratest.User{Subject: "alice", Claims: map[string]any{"email": "alice@example.com", "email_verified": true}})
	u, err := wholeLogin(t, p, newAttempt("corp"))
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, u.ID, got[0].user)
	assert.NotEmpty(t, got[0].tok.AccessToken)
	assert.NotEmpty(t, got[0].tok.RefreshToken, "offline_access was asked for: the connection can be refreshed")

	h.SetUser(hydratest.User{Subject: "mallory", Claims: map[string]any{"email": "mallory@elsewhere.example", "email_verified": true}})
	_, err = wholeLogin(t, p, newAttempt("corp"))
	denied(t, err)
	assert.Len(t, got, 1, "a refused login keeps nothing")

	h.SetUser(hydratest.User{Subject: "broken", Claims: map[string]any{"email": "bob@example.com", "email_verified": true}})
	_, err = wholeLogin(t, p, newAttempt("corp"))
	assert.ErrorContains(t, err, "keep the user's token as their connected account: the store is down")
}

// At refresh, the rules that need no login are checked again on what the login recorded.
func TestMayRefresh(t *testing.T) {
	h := hydratest.Start(t)
	p := newProvider(t, h, Config{}, mustPolicy(t, "s-1", "", "example.com", ""))
	ok, _ := p.MayRefresh(store.User{ID: "corp:s-1", Provider: "corp", Login: "x"})
	assert.True(t, ok)
	ok, _ = p.MayRefresh(store.User{ID: "corp:s-2", Provider: "corp", Login: "y", Email: "y@example.com"})
	assert.True(t, ok)
	ok, reason := p.MayRefresh(store.User{ID: "corp:s-3", Provider: "corp", Login: "z", Email: "z@example.org"})
	assert.False(t, ok)
	assert.Equal(t, "Corp user z is no longer allowed to use this server", reason)
	ok, _ = p.MayRefresh(store.User{ID: "s-1", Login: "x"})
	assert.False(t, ok, "a GitHub user is not this provider's")

	groups := newProvider(t, h, Config{}, mustPolicy(t, "", "", "", "mcp"))
	ok, _ = groups.MayRefresh(store.User{ID: "corp:s-9", Provider: "corp", Login: "w"})
	assert.True(t, ok, "groups cannot be read without a login: a member admitted at login keeps refreshing until the grant ends")
}

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy(" a , b,a ", "Alice@Example.COM, bob@example.com", "@Example.com, corp.example", "Admins, admins")
	require.NoError(t, err)
	assert.Equal(t, Policy{Subjects: []string{"a", "b"}, Emails: []string{"alice@example.com", "bob@example.com"},
		Domains: []string{"example.com", "corp.example"}, Groups: []string{"Admins", "admins"}}, p)
	p, err = ParsePolicy("x, *, y", "", "", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"*"}, p.Subjects)
	assert.True(t, Policy{}.Empty())
	for _, bad := range [][4]string{
		{"", "not-an-address", "", ""}, {"", "a@b", "", ""}, {"", "", "example", ""}, {"", "", "exa mple.com", ""},
		{"", "", "-example.com", ""}, {strings.Repeat("s", 256), "", "", ""},
	} {
		_, err := ParsePolicy(bad[0], bad[1], bad[2], bad[3])
		assert.Error(t, err, "%q", bad)
	}
	assert.Equal(t, "subjects=a domains=example.com", Policy{Subjects: []string{"a"}, Domains: []string{"example.com"}}.String())
}

// A provider down when the server starts: its logins get ErrUnavailable, without asking it again more often than
// rediscoverAfter, and work once it answers.
func TestProviderDownAtStart(t *testing.T) {
	var up atomic.Bool
	var fetches atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if !up.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth",
			"token_endpoint": srv.URL + "/token", "jwks_uri": srv.URL + "/jwks", "response_types_supported": []string{"code"},
			"id_token_signing_alg_values_supported": []string{"RS256"}})
	}))
	defer srv.Close()
	ctx := context.Background()
	p, err := New(ctx, Config{Name: "corp", Issuer: srv.URL, ClientID: "c", ClientSecret: "s", RedirectURL: redirectURL}, Policy{}, nil)
	require.NoError(t, err)
	require.ErrorIs(t, p.Ready(), login.ErrUnavailable)
	assert.ErrorContains(t, p.Ready(), "503")

	_, err = p.AuthCodeURL(ctx, "st", newAttempt("corp"))
	require.ErrorIs(t, err, login.ErrUnavailable)
	_, err = p.Login(ctx, login.Callback{Code: "x"}, newAttempt("corp"))
	require.ErrorIs(t, err, login.ErrUnavailable)
	assert.Equal(t, int32(1), fetches.Load(), "no second attempt within rediscoverAfter")

	up.Store(true)
	defer func(d time.Duration) { rediscoverAfter = d }(rediscoverAfter)
	rediscoverAfter = 0
	u := authURL(t, p, "st", newAttempt("corp"))
	assert.True(t, strings.HasPrefix(u, srv.URL+"/auth?"), u)
	assert.NoError(t, p.Ready())
	authURL(t, p, "st", newAttempt("corp"))
	assert.Equal(t, int32(2), fetches.Load(), "read once it answered, then kept")
}

package fakegithub_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
)

const (
	clientID = "app-id"
	secret   = "app-secret"
	callback = "https://auth.example.com/github/callback"
)

func start(t *testing.T) *fakegithub.Server {
	return fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{
			{ID: 7, Login: "Alice", Name: "Alice A.", Emails: []fakegithub.Email{{Email: "a@example.com", Primary: true, Verified: true}},
				Orgs: []string{"acme"}, Teams: []string{"acme/platform"}},
			{ID: 8, Login: "bob", PendingOrgs: []string{"acme"}},
			{ID: 9, Login: "carol", Orgs: []string{"other"}},
		},
		Apps: []fakegithub.App{
			{ClientID: clientID, ClientSecret: secret, CallbackURL: callback},
			{ClientID: "loopback-app", ClientSecret: "s", CallbackURL: "http://127.0.0.1/cb"},
		},
	})
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func authorizeURL(s *fakegithub.Server, q url.Values) string {
	return s.WebURL() + "login/oauth/authorize?" + q.Encode()
}

// codeFor logs in through /login/oauth/authorize and returns the code from the redirect.
func codeFor(t *testing.T, s *fakegithub.Server, scope string) string {
	t.Helper()
	resp, err := noRedirect.Get(authorizeURL(s, url.Values{"client_id": {clientID}, "redirect_uri": {callback},
		"scope": {scope}, "state": {"st"}}))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, callback, loc.Scheme+"://"+loc.Host+loc.Path)
	require.Equal(t, "st", loc.Query().Get("state"))
	return loc.Query().Get("code")
}

func exchange(t *testing.T, s *fakegithub.Server, form url.Values, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.WebURL()+"login/oauth/access_token", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func tokenFor(t *testing.T, s *fakegithub.Server, scope string) string {
	t.Helper()
	_, body := exchange(t, s, url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {codeFor(t, s, scope)}}, "application/json")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &tok), body)
	require.NotEmpty(t, tok.AccessToken, body)
	return tok.AccessToken
}

func apiGet(t *testing.T, s *fakegithub.Server, path, auth string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.APIURL()+path, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, "application/json; charset=utf-8", resp.Header.Get("Content-Type"))
	var body any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	if m, ok := body.(map[string]any); ok {
		return resp.StatusCode, m, resp.Header
	}
	return resp.StatusCode, map[string]any{"list": body}, resp.Header
}

func TestAuthorizeValidatesClientAndRedirectURI(t *testing.T) {
	s := start(t)
	cases := []struct {
		name   string
		q      url.Values
		status int
	}{
		{"unknown client", url.Values{"client_id": {"nope"}, "redirect_uri": {callback}}, http.StatusNotFound},
		{"other host", url.Values{"client_id": {clientID}, "redirect_uri": {"https://evil.example.com/github/callback"}}, http.StatusBadRequest},
		{"host sharing a prefix", url.Values{"client_id": {clientID}, "redirect_uri": {"https://auth.example.com.evil.com/github/callback"}}, http.StatusBadRequest},
		{"other port", url.Values{"client_id": {clientID}, "redirect_uri": {"https://auth.example.com:8443/github/callback"}}, http.StatusBadRequest},
		{"path outside the callback", url.Values{"client_id": {clientID}, "redirect_uri": {"https://auth.example.com/github/callbackx"}}, http.StatusBadRequest},
		{"http instead of https", url.Values{"client_id": {clientID}, "redirect_uri": {"http://auth.example.com/github/callback"}}, http.StatusBadRequest},
		{"userinfo", url.Values{"client_id": {clientID}, "redirect_uri": {"https://x@auth.example.com/github/callback"}}, http.StatusBadRequest},
		{"path below the callback", url.Values{"client_id": {clientID}, "redirect_uri": {callback + "/sub"}}, http.StatusFound},
		{"no redirect_uri: the callback", url.Values{"client_id": {clientID}}, http.StatusFound},
		{"loopback callback, any port", url.Values{"client_id": {"loopback-app"}, "redirect_uri": {"http://127.0.0.1:51234/cb"}}, http.StatusFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := noRedirect.Get(authorizeURL(s, tc.q))
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
			if tc.status != http.StatusFound {
				assert.Empty(t, resp.Header.Get("Location"), "an invalid request must never redirect")
			} else {
				assert.Contains(t, resp.Header.Get("Location"), "code=")
			}
		})
	}
}

func TestDenyRedirectsWithAccessDenied(t *testing.T) {
	s := start(t)
	s.SetDeny(true)
	resp, err := noRedirect.Get(authorizeURL(s, url.Values{"client_id": {clientID}, "state": {"st"}}))
	require.NoError(t, err)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "access_denied", loc.Query().Get("error"))
	assert.Equal(t, "st", loc.Query().Get("state"))
	assert.Empty(t, loc.Query().Get("code"))

	require.NoError(t, s.SetLogin("bob"), "SetLogin ends the denial")
	assert.NotEmpty(t, codeFor(t, s, ""))
	assert.Error(t, s.SetLogin("nobody"))
}

func TestAccessTokenFormatsAndChecks(t *testing.T) {
	s := start(t)

	// Form-encoded by default, as GitHub answers.
	resp, body := exchange(t, s, url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {codeFor(t, s, "read:user user:email")}}, "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
	vals, err := url.ParseQuery(body)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(vals.Get("access_token"), "gho_"))
	assert.Equal(t, "bearer", vals.Get("token_type"))
	assert.Equal(t, "read:user,user:email", vals.Get("scope"))

	// JSON when asked for, with the client authenticated by HTTP Basic.
	req, err := http.NewRequest(http.MethodPost, s.WebURL()+"login/oauth/access_token",
		strings.NewReader(url.Values{"code": {codeFor(t, s, "")}}.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(clientID, secret)
	r2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var tok map[string]string
	require.NoError(t, json.NewDecoder(r2.Body).Decode(&tok))
	r2.Body.Close()
	assert.NotEmpty(t, tok["access_token"])

	cases := []struct {
		name  string
		form  func(code string) url.Values
		error string
	}{
		{"wrong secret", func(c string) url.Values {
			return url.Values{"client_id": {clientID}, "client_secret": {"wrong"}, "code": {c}}
		}, "incorrect_client_credentials"},
		{"unknown client", func(c string) url.Values {
			return url.Values{"client_id": {"nope"}, "client_secret": {secret}, "code": {c}}
		}, "incorrect_client_credentials"},
		{"code of another app", func(c string) url.Values {
			return url.Values{"client_id": {"loopback-app"}, "client_secret": {"s"}, "code": {c}}
		}, "bad_verification_code"},
		{"unknown code", func(string) url.Values {
			return url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {"bogus"}}
		}, "bad_verification_code"},
		{"other redirect_uri", func(c string) url.Values {
			return url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {c}, "redirect_uri": {callback + "/other"}}
		}, "redirect_uri_mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := exchange(t, s, tc.form(codeFor(t, s, "")), "application/json")
			assert.Equal(t, http.StatusOK, resp.StatusCode, "GitHub reports token errors with 200")
			var e map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			assert.Equal(t, tc.error, e["error"])
			assert.NotEmpty(t, e["error_description"])
			assert.Empty(t, e["access_token"])
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	s := start(t)
	code := codeFor(t, s, "")
	form := url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {code}}
	_, body := exchange(t, s, form, "application/json")
	assert.Contains(t, body, "access_token")
	_, body = exchange(t, s, form, "application/json")
	assert.Contains(t, body, "bad_verification_code")
}

func TestAPIAuthentication(t *testing.T) {
	s := start(t)
	tok := tokenFor(t, s, "read:user")

	status, body, _ := apiGet(t, s, "user", "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "Requires authentication", body["message"])
	assert.NotEmpty(t, body["documentation_url"])

	status, body, _ = apiGet(t, s, "user", "Bearer gho_wrong")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "Bad credentials", body["message"])

	status, _, _ = apiGet(t, s, "user", "Basic "+tok)
	assert.Equal(t, http.StatusUnauthorized, status, "only Bearer and token schemes")

	for _, auth := range []string{"Bearer " + tok, "token " + tok} {
		status, body, hdr := apiGet(t, s, "user", auth)
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "Alice", body["login"])
		assert.Equal(t, float64(7), body["id"])
		assert.Equal(t, "Alice A.", body["name"])
		assert.Equal(t, "read:user", hdr.Get("X-OAuth-Scopes"))
	}

	status, body, _ = apiGet(t, s, "repos/acme/x", "Bearer "+tok)
	assert.Equal(t, http.StatusNotFound, status)
	assert.Equal(t, "Not Found", body["message"])
}

func TestEmailsNeedScope(t *testing.T) {
	s := start(t)
	status, _, _ := apiGet(t, s, "user/emails", "Bearer "+tokenFor(t, s, "read:user"))
	assert.Equal(t, http.StatusNotFound, status)

	status, body, _ := apiGet(t, s, "user/emails", "Bearer "+tokenFor(t, s, "user"))
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, []any{map[string]any{"email": "a@example.com", "primary": true, "verified": true, "visibility": "private"}}, body["list"])
}

func TestMemberships(t *testing.T) {
	s := start(t)
	alice := "Bearer " + tokenFor(t, s, "read:user read:org")

	status, body, _ := apiGet(t, s, "user/memberships/orgs/ACME", alice)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "active", body["state"])
	status, _, _ = apiGet(t, s, "user/memberships/orgs/other", alice)
	assert.Equal(t, http.StatusNotFound, status)

	status, body, _ = apiGet(t, s, "orgs/acme/teams/platform/memberships/alice", alice)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "active", body["state"])
	status, _, _ = apiGet(t, s, "orgs/acme/teams/other-team/memberships/alice", alice)
	assert.Equal(t, http.StatusNotFound, status)
	status, _, _ = apiGet(t, s, "orgs/acme/teams/platform/memberships/bob", alice)
	assert.Equal(t, http.StatusNotFound, status)

	noOrgScope := "Bearer " + tokenFor(t, s, "read:user")
	status, _, _ = apiGet(t, s, "user/memberships/orgs/acme", noOrgScope)
	assert.Equal(t, http.StatusForbidden, status)
	status, _, _ = apiGet(t, s, "orgs/acme/teams/platform/memberships/alice", noOrgScope)
	assert.Equal(t, http.StatusForbidden, status)

	require.NoError(t, s.SetLogin("bob"))
	bob := "Bearer " + tokenFor(t, s, "read:org")
	status, body, _ = apiGet(t, s, "user/memberships/orgs/acme", bob)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "pending", body["state"])

	require.NoError(t, s.SetLogin("carol"))
	carol := "Bearer " + tokenFor(t, s, "read:org")
	status, _, _ = apiGet(t, s, "orgs/acme/teams/platform/memberships/alice", carol)
	assert.Equal(t, http.StatusNotFound, status, "a team is hidden from users outside its organization")
}

func TestNewRejectsBadConfig(t *testing.T) {
	app := []fakegithub.App{{ClientID: "a", ClientSecret: "b"}}
	user := []fakegithub.User{{ID: 1, Login: "u"}}
	for name, cfg := range map[string]fakegithub.Config{
		"no users":        {Apps: app},
		"no apps":         {Users: user},
		"user without id": {Users: []fakegithub.User{{Login: "u"}}, Apps: app},
		"malformed team":  {Users: []fakegithub.User{{ID: 1, Login: "u", Teams: []string{"acme"}}}, Apps: app},
		"app without key": {Users: user, Apps: []fakegithub.App{{ClientID: "a"}}},
		"bad callback":    {Users: user, Apps: []fakegithub.App{{ClientID: "a", ClientSecret: "b", CallbackURL: "/cb"}}},
		"unknown login":   {Users: user, Apps: app, Login: "nobody"},
	} {
		_, err := fakegithub.New(cfg)
		assert.Error(t, err, name)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:9099", "127.0.0.2:1", "[::1]:9099", "localhost:9099"} {
		assert.NoError(t, fakegithub.CheckLoopback(ok), ok)
	}
	for _, bad := range []string{":9099", "0.0.0.0:9099", "[::]:9099", "192.168.1.10:9099", "example.com:9099", "localhost.evil.com:1", "127.0.0.1"} {
		assert.Error(t, fakegithub.CheckLoopback(bad), bad)
	}
}

func TestPKCE(t *testing.T) {
	s := start(t)
	resp, err := noRedirect.Get(authorizeURL(s, url.Values{"client_id": {clientID}, "code_challenge": {"abc"}, "code_challenge_method": {"plain"}}))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "only S256")

	// RFC 7636 appendix B.
	const verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	code := func() string {
		resp, err := noRedirect.Get(authorizeURL(s, url.Values{"client_id": {clientID}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}))
		require.NoError(t, err)
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		return loc.Query().Get("code")
	}
	form := func(code, verifier string) url.Values {
		return url.Values{"client_id": {clientID}, "client_secret": {secret}, "code": {code}, "code_verifier": {verifier}}
	}
	_, body := exchange(t, s, form(code(), "wrong-verifier"), "application/json")
	assert.Contains(t, body, "bad_verification_code")
	_, body = exchange(t, s, form(code(), ""), "application/json")
	assert.Contains(t, body, "bad_verification_code")
	_, body = exchange(t, s, form(code(), verifier), "application/json")
	assert.Contains(t, body, "access_token")
}

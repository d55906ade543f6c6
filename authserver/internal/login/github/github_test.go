package github_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
)

const (
	clientID     = "Iv1.gateway-test"
	clientSecret = "s3cret-of-the-gateway-app"
	callbackURL  = "http://127.0.0.1:8080/oauth/github/callback"
)

// fakeUsers covers each policy rule: a listed user, an organization member, a team member (hence also an
// organization member), a pending invitation, an outsider, and the e-mail cases.
var fakeUsers = []fakegithub.User{
	{ID: 1001, Login: "Octo", Name: "Octo Cat", Emails: []fakegithub.Email{
		{Email: "old@example.com", Verified: true},
		{Email: "octo@example.com", Primary: true, Verified: true},
	}},
	{ID: 1002, Login: "unverified", Name: "Not Verified", Emails: []fakegithub.Email{
		{Email: "unverified@example.com", Primary: true, Verified: false},
		{Email: "other@example.com", Verified: true},
	}},
	{ID: 1003, Login: "org-member", Orgs: []string{"Acme"}},
	{ID: 1004, Login: "team-member", Teams: []string{"acme/platform"}},
	{ID: 1005, Login: "invited", PendingOrgs: []string{"acme"}},
	{ID: 1006, Login: "outsider", Orgs: []string{"elsewhere"}, Teams: []string{"elsewhere/platform"}},
}

func startFake(t *testing.T) *fakegithub.Server {
	return fakegithub.Start(t, fakegithub.Config{
		Users: fakeUsers,
		Apps:  []fakegithub.App{{ClientID: clientID, ClientSecret: clientSecret, CallbackURL: "http://127.0.0.1/oauth/github/callback"}},
	})
}

func newProvider(t *testing.T, fake *fakegithub.Server, policy github.Policy, secret string) *github.Provider {
	t.Helper()
	p, err := github.New(github.Config{
		ClientID: clientID, ClientSecret: secret,
		WebURL: fake.WebURL(), APIURL: fake.APIURL(), RedirectURL: callbackURL,
	}, policy, nil)
	require.NoError(t, err)
	return p
}

func policy(t *testing.T, users, orgs, teams string) github.Policy {
	t.Helper()
	p, err := github.ParsePolicy(users, orgs, teams)
	require.NoError(t, err)
	return p
}

// authorize drives the browser part of the web flow: it follows AuthCodeURL to the fake GitHub, which logs the user
// in and redirects to the callback; it returns the code after checking the state came back.
func authorize(t *testing.T, fake *fakegithub.Server, p *github.Provider, login string) string {
	t.Helper()
	require.NoError(t, fake.SetLogin(login))
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(p.AuthCodeURL("state-xyz"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", loc.Host)
	require.Equal(t, "/oauth/github/callback", loc.Path)
	require.Equal(t, "state-xyz", loc.Query().Get("state"))
	code := loc.Query().Get("code")
	require.NotEmpty(t, code)
	return code
}

func login(t *testing.T, fake *fakegithub.Server, p *github.Provider, who string) (*store.User, error) {
	t.Helper()
	return p.Login(context.Background(), authorize(t, fake, p, who))
}

func TestLoginReadsUser(t *testing.T) {
	fake := startFake(t)
	p := newProvider(t, fake, policy(t, "octo", "", ""), clientSecret)

	u, err := login(t, fake, p, "Octo")
	require.NoError(t, err)
	assert.Equal(t, &store.User{ID: "1001", Login: "Octo", Name: "Octo Cat", Email: "octo@example.com"}, u)
}

func TestUnverifiedPrimaryEmailIsNotUsed(t *testing.T) {
	fake := startFake(t)
	p := newProvider(t, fake, policy(t, "unverified", "", ""), clientSecret)

	u, err := login(t, fake, p, "unverified")
	require.NoError(t, err)
	assert.Equal(t, "1002", u.ID)
	assert.Empty(t, u.Email, "an unverified primary address (or a non-primary one) must not become the user's e-mail")
}

func TestPolicyAllows(t *testing.T) {
	cases := []struct {
		name, users, orgs, teams, login string
	}{
		{"listed user, other case, spaces", "  someone ,  OCTO ", "", "", "Octo"},
		{"star", "*", "", "", "outsider"},
		{"organization", "", "ACME", "", "org-member"},
		{"organization through a team", "", "acme", "", "team-member"},
		{"team", "", "", "other/x, Acme/Platform", "team-member"},
		{"user list besides organizations", "outsider", "acme", "", "outsider"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t)
			p := newProvider(t, fake, policy(t, tc.users, tc.orgs, tc.teams), clientSecret)
			u, err := login(t, fake, p, tc.login)
			require.NoError(t, err)
			assert.True(t, strings.EqualFold(tc.login, u.Login), "logged in as %s", u.Login)
		})
	}
}

func TestPolicyRefuses(t *testing.T) {
	cases := []struct {
		name, users, orgs, teams, login, reason string
	}{
		{"not a listed user", "octo, someone", "", "", "outsider",
			"GitHub user outsider is not in the allowed users"},
		{"not in the organization", "", "acme", "", "outsider",
			"GitHub user outsider is not a member of any allowed organization or team"},
		{"invitation still pending", "", "acme", "", "invited",
			"GitHub user invited is not a member of any allowed organization or team"},
		{"organization member but not in the team", "", "", "acme/platform", "org-member",
			"GitHub user org-member is not a member of any allowed organization or team"},
		{"team of the same name in another organization", "", "", "acme/platform", "outsider",
			"GitHub user outsider is not a member of any allowed organization or team"},
		{"neither listed nor a member", "octo", "acme", "acme/platform", "outsider",
			"GitHub user outsider is not in the allowed users and is not a member of any allowed organization or team"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := startFake(t)
			p := newProvider(t, fake, policy(t, tc.users, tc.orgs, tc.teams), clientSecret)
			u, err := login(t, fake, p, tc.login)
			assert.Nil(t, u)
			var denied *github.AccessDeniedError
			require.ErrorAs(t, err, &denied)
			assert.Equal(t, tc.login, denied.Login)
			assert.Equal(t, tc.reason, denied.Reason)
		})
	}
}

func TestEmptyPolicyRefusesEveryoneAndSaysHowToConfigure(t *testing.T) {
	fake := startFake(t)
	empty := policy(t, " , ", "", "")
	assert.True(t, empty.Empty())
	p := newProvider(t, fake, empty, clientSecret)

	_, err := login(t, fake, p, "Octo")
	var denied *github.AccessDeniedError
	require.ErrorAs(t, err, &denied)
	assert.Contains(t, denied.Reason, "ALLOWED_GITHUB_USERS")
	assert.Contains(t, denied.Reason, "organizations or teams")
}

func TestBadCodeIsRejected(t *testing.T) {
	fake := startFake(t)
	p := newProvider(t, fake, policy(t, "*", "", ""), clientSecret)

	_, err := p.Login(context.Background(), "not-a-code")
	require.ErrorIs(t, err, github.ErrCodeRejected)
	assert.False(t, errors.As(err, new(*github.AccessDeniedError)), "a bad code is not a policy refusal")

	_, err = p.Login(context.Background(), "")
	require.ErrorIs(t, err, github.ErrCodeRejected)
}

func TestCodeIsSingleUse(t *testing.T) {
	fake := startFake(t)
	p := newProvider(t, fake, policy(t, "*", "", ""), clientSecret)

	code := authorize(t, fake, p, "octo")
	_, err := p.Login(context.Background(), code)
	require.NoError(t, err)
	_, err = p.Login(context.Background(), code)
	require.ErrorIs(t, err, github.ErrCodeRejected)
}

func TestWrongClientSecret(t *testing.T) {
	fake := startFake(t)
	p := newProvider(t, fake, policy(t, "*", "", ""), "not-the-secret")

	_, err := login(t, fake, p, "octo")
	require.ErrorIs(t, err, github.ErrAppCredentials)
	assert.NotContains(t, err.Error(), "not-the-secret", "the error must not carry the secret")
}

func TestAPIFailureIsAnErrorNotARefusal(t *testing.T) {
	fake := startFake(t)
	p, err := github.New(github.Config{
		ClientID: clientID, ClientSecret: clientSecret,
		WebURL: fake.WebURL(), APIURL: fake.URL + "/wrong/", RedirectURL: callbackURL,
	}, policy(t, "*", "", ""), nil)
	require.NoError(t, err)

	_, err = login(t, fake, p, "octo")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read the user")
	assert.False(t, errors.As(err, new(*github.AccessDeniedError)))
}

func TestAuthCodeURLScopes(t *testing.T) {
	fake := startFake(t)
	scopesOf := func(p *github.Provider) []string {
		u, err := url.Parse(p.AuthCodeURL("st"))
		require.NoError(t, err)
		assert.Equal(t, fake.URL+"/login/oauth/authorize", u.Scheme+"://"+u.Host+u.Path)
		assert.Equal(t, clientID, u.Query().Get("client_id"))
		assert.Equal(t, callbackURL, u.Query().Get("redirect_uri"))
		assert.Equal(t, "st", u.Query().Get("state"))
		return strings.Fields(u.Query().Get("scope"))
	}
	assert.Equal(t, []string{"read:user", "user:email"}, scopesOf(newProvider(t, fake, policy(t, "octo", "", ""), clientSecret)))
	assert.Equal(t, []string{"read:user", "user:email", "read:org"}, scopesOf(newProvider(t, fake, policy(t, "", "acme", ""), clientSecret)))
	assert.Equal(t, []string{"read:user", "user:email", "read:org"}, scopesOf(newProvider(t, fake, policy(t, "", "", "acme/x"), clientSecret)))
}

func TestDefaultURLsAreGitHubCom(t *testing.T) {
	p, err := github.New(github.Config{ClientID: "id", ClientSecret: "secret", RedirectURL: callbackURL}, github.Policy{}, nil)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(p.AuthCodeURL("s"), "https://github.com/login/oauth/authorize?"), p.AuthCodeURL("s"))
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := github.Config{ClientID: "id", ClientSecret: "secret", RedirectURL: callbackURL}
	cases := map[string]func(*github.Config){
		"no client id":          func(c *github.Config) { c.ClientID = "" },
		"no client secret":      func(c *github.Config) { c.ClientSecret = "" },
		"no redirect URL":       func(c *github.Config) { c.RedirectURL = "" },
		"relative redirect URL": func(c *github.Config) { c.RedirectURL = "/callback" },
		"web URL not http":      func(c *github.Config) { c.WebURL = "ftp://github.example/" },
		"API URL with query":    func(c *github.Config) { c.APIURL = "https://ghe.example/api/v3/?x=1" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := good
			mutate(&cfg)
			_, err := github.New(cfg, github.Policy{}, nil)
			assert.Error(t, err)
		})
	}
}

func TestParsePolicy(t *testing.T) {
	p, err := github.ParsePolicy(" Alice, bob ,,ALICE ", " Acme ,acme", " Acme/Platform-Team , acme/platform-team")
	require.NoError(t, err)
	assert.Equal(t, github.Policy{Users: []string{"alice", "bob"}, Orgs: []string{"acme"}, Teams: []string{"acme/platform-team"}}, p)
	assert.True(t, p.AllowsLogin("ALICE"))
	assert.True(t, p.AllowsLogin(" bob "))
	assert.False(t, p.AllowsLogin("carol"))
	assert.False(t, p.AllowsLogin(""))

	star, err := github.ParsePolicy("alice, *", "", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"*"}, star.Users)
	assert.True(t, star.AllowsLogin("anyone"))

	for _, bad := range []struct{ users, orgs, teams, mention string }{
		{"alice, bad user", "", "", `"bad user"`},
		{"alice@example.com", "", "", "alice@example.com"},
		{"", "*", "", `"*"`},
		{"", "acme/team", "", "acme/team"},
		{"", "", "acme", `"acme" is not of the form org/team-slug`},
		{"", "", "acme/", "acme/"},
		{"", "", "/team", "/team"},
		{"", "", "acme/a/b", "acme/a/b"},
		{"id:12x", "", "", "id:<numeric GitHub user id>"},
		{"id:", "", "", "id:"},
		{"id:0123", "", "", "id:0123"},
	} {
		_, err := github.ParsePolicy(bad.users, bad.orgs, bad.teams)
		if assert.Error(t, err, "%+v", bad) {
			assert.Contains(t, err.Error(), bad.mention)
		}
	}
}

func TestRefreshChecks(t *testing.T) {
	usersOnly := policy(t, "alice", "", "")
	assert.True(t, usersOnly.MayRefresh("1", "Alice"))
	assert.False(t, usersOnly.MayRefresh("2", "mallory"), "a user removed from the list must lose access at refresh")
	withOrgs := policy(t, "alice", "acme", "")
	assert.False(t, withOrgs.AllowsLogin("bob"))
	assert.True(t, withOrgs.MayRefresh("3", "bob"), "an organization member admitted at login keeps refreshing")
	assert.False(t, github.Policy{}.MayRefresh("1", "alice"))
	byID := policy(t, "id:583231", "", "")
	assert.True(t, byID.MayRefresh("583231", "renamed-since"), "an account allowed by id keeps refreshing under any login")
	assert.False(t, byID.MayRefresh("583232", "583231"))
}

// GitHub logins change hands, so a listed login is pinned to the account first let in under it,
// and another account that later holds the login is refused; an id entry names one account whatever its login.
func TestListedLoginIsPinnedToItsFirstAccount(t *testing.T) {
	pins, err := embedded.Open("", nil)
	require.NoError(t, err)
	defer pins.Close()
	provider := func(fake *fakegithub.Server, users string) *github.Provider {
		p, err := github.New(github.Config{ClientID: clientID, ClientSecret: clientSecret, WebURL: fake.WebURL(),
			APIURL: fake.APIURL(), RedirectURL: callbackURL, Pins: pins}, policy(t, users, "", ""), nil)
		require.NoError(t, err)
		return p
	}
	before := startFake(t)
	u, err := login(t, before, provider(before, "octo"), "Octo")
	require.NoError(t, err)
	assert.Equal(t, "1001", u.ID)

	// Account 1001 renamed itself; somebody else registered "octo" (GitHub, a month later).
	after := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{{ID: 1001, Login: "octo-renamed"}, {ID: 7777, Login: "octo"}},
		Apps:  []fakegithub.App{{ClientID: clientID, ClientSecret: clientSecret, CallbackURL: "http://127.0.0.1/oauth/github/callback"}},
	})
	_, err = login(t, after, provider(after, "octo"), "octo")
	var denied *github.AccessDeniedError
	require.ErrorAs(t, err, &denied, "the new holder of the login is not the account that was allowed")
	assert.Contains(t, denied.Reason, "GitHub logins change hands")
	assert.Contains(t, denied.Reason, "id:7777", "the refusal says how the administrator can allow this account")

	// Allowed by id, an account gets in whatever its login; a wildcard never pins.
	u, err = login(t, after, provider(after, "octo, id:1001"), "octo-renamed")
	require.NoError(t, err)
	assert.Equal(t, "1001", u.ID)
	u, err = login(t, after, provider(after, "*"), "octo")
	require.NoError(t, err)
	assert.Equal(t, "7777", u.ID)
}

func TestLoginWithPKCE(t *testing.T) {
	fake := startFake(t)
	p := newProvider(t, fake, policy(t, "octo", "", ""), clientSecret)
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	codeWithPKCE := func(verifier string) string {
		t.Helper()
		authURL := p.AuthCodeURLWithPKCE("st", verifier)
		u, err := url.Parse(authURL)
		require.NoError(t, err)
		require.Equal(t, "S256", u.Query().Get("code_challenge_method"))
		require.NotEmpty(t, u.Query().Get("code_challenge"))
		resp, err := browser.Get(authURL)
		require.NoError(t, err)
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		return loc.Query().Get("code")
	}
	verifier := oauth2.GenerateVerifier()

	u, err := p.LoginWithPKCE(context.Background(), codeWithPKCE(verifier), verifier)
	require.NoError(t, err)
	assert.Equal(t, "1001", u.ID)

	_, err = p.LoginWithPKCE(context.Background(), codeWithPKCE(verifier), oauth2.GenerateVerifier())
	assert.ErrorIs(t, err, github.ErrCodeRejected, "a wrong verifier must not redeem the code")

	_, err = p.Login(context.Background(), codeWithPKCE(verifier))
	assert.ErrorIs(t, err, github.ErrCodeRejected, "a PKCE-bound code needs its verifier")

	_, err = p.LoginWithPKCE(context.Background(), codeWithPKCE(verifier), "")
	assert.Error(t, err)
}

func TestRefusalExplainsOAuthAppRestrictions(t *testing.T) {
	fake := fakegithub.Start(t, fakegithub.Config{
		Users:          fakeUsers,
		Apps:           []fakegithub.App{{ClientID: clientID, ClientSecret: clientSecret}},
		RestrictedOrgs: []string{"acme"},
	})
	p := newProvider(t, fake, policy(t, "", "acme", "acme/platform"), clientSecret)

	_, err := login(t, fake, p, "org-member")
	var denied *github.AccessDeniedError
	require.ErrorAs(t, err, &denied)
	assert.Contains(t, denied.Reason, "is not a member of any allowed organization or team")
	assert.Contains(t, denied.Reason, "GitHub refused to show membership in acme:", "each organization named once")
	assert.Contains(t, denied.Reason, "restrict OAuth app access")
}

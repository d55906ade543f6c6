package oauth_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	webbrowser "github.com/mcp-oauth-gateway/gateway/internal/testkit/browser"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/hydratest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Connected accounts with a real upstream: a second ORY Hydra plays the service users connect (the "corp" upstream),
// users log in to the gateway through the fake GitHub. Through the broker endpoint and the connect pages, on both
// stores: the connect link, the flow with state and PKCE, the token, its refresh before expiry (once, from two
// nodes at once, against a provider that revokes a refresh token presented twice), and a refresh token the upstream
// revoked.

const brokerSecret = "broker-secret-of-at-least-32-characters"

var corpUser = hydratest.User{Subject: "octo-at-corp", Claims: map[string]any{"email": "octo@corp.example", "email_verified": true}}

// connectEnv is an authorization server with the corp upstream, two connections services on its store (two nodes)
// whose clock the test moves, and the broker endpoint of the first.
type connectEnv struct {
	*env
	upstream    *hydratest.Server
	node, node2 *connections.Service
	skew        atomic.Int64 // added to the services' clock
	broker      string
	trail       *testenv.SyncBuffer // the server's audit trail
}

func newConnectEnv(t *testing.T, b backendCase) *connectEnv {
	t.Helper()
	up := hydratest.Start(t)
	up.SetUser(corpUser)
	gh := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{
			{ID: 1001, Login: "octo", Name: "Octo Cat", Emails: []fakegithub.Email{{Email: "octo@example.com", Primary: true, Verified: true}}},
			{ID: 1002, Login: "mallory", Name: "Mallory"},
		},
		Apps: []fakegithub.App{{ClientID: ghClient, ClientSecret: ghSecret}},
	})
	st, r := b.open(t)
	t.Cleanup(func() { st.Close() })
	ce := &connectEnv{env: &env{t: t, store: st, gh: gh, http: &http.Client{}, redis: r}, upstream: up}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	ce.trail = &testenv.SyncBuffer{}
	trail := audit.New(ce.trail, nil, audit.Options{Service: "authserver", Log: quiet})
	ce.tweak = func(cfg *oauth.Config) {
		cfg.Audit = trail
		id, secret := up.Client(t, connections.CallbackURL(cfg.Issuer, "corp"))
		node := func() *connections.Service {
			ring, err := connections.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(key))
			require.NoError(t, err)
			svc, err := connections.New(connections.Config{Issuer: cfg.Issuer, Keys: ring, Log: quiet, Audit: trail,
				Upstreams: []connections.Upstream{{Name: "corp", DisplayName: "Corp Cloud", Issuer: up.Issuer, ClientID: id,
					ClientSecret: secret, Scopes: []string{"openid", "offline_access"}}},
				Now: func() time.Time { return time.Now().Add(time.Duration(ce.skew.Load())) }}, st)
			require.NoError(t, err)
			return svc
		}
		ce.node, ce.node2 = node(), node()
		cfg.Connections = ce.node
	}
	ce.start("octo,mallory")
	bs := httptest.NewServer(ce.node.Broker(brokerSecret))
	t.Cleanup(bs.Close)
	ce.broker = bs.URL + "/connections/token"
	return ce
}

// ask is streamproxy's request to the broker.
func (ce *connectEnv) ask(secret, user, upstream string) (int, map[string]any) {
	ce.t.Helper()
	body, _ := json.Marshal(map[string]string{"user": user, "upstream": upstream})
	req, _ := http.NewRequest(http.MethodPost, ce.broker, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(ce.t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(ce.t, json.NewDecoder(resp.Body).Decode(&out))
	return resp.StatusCode, out
}

// open follows a link in a fresh browser as the GitHub user login, through the login, the upstream and back, and
// returns the page it ends on.
func (ce *connectEnv) open(link, login string) (int, string) {
	ce.t.Helper()
	require.NoError(ce.t, ce.gh.SetLogin(login))
	res, err := webbrowser.New(nil).Run(context.Background(), link)
	require.NoError(ce.t, err)
	return res.Status, res.Page
}

// userinfo asks the upstream who a token is for: the token works there.
func (ce *connectEnv) userinfo(token string) (int, string) {
	ce.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ce.upstream.Issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(ce.t, err)
	defer resp.Body.Close()
	var out struct {
		Sub string `json:"sub"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Sub
}

func TestConnectedAccounts(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testConnectedAccounts(t, b) })
	}
}

func testConnectedAccounts(t *testing.T, b backendCase) {
	ce := newConnectEnv(t, b)
	ctx := context.Background()

	status, out := ce.ask("wrong-secret-of-at-least-32-characters", "1001", "corp")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid_client", out["error"])
	status, out = ce.ask(brokerSecret, "1001", "nowhere")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "unknown_upstream", out["error"])

	// Not connected: the answer carries a link for this user.
	status, out = ce.ask(brokerSecret, "1001", "corp")
	require.Equal(t, http.StatusNotFound, status, out)
	assert.Equal(t, "not_connected", out["error"])
	assert.Equal(t, "Corp Cloud", out["display_name"])
	link, _ := out["connect_url"].(string)
	require.True(t, strings.HasPrefix(link, ce.issuer+"/connect/corp?ticket="), link)

	// The user refuses at the upstream: nothing is stored, and the page does not repeat what the upstream sent.
	ce.upstream.SetDeny("not today <b>")
	status, page := ce.open(ce.node.ConnectURL("1001", "corp"), "octo")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, page, "Corp Cloud not connected")
	assert.NotContains(t, page, "access_denied")
	_, err := ce.store.GetConnection(ctx, "1001", "corp")
	require.ErrorIs(t, err, store.ErrNotFound)
	ce.upstream.SetDeny("")

	// Someone else who opens the link gets nothing connected, and does not use it up.
	status, page = ce.open(link, "mallory")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, page, "Wrong account")
	_, err = ce.store.GetConnection(ctx, "1002", "corp")
	require.ErrorIs(t, err, store.ErrNotFound)

	// The user the link is for logs in, authorizes at the upstream, and is connected.
	status, page = ce.open(link, "octo")
	require.Equal(t, http.StatusOK, status, page)
	assert.Contains(t, page, "Corp Cloud connected")
	status, out = ce.ask(brokerSecret, "1001", "corp")
	require.Equal(t, http.StatusOK, status, out)
	first, _ := out["access_token"].(string)
	assert.Equal(t, "Bearer", out["token_type"], "as the contract spells it (Hydra says bearer)")
	assert.Greater(t, out["expires_at"].(float64), float64(time.Now().Unix()))
	code, sub := ce.userinfo(first)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, corpUser.Subject, sub, "the token is the user's at the upstream")

	// The link works once.
	status, page = ce.open(link, "octo")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, page, "Link already used")

	// At rest and in a backup: ciphertext only.
	c, err := ce.store.GetConnection(ctx, "1001", "corp")
	require.NoError(t, err)
	assert.False(t, bytes.Contains(c.Sealed, []byte(first)))
	var dump bytes.Buffer
	require.NoError(t, ce.store.(store.Backup).Dump(ctx, &dump))
	assert.Contains(t, dump.String(), `"kind":"connection"`)
	assert.NotContains(t, dump.String(), first)

	// Within a minute of its expiry the token is refreshed first.
	ce.skew.Store(int64(59*time.Minute + 30*time.Second))
	status, out = ce.ask(brokerSecret, "1001", "corp")
	require.Equal(t, http.StatusOK, status, out)
	second := out["access_token"].(string)
	assert.NotEqual(t, first, second)
	code, _ = ce.userinfo(second)
	assert.Equal(t, http.StatusOK, code)
	c, err = ce.store.GetConnection(ctx, "1001", "corp")
	require.NoError(t, err)
	assert.False(t, c.RefreshedAt.IsZero())

	// Two nodes and several calls at once refresh once: Hydra revokes a refresh token presented twice, so a second
	// refresh would end the connection.
	ce.skew.Add(int64(time.Hour))
	var wg sync.WaitGroup
	tokens := make([]string, 8)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := ce.node
			if i%2 == 1 {
				node = ce.node2
			}
			tok, err := node.Token(ctx, "1001", "corp")
			if assert.NoError(t, err) {
				tokens[i] = tok.AccessToken
			}
		}()
	}
	wg.Wait()
	for _, tok := range tokens {
		assert.Equal(t, tokens[0], tok, "every caller gets the one refreshed token")
	}
	assert.NotEqual(t, second, tokens[0])
	ce.skew.Add(int64(time.Hour))
	status, out = ce.ask(brokerSecret, "1001", "corp")
	require.Equal(t, http.StatusOK, status, "the refresh token chain is intact: %v", out)

	// The user revokes the app at the upstream: the next refresh ends the connection, and the broker hands out a
	// new link.
	req, _ := http.NewRequest(http.MethodDelete, ce.upstream.AdminURL+"/admin/oauth2/auth/sessions/consent?subject="+corpUser.Subject+"&all=true", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	ce.skew.Add(int64(time.Hour))
	status, out = ce.ask(brokerSecret, "1001", "corp")
	require.Equal(t, http.StatusNotFound, status, out)
	assert.Equal(t, "not_connected", out["error"])
	_, err = ce.store.GetConnection(ctx, "1001", "corp")
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Eventually(t, func() bool {
		return strings.Contains(ce.trail.String(), `"event":"connection.deleted","outcome":"success","reason":"the upstream refused its refresh token","user_id":"1001"`)
	}, 5*time.Second, 10*time.Millisecond, "the end the service made itself is in the audit trail")
}

// Disconnecting, on the account page or by an operator, revokes the connection's tokens at the upstream (its
// revocation endpoint, from discovery): a copy of the token taken before no longer works there.
func TestDisconnectRevokesAtTheUpstream(t *testing.T) {
	ce := newConnectEnv(t, backends[0])
	ctx := context.Background()
	connect := func() string {
		t.Helper()
		status, page := ce.open(ce.node.ConnectURL("1001", "corp"), "octo")
		require.Equal(t, http.StatusOK, status, page)
		tok, err := ce.node.Token(ctx, "1001", "corp")
		require.NoError(t, err)
		code, _ := ce.userinfo(tok.AccessToken)
		require.Equal(t, http.StatusOK, code)
		return tok.AccessToken
	}

	token := connect()
	require.NoError(t, ce.node.Disconnect(ctx, "1001", "corp"))
	code, _ := ce.userinfo(token)
	assert.Equal(t, http.StatusUnauthorized, code, "the user's disconnect revoked the token at the upstream")
	assert.ErrorIs(t, ce.node.Disconnect(ctx, "1001", "corp"), connections.ErrNotConnected)

	token = connect()
	n, err := service.New(ce.store, nil, service.Options{Connections: ce.node}).RevokeConnections(ctx, "1001", "corp")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	code, _ = ce.userinfo(token)
	assert.Equal(t, http.StatusUnauthorized, code, "the operator's revoke revoked the token at the upstream")
	_, err = ce.store.GetConnection(ctx, "1001", "corp")
	require.ErrorIs(t, err, store.ErrNotFound)
}

// The GitHub login as an upstream: with the extra scope asked for at login, each GitHub login keeps its token as the
// user's connected GitHub account, and a connect link for it needs no second round trip.
func TestGitHubLoginConnects(t *testing.T) {
	gh := fakegithub.Start(t, fakegithub.Config{
		Users: []fakegithub.User{{ID: 1001, Login: "octo", Name: "Octo Cat",
			Emails: []fakegithub.Email{{Email: "octo@example.com", Primary: true, Verified: true}}}},
		Apps: []fakegithub.App{{ClientID: ghClient, ClientSecret: ghSecret}},
	})
	st, r := backends[0].open(t)
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, store: st, gh: gh, http: &http.Client{}, redis: r}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	var svc *connections.Service
	e.tweak = func(cfg *oauth.Config) {
		ring, err := connections.ParseKeys("k1:" + base64.StdEncoding.EncodeToString(key))
		require.NoError(t, err)
		svc, err = connections.New(connections.Config{Issuer: cfg.Issuer, Keys: ring, Log: quiet,
			Upstreams: []connections.Upstream{{Name: "github", DisplayName: "GitHub", AuthURL: gh.WebURL() + "login/oauth/authorize",
				TokenURL: gh.WebURL() + "login/oauth/access_token", ClientID: ghClient, ClientSecret: ghSecret,
				Scopes: []string{"repo"}, FromLogin: true, SecretInForm: true}}}, st)
		require.NoError(t, err)
		cfg.Connections = svc
	}
	e.providers = func(issuer string, _ *github.Provider) []login.Provider {
		policy, err := github.ParsePolicy("octo", "", "")
		require.NoError(t, err)
		p, err := github.New(github.Config{ClientID: ghClient, ClientSecret: ghSecret, WebURL: gh.WebURL(), APIURL: gh.APIURL(),
			RedirectURL: oauth.CallbackURL(issuer), Pins: st, ExtraScopes: []string{"repo"},
			KeepToken: func(ctx context.Context, userID string, tok *oauth2.Token) error {
				return svc.Keep(ctx, "github", userID, tok)
			}}, policy, nil)
		require.NoError(t, err)
		return []login.Provider{p.LoginProvider()}
	}
	e.start("octo")

	e.login() // octo uses an MCP client: the login connects GitHub
	tok, err := svc.Token(context.Background(), "1001", "github")
	require.NoError(t, err)
	req, _ := http.NewRequest(http.MethodGet, gh.APIURL()+"user", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "the login's token works at GitHub")
	assert.Contains(t, resp.Header.Get("X-OAuth-Scopes"), "repo", "with the extra scope")

	require.NoError(t, svc.Disconnect(context.Background(), "1001", "github"))
	res, err := webbrowser.New(nil).Run(context.Background(), svc.ConnectURL("1001", "github"))
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, res.Status)
	assert.Contains(t, res.Page, "GitHub connected")
	_, err = svc.Token(context.Background(), "1001", "github")
	require.NoError(t, err, "the link's login connected it again")
}

package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/grant"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// clock is the server's clock in these tests: real time moved forward by what the test says.
type clock struct{ ahead atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.ahead.Load())) }
func (c *clock) advance(d time.Duration) { c.ahead.Add(int64(d)) }

// reuseEnv is an authorization server with a 60 s refresh reuse window, a clock the test moves, and its metrics.
func reuseEnv(t *testing.T, b backendCase, window time.Duration) (*env, *clock, *prometheus.Registry) {
	e := newEnv(t, b, "octo")
	c := &clock{}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	e.tweak = func(cfg *oauth.Config) { cfg.RefreshReuseWindow, cfg.Now, cfg.Metrics = window, c.now, m }
	e.start("octo")
	return e, c, reg
}

// counter reads a counter (with one label pair, or none) from reg.
func counter(t *testing.T, reg *prometheus.Registry, name string, label ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if len(label) == 0 {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label[0] && l.GetValue() == label[1] {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no counter %s %v", name, label)
	return 0
}

// reply is one token endpoint answer.
type reply struct {
	status int
	body   map[string]any
}

func (r reply) refreshToken() string { s, _ := r.body["refresh_token"].(string); return s }
func (r reply) accessToken() string  { s, _ := r.body["access_token"].(string); return s }

// postAll sends form to the token endpoint of every issuer at once (one request each) and returns the answers in
// that order.
func postAll(t *testing.T, issuers []string, form url.Values) []reply {
	t.Helper()
	out := make([]reply, len(issuers))
	errs := make([]error, len(issuers))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, iss := range issuers {
		wg.Go(func() {
			<-start
			resp, err := http.Post(iss+"/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			out[i].status = resp.StatusCode
			errs[i] = json.NewDecoder(resp.Body).Decode(&out[i].body)
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// login runs a code flow for a new public client and returns the client and its first token response.
func (e *env) login(extra ...string) (string, map[string]any) {
	client := e.publicClient()
	p := newPKCE()
	o := e.browse(authQuery(client, p, extra...), "approve")
	require.NotNil(e.t, o.location, "flow stopped on a page: %d %s", o.status, o.page)
	status, tok, _ := e.tokenRequest(exchange(client, o.location.Query().Get("code"), p), "", "")
	require.Equal(e.t, http.StatusOK, status, tok)
	return client, tok
}

// A refresh token presented again shortly after its rotation (at once, by a retry, by another node) gets the same
// successor; once the successor is used, or after the window, it is a replay and the grant is revoked.
func TestRefreshReuseWindow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, clk, reg := reuseEnv(t, b, time.Minute)
			client, tok := e.login()
			rt1 := tok["refresh_token"].(string)

			// The same token sent several times at once: every answer is 200 with one and the same successor.
			answers := postAll(t, repeat(e.issuer, 6), refreshForm(client, rt1))
			first := answers[0]
			for i, a := range answers {
				require.Equal(t, http.StatusOK, a.status, "concurrent refresh %d: %v", i, a.body)
				assert.Equal(t, first.refreshToken(), a.refreshToken(), "one successor for every concurrent use")
				assert.Equal(t, first.accessToken(), a.accessToken(), "and the access token issued with it")
				assert.Equal(t, "mcp", a.body["scope"])
			}
			rt2 := first.refreshToken()
			require.NotEqual(t, rt1, rt2)
			assert.Equal(t, 5.0, counter(t, reg, "authserver_refresh_grace_reuses_total"))
			assert.Equal(t, 1.0, counter(t, reg, "authserver_tokens_issued_total", "grant_type", "refresh_token"),
				"a repeat issues nothing new")

			// A retry a second later: the same successor again, its access token's remaining lifetime.
			clk.advance(time.Second)
			status, again, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
			require.Equal(t, http.StatusOK, status, again)
			assert.Equal(t, rt2, again["refresh_token"])
			assert.Equal(t, first.accessToken(), again["access_token"])
			assert.Less(t, again["expires_in"].(float64), first.body["expires_in"].(float64))

			// The successor is used: now the old token is a replay, and the whole grant goes.
			status, tok3, _ := e.tokenRequest(refreshForm(client, rt2), "", "")
			require.Equal(t, http.StatusOK, status, tok3)
			status, body, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", body["error"])
			status, body, _ = e.tokenRequest(refreshForm(client, tok3["refresh_token"].(string)), "", "")
			assert.Equal(t, http.StatusBadRequest, status, "the replay revoked the successor's successor: %v", body)
			_, c2 := jtiOf(t, first.accessToken())
			_, c3 := jtiOf(t, tok3["access_token"].(string))
			assert.True(t, e.revoked(c2["jti"].(string)), "the replay revokes the grant's access tokens")
			assert.True(t, e.revoked(c3["jti"].(string)))
			assert.Equal(t, 1.0, counter(t, reg, "authserver_revocations_total", "reason", "refresh_replayed"))

			// After the window, a repeat is a replay even though the successor was never used.
			client, tok = e.login()
			rt1 = tok["refresh_token"].(string)
			status, tok2, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
			require.Equal(t, http.StatusOK, status, tok2)
			clk.advance(time.Minute)
			status, body, _ = e.tokenRequest(refreshForm(client, rt1), "", "")
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", body["error"])
			status, _, _ = e.tokenRequest(refreshForm(client, tok2["refresh_token"].(string)), "", "")
			assert.Equal(t, http.StatusBadRequest, status, "the late replay revoked the grant")
			assert.Equal(t, 2.0, counter(t, reg, "authserver_revocations_total", "reason", "refresh_replayed"))
		})
	}
}

// Without a window (0), every repeat is a replay: of two uses at once one gets tokens, the other revokes them.
func TestRefreshReuseWindowOff(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, _, _ := reuseEnv(t, b, 0)
			client, tok := e.login()
			answers := postAll(t, repeat(e.issuer, 2), refreshForm(client, tok["refresh_token"].(string)))
			var ok []reply
			for _, a := range answers {
				if a.status == http.StatusOK {
					ok = append(ok, a)
				} else {
					assert.Equal(t, "invalid_grant", a.body["error"])
				}
			}
			require.Len(t, ok, 1, "one use wins: %v", answers)
			status, _, _ := e.tokenRequest(refreshForm(client, ok[0].refreshToken()), "", "")
			assert.Equal(t, http.StatusBadRequest, status, "the replay revoked the winner's tokens too")
		})
	}
}

// A repeat that asks for less scope than its rotation gave gets the successor only if the successor's scope is
// within what it asks; otherwise an error that says why, and the grant stays.
func TestRefreshReuseNarrowing(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, _, _ := reuseEnv(t, b, time.Minute)
			narrow := refreshForm
			withScope := func(client, rt, scope string) url.Values {
				f := narrow(client, rt)
				f.Set("scope", scope)
				return f
			}

			// The rotation narrowed to mcp; repeats asking for mcp, or for everything, get the mcp successor.
			client, tok := e.login("scope", "mcp admin")
			require.Equal(t, "admin mcp", tok["scope"])
			rt1 := tok["refresh_token"].(string)
			status, tok2, _ := e.tokenRequest(withScope(client, rt1, "mcp"), "", "")
			require.Equal(t, http.StatusOK, status, tok2)
			require.Equal(t, "mcp", tok2["scope"])
			for _, f := range []url.Values{withScope(client, rt1, "mcp"), refreshForm(client, rt1)} {
				status, again, _ := e.tokenRequest(f, "", "")
				require.Equal(t, http.StatusOK, status, again)
				assert.Equal(t, tok2["refresh_token"], again["refresh_token"])
				assert.Equal(t, "mcp", again["scope"])
			}

			// The rotation kept both scopes; a repeat asking for mcp only is refused, not widened.
			client, tok = e.login("scope", "mcp admin")
			rt1 = tok["refresh_token"].(string)
			status, tok2, _ = e.tokenRequest(refreshForm(client, rt1), "", "")
			require.Equal(t, http.StatusOK, status, tok2)
			require.Equal(t, "admin mcp", tok2["scope"])
			status, body, _ := e.tokenRequest(withScope(client, rt1, "mcp"), "", "")
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_scope", body["error"])
			assert.Contains(t, body["error_description"], `"admin mcp"`)
			status, tok3, _ := e.tokenRequest(refreshForm(client, tok2["refresh_token"].(string)), "", "")
			assert.Equal(t, http.StatusOK, status, "the refused repeat revoked nothing: %v", tok3)
		})
	}
}

// Another client presenting a rotated token within the window is a replay, not a repeat.
func TestRefreshReuseOtherClient(t *testing.T) {
	e, _, _ := reuseEnv(t, backends[0], time.Minute)
	client, tok := e.login()
	rt1 := tok["refresh_token"].(string)
	status, tok2, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
	require.Equal(t, http.StatusOK, status, tok2)
	other := e.publicClient()
	status, body, _ := e.tokenRequest(refreshForm(other, rt1), "", "")
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Equal(t, "invalid_grant", body["error"])
	status, _, _ = e.tokenRequest(refreshForm(client, tok2["refresh_token"].(string)), "", "")
	assert.Equal(t, http.StatusBadRequest, status, "the grant is revoked")
}

// Two authorization servers on one Redis: a token rotated by one and presented at once to both gets the same
// successor from each.
func TestRefreshReuseAcrossReplicas(t *testing.T) {
	var redisBackend backendCase
	for _, b := range backends {
		if b.name == "redis" {
			redisBackend = b
		}
	}
	e, _, _ := reuseEnv(t, redisBackend, time.Minute)
	replicaA := e.issuer
	second, err := redisstore.Open(context.Background(), redisstore.Options{URL: e.redis.URL, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { second.Close() })
	first := e.store
	e.store = second
	e.start("octo")
	replicaB := e.issuer
	e.store, e.issuer = first, replicaA

	client, tok := e.login()
	answers := postAll(t, []string{replicaA, replicaB, replicaA, replicaB}, refreshForm(client, tok["refresh_token"].(string)))
	for i, a := range answers {
		require.Equal(t, http.StatusOK, a.status, "refresh %d: %v", i, a.body)
		assert.Equal(t, answers[0].refreshToken(), a.refreshToken(), "both replicas hand out one successor")
	}
	// The successor works at either replica.
	status, tok3, _ := e.tokenRequest(refreshForm(client, answers[0].refreshToken()), "", "")
	assert.Equal(t, http.StatusOK, status, tok3)
}

// The embedded store keeps rotations in its journal: a repeat after a restart still gets the same successor.
func TestRefreshReuseAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authserver.db")
	onFile := backendCase{"embedded file", func(t *testing.T) (store.Store, *testenv.Redis) {
		s, err := embedded.Open(path, quiet)
		require.NoError(t, err)
		return s, nil
	}}
	e, clk, _ := reuseEnv(t, onFile, time.Minute)
	client, tok := e.login()
	rt1 := tok["refresh_token"].(string)
	status, tok2, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
	require.Equal(t, http.StatusOK, status, tok2)

	require.NoError(t, e.store.Close())
	reopened, err := embedded.Open(path, quiet)
	require.NoError(t, err)
	t.Cleanup(func() { reopened.Close() })
	e.store = reopened
	e.start("octo")

	clk.advance(5 * time.Second)
	status, again, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
	require.Equal(t, http.StatusOK, status, again)
	assert.Equal(t, tok2["refresh_token"], again["refresh_token"])
	assert.Equal(t, tok2["access_token"], again["access_token"])
}

// A repeat within the window mints nothing, so the grant's bounds hold: it does not count against the refresh limit,
// and a grant that reached its maximum age meanwhile is over for the repeat too.
func TestRefreshReuseKeepsGrantBounds(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			e, clk, _ := reuseEnv(t, b, time.Minute)
			window := e.tweak
			e.tweak = func(c *oauth.Config) {
				window(c)
				c.Grants = grant.Policy{MaxAge: 2 * time.Minute, RefreshLimit: 1, Window: time.Hour}
			}
			e.start("octo")
			client, tok := e.login()
			rt1 := tok["refresh_token"].(string)
			status, tok2, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
			require.Equal(t, http.StatusOK, status, tok2)
			status, again, _ := e.tokenRequest(refreshForm(client, rt1), "", "")
			require.Equal(t, http.StatusOK, status, "a repeat is not a refresh the limit counts: %v", again)
			assert.Equal(t, tok2["refresh_token"], again["refresh_token"])
			status, body, _ := e.tokenRequest(refreshForm(client, tok2["refresh_token"].(string)), "", "")
			assert.Equal(t, http.StatusTooManyRequests, status, "the limit still holds for the successor: %v", body)

			// The grant ends two minutes after its login; a repeat just after the end is refused as ended.
			client, tok = e.login()
			rt1 = tok["refresh_token"].(string)
			clk.advance(90 * time.Second)
			status, tok2, _ = e.tokenRequest(refreshForm(client, rt1), "", "")
			require.Equal(t, http.StatusOK, status, tok2)
			clk.advance(31 * time.Second)
			status, body, _ = e.tokenRequest(refreshForm(client, rt1), "", "")
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, "invalid_grant", body["error"])
			assert.Contains(t, body["error_description"], "maximum age")
		})
	}
}

// A window at least as long as the access tokens would hand out expired access tokens: the server refuses to start.
func TestRefreshReuseWindowShorterThanAccessTokens(t *testing.T) {
	e := newEnv(t, backends[0], "octo")
	policy, err := github.ParsePolicy("octo", "", "")
	require.NoError(t, err)
	gh, err := github.New(github.Config{ClientID: ghClient, ClientSecret: ghSecret, WebURL: e.gh.WebURL(), APIURL: e.gh.APIURL(),
		RedirectURL: oauth.CallbackURL(e.issuer)}, policy, nil)
	require.NoError(t, err)
	start := func(w time.Duration) error {
		_, err := oauth.New(oauth.Config{Issuer: "https://auth.example.com", Resources: []string{resource}, Scopes: []string{"mcp"},
			AccessTTL: time.Hour, RefreshReuseWindow: w}, e.store, &keys.Manager{Store: e.store}, loginsOf(t, e.store, gh.LoginProvider()), quiet)
		return err
	}
	for _, w := range []time.Duration{time.Hour, 2 * time.Hour, -time.Second} {
		err := start(w)
		require.Error(t, err, "window %s", w)
		assert.Contains(t, err.Error(), "--refresh-reuse-window")
	}
	assert.NoError(t, start(0))
	assert.NoError(t, start(59*time.Minute))
}

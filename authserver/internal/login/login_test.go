package login_test

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
)

// provider is a provider that records what the service hands it.
type provider struct {
	name, path string
	got        []store.LoginAttempt
	deny       bool
}

func (p *provider) Name() string         { return p.name }
func (p *provider) DisplayName() string  { return p.name }
func (p *provider) CallbackPath() string { return p.path }
func (p *provider) AuthCodeURL(_ context.Context, state string, a store.LoginAttempt) (string, error) {
	return "https://idp.example/auth?" + url.Values{"state": {state}, "nonce": {a.Nonce}}.Encode(), nil
}
func (p *provider) Login(_ context.Context, cb login.Callback, a store.LoginAttempt) (*store.User, error) {
	p.got = append(p.got, a)
	if p.deny {
		return nil, &login.DeniedError{Login: "x", Reason: "no"}
	}
	return &store.User{ID: login.UserID(p.name, "sub-"+cb.Code), Login: "user"}, nil
}
func (p *provider) MayRefresh(store.User) (bool, string) { return true, "" }

func open(t *testing.T) store.Store {
	st, err := embedded.Open("", nil)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestNew(t *testing.T) {
	st := open(t)
	_, err := login.New(st)
	assert.ErrorContains(t, err, "no identity provider configured")
	_, err = login.New(st, &provider{name: "a", path: "/a"}, &provider{name: "a", path: "/b"})
	assert.ErrorContains(t, err, `two identity providers are named "a"`)
	_, err = login.New(st, &provider{name: "a", path: "/x"}, &provider{name: "b", path: "/x"})
	assert.ErrorContains(t, err, "share the callback path /x")
	_, err = login.New(st, &provider{name: "A", path: "/x"})
	assert.Error(t, err)
}

func request() *store.AuthRequest {
	return &store.AuthRequest{ID: "req-1", ExpiresAt: time.Now().Add(time.Minute)}
}

func TestBeginAndFinish(t *testing.T) {
	ctx := context.Background()
	a, b := &provider{name: "a", path: "/a"}, &provider{name: "b", path: "/b"}
	s, err := login.New(open(t), a, b)
	require.NoError(t, err)

	ar := request()
	ar.User = &store.User{ID: "someone-before"}
	to, err := s.Begin(context.Background(), ar, "b")
	require.NoError(t, err)
	u, _ := url.Parse(to)
	assert.Equal(t, "req-1", u.Query().Get("state"), "the request's id is the state")
	assert.Equal(t, ar.Login.Nonce, u.Query().Get("nonce"))
	assert.Equal(t, "b", ar.Login.Provider)
	assert.Len(t, ar.Login.Verifier, 43, "a PKCE verifier of 32 random bytes")
	assert.Nil(t, ar.User, "a new round trip forgets whoever came back from an earlier one")
	_, err = s.Begin(context.Background(), ar, "c")
	assert.Error(t, err)

	_, err = s.Finish(ctx, "a", url.Values{"code": {"1"}}, ar)
	assert.ErrorIs(t, err, login.ErrWrongProvider)
	assert.Empty(t, a.got, "the other provider is never asked")

	user, err := s.Finish(ctx, "b", url.Values{"code": {"1"}}, ar)
	require.NoError(t, err)
	assert.Equal(t, "b:sub-1", user.ID)
	assert.Equal(t, "b", user.Provider, "the service records the provider")
	assert.Zero(t, ar.Login, "the round trip is over")

	// Answered twice: the request now has its user and no attempt.
	ar.User = user
	_, err = s.Finish(ctx, "b", url.Values{"code": {"2"}}, ar)
	assert.ErrorIs(t, err, login.ErrReplayed)
	_, err = s.Finish(ctx, "b", url.Values{"code": {"2"}}, request())
	assert.ErrorIs(t, err, login.ErrNotStarted)
}

// An attempt finishes once even when two copies of the request still hold it (two nodes, two answers at once),
// and once refused it cannot be retried.
func TestAttemptFinishesOnce(t *testing.T) {
	ctx := context.Background()
	p := &provider{name: "a", path: "/a", deny: true}
	s, err := login.New(open(t), p)
	require.NoError(t, err)
	ar := request()
	_, err = s.Begin(context.Background(), ar, "a")
	require.NoError(t, err)
	first, second := *ar, *ar
	_, err = s.Finish(ctx, "a", url.Values{"code": {"1"}}, &first)
	var denied *login.DeniedError
	require.True(t, errors.As(err, &denied))
	p.deny = false
	_, err = s.Finish(ctx, "a", url.Values{"code": {"2"}}, &second)
	assert.ErrorIs(t, err, login.ErrReplayed)
	assert.Len(t, p.got, 1)
}

// A request stored before there were several providers (no attempt) went to GitHub: GitHub's callback finishes it.
func TestRequestFromBefore(t *testing.T) {
	gh := &provider{name: login.GitHub, path: "/github/callback"}
	s, err := login.New(open(t), gh)
	require.NoError(t, err)
	ar := request()
	u, err := s.Finish(context.Background(), login.GitHub, url.Values{"code": {"7"}}, ar)
	require.NoError(t, err)
	assert.Equal(t, "sub-7", u.ID, "GitHub's ids are not namespaced")
	assert.Equal(t, store.LoginAttempt{Provider: login.GitHub}, gh.got[0])
	ar.User = nil
	_, err = s.Finish(context.Background(), login.GitHub, url.Values{"code": {"8"}}, ar)
	assert.ErrorIs(t, err, login.ErrReplayed, "once, too")
}

func TestMayRefresh(t *testing.T) {
	s, err := login.New(open(t), &provider{name: "a", path: "/a"})
	require.NoError(t, err)
	ok, _ := s.MayRefresh(store.User{ID: "a:1", Provider: "a"})
	assert.True(t, ok)
	ok, reason := s.MayRefresh(store.User{ID: "1001", Login: "octo"})
	assert.False(t, ok, "a GitHub user, GitHub no longer configured")
	assert.Equal(t, "this server no longer accepts logins through github, where user octo logged in", reason)
}

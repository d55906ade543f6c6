package github

import (
	"context"
	"errors"
	"fmt"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// CallbackPath is where GitHub returns the browser, relative to the authorization server's issuer: the OAuth app's
// callback URL is <issuer>/github/callback.
const CallbackPath = "/github/callback"

// LoginProvider is the provider as the login flow sees it (login.Provider): its name is "github", its users keep
// their numeric GitHub ids as ids, and every login uses PKCE (S256) with the attempt's verifier.
func (p *Provider) LoginProvider() login.Provider { return identity{p} }

type identity struct{ p *Provider }

func (identity) Name() string         { return login.GitHub }
func (identity) DisplayName() string  { return "GitHub" }
func (identity) CallbackPath() string { return CallbackPath }

// AuthCodeURL refuses a silent attempt: GitHub has no prompt=none and may show its login or authorization page.
func (g identity) AuthCodeURL(_ context.Context, state string, a store.LoginAttempt) (string, error) {
	if a.Silent {
		return "", login.ErrNeedsUser
	}
	if a.Verifier == "" {
		return g.p.AuthCodeURL(state), nil
	}
	return g.p.AuthCodeURLWithPKCE(state, a.Verifier), nil
}

// Login redeems GitHub's code and applies the policy. GitHub documents no iss parameter (RFC 9207), so none is
// checked: the callback path of its own and the attempt's provider tell its responses apart. An attempt without a
// verifier is a request stored before logins used PKCE: it keeps the plain exchange.
func (g identity) Login(ctx context.Context, cb login.Callback, a store.LoginAttempt) (*store.User, error) {
	var u *store.User
	var err error
	if a.Verifier != "" {
		u, err = g.p.LoginWithPKCE(ctx, cb.Code, a.Verifier)
	} else {
		u, err = g.p.Login(ctx, cb.Code)
	}
	var denied *AccessDeniedError
	switch {
	case errors.As(err, &denied):
		return nil, &login.DeniedError{Login: denied.Login, Reason: denied.Reason}
	case errors.Is(err, ErrCodeRejected):
		return nil, fmt.Errorf("%w: %w", login.ErrCodeRejected, err)
	case err != nil:
		return nil, err
	}
	u.Provider = login.GitHub
	return u, nil
}

// MayRefresh re-checks the user list (by id, or the login checked against its pin at login), as Policy.MayRefresh.
func (g identity) MayRefresh(u store.User) (bool, string) {
	if g.p.Policy().MayRefresh(u.ID, u.Login) {
		return true, ""
	}
	return false, "GitHub user " + u.Login + " is no longer allowed to use this server"
}

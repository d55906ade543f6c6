// Package github is the authorization server's identity provider: GitHub's OAuth web flow, the user it vouches for
// (read with go-github), and the access rules (users, organizations, teams) that decide who may log in.
package github

import (
	"context"
	"errors"
	"net/http"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Config names the GitHub OAuth app and where GitHub lives.
type Config struct {
	ClientID, ClientSecret string
	WebURL                 string // default "https://github.com/"; GitHub Enterprise Server or the fake GitHub otherwise
	APIURL                 string // default "https://api.github.com/"; GHES: https://host/api/v3/
	RedirectURL            string // the authserver's callback URL
}

// Policy is who may log in: listed users (or "*"), members of listed organizations, members of listed teams ("org/team").
type Policy struct{ Users, Orgs, Teams []string }

// ParsePolicy reads comma lists (trimmed, case-insensitive) and validates them.
func ParsePolicy(users, orgs, teams string) (Policy, error) {
	return Policy{}, errors.New("github: not implemented")
}

// AllowsLogin reports whether the user list alone admits login.
func (p Policy) AllowsLogin(login string) bool { return false }

// Provider runs GitHub's OAuth web flow and applies the Policy.
type Provider struct{}

// New checks cfg and returns a Provider that uses client for every call to GitHub (nil: http.DefaultClient).
func New(cfg Config, policy Policy, client *http.Client) (*Provider, error) {
	return nil, errors.New("github: not implemented")
}

// AuthCodeURL is where the browser goes to log in on GitHub.
func (p *Provider) AuthCodeURL(state string) string { return "" }

// Login exchanges the GitHub code, reads the user and checks the policy.
func (p *Provider) Login(ctx context.Context, code string) (*store.User, error) {
	return nil, errors.New("github: not implemented")
}

// AccessDeniedError is a GitHub user the policy refuses; Reason is meant for a person.
type AccessDeniedError struct{ Login, Reason string }

func (e *AccessDeniedError) Error() string { return "access denied: " + e.Reason }

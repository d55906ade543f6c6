// Package login is the login step of an authorization (or device) request: between /authorize and the consent
// page, it sends the browser to the identity provider the user chose, finishes the round trip when the provider
// sends the browser back, and says at token refresh whether a user's provider still admits them.
//
// The service depends on the Provider interface only; GitHub (login/github) and any OpenID Connect provider
// (login/oidc) implement it. What a round trip needs (the provider, the PKCE verifier, the nonce) is kept with the
// authorization request in the store, and an attempt is finished once, on any node, through the store's single-use
// record (UseJTI).
package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Once is the part of the store the service needs: a single-use record (store.Store implements it).
type Once interface {
	UseJTI(ctx context.Context, key string, exp time.Time) error
}

// Errors of Finish besides the provider's own (*DeniedError, ErrCodeRejected, wrapped failures).
var (
	// ErrNotStarted: the request has no login under way (no provider chosen yet, or it already returned).
	ErrNotStarted = errors.New("login: no login is under way for this request")
	// ErrWrongProvider: the browser came back from another provider than the one this login went to.
	ErrWrongProvider = errors.New("login: the browser came back from another identity provider than the one chosen")
	// ErrReplayed: this attempt was already finished (a callback replayed, or its ID token's nonce used twice).
	ErrReplayed = errors.New("login: this login attempt was already finished")
)

// Service runs logins through its providers. Safe for concurrent use.
type Service struct {
	providers []Provider
	byName    map[string]Provider
	once      Once
	groups    []string // the groups a user record (and so a token) may name; nil: none
}

// New returns a service over the providers, in the order users see them. Names and callback paths must differ.
func New(once Once, providers ...Provider) (*Service, error) {
	if len(providers) == 0 {
		return nil, errors.New("login: no identity provider configured (GitHub, or an OpenID provider)")
	}
	s := &Service{providers: providers, byName: map[string]Provider{}, once: once}
	paths := map[string]string{}
	for _, p := range providers {
		if err := CheckName(p.Name()); err != nil {
			return nil, err
		}
		if _, dup := s.byName[p.Name()]; dup {
			return nil, fmt.Errorf("login: two identity providers are named %q", p.Name())
		}
		if other, dup := paths[p.CallbackPath()]; dup {
			return nil, fmt.Errorf("login: identity providers %q and %q share the callback path %s", other, p.Name(), p.CallbackPath())
		}
		s.byName[p.Name()] = p
		paths[p.CallbackPath()] = p.Name()
	}
	return s, nil
}

// KeepGroups declares the groups that matter to the MCP servers' policies (call it before serving): a user's
// groups are read at login and limited to these, so that tokens stay small. Without it users carry no groups.
func (s *Service) KeepGroups(declared []string) { s.groups = declared }

// Providers lists the providers in the order they were configured.
func (s *Service) Providers() []Provider { return s.providers }

// Provider returns the provider of that name.
func (s *Service) Provider(name string) (Provider, bool) {
	p, ok := s.byName[name]
	return p, ok
}

// Begin starts a round trip to provider name for the request: it records a fresh attempt (PKCE verifier, nonce,
// silent if the request is) in ar, which the caller must store, and returns where to send the browser. The request's id is the OAuth state.
func (s *Service) Begin(ctx context.Context, ar *store.AuthRequest, name string) (string, error) {
	p, ok := s.byName[name]
	if !ok {
		return "", fmt.Errorf("login: no identity provider is named %q", name)
	}
	// A new round trip replaces any earlier one, and the user it brought back: the consent form is for whoever
	// logs in now.
	ar.Login = store.LoginAttempt{Provider: name, Verifier: oauth2.GenerateVerifier(), Nonce: random(32), Silent: ar.Silent}
	ar.User = nil
	return p.AuthCodeURL(ctx, ar.ID, ar.Login)
}

// Finish completes the round trip the browser came back from, at provider name's callback with query q: the
// request's attempt must be that provider's and unfinished; it is then finished (for good, even if the provider
// refuses), and the provider redeems the code and judges the user. On success the attempt is cleared from ar and
// the user returned; the caller stores ar with its user.
func (s *Service) Finish(ctx context.Context, name string, q url.Values, ar *store.AuthRequest) (*store.User, error) {
	a := ar.Login
	if a.Provider == "" && ar.User == nil && name == GitHub {
		// A request stored before there were several providers went to GitHub, without PKCE or nonce.
		a.Provider = GitHub
	}
	once := a.Nonce // what makes the attempt unique; requests stored before attempts had nonces: the request
	if once == "" {
		once = "request\x00" + ar.ID
	}
	if a.Provider == "" {
		if ar.User != nil {
			return nil, ErrReplayed // the round trip is over: this is a second answer to it
		}
		return nil, ErrNotStarted
	}
	if a.Provider != name {
		return nil, fmt.Errorf("%w (it went to %s)", ErrWrongProvider, a.Provider)
	}
	p, ok := s.byName[name]
	if !ok {
		return nil, fmt.Errorf("login: no identity provider is named %q", name)
	}
	// One finish per attempt: the nonce (and with it the ID token that carries it) and the code are good once.
	if err := s.once.UseJTI(ctx, store.HashSecret("idp-login\x00"+once), ar.ExpiresAt); err != nil {
		if errors.Is(err, store.ErrReused) {
			return nil, ErrReplayed
		}
		return nil, fmt.Errorf("login: record the attempt: %w", err)
	}
	u, err := p.Login(ctx, Callback{Code: q.Get("code"), Issuer: q.Get("iss")}, a)
	if err != nil {
		return nil, err
	}
	u.Provider = name
	u.Groups = relevant(u.Groups, s.groups)
	ar.Login = store.LoginAttempt{}
	return u, nil
}

// MayRefresh says whether a user's grant may still be refreshed: their provider must still be configured and its
// rules (those it can check without a login) must still admit them. reason is for the client, when not.
func (s *Service) MayRefresh(u store.User) (ok bool, reason string) {
	name := ProviderOf(u)
	p, found := s.byName[name]
	if !found {
		return false, fmt.Sprintf("this server no longer accepts logins through %s, where user %s logged in", name, u.Login)
	}
	return p.MayRefresh(u)
}

// relevant is the part of groups that is declared, sorted, each once; nil when none is.
func relevant(groups, declared []string) []string {
	var keep []string
	for _, g := range groups {
		if slices.Contains(declared, g) && !slices.Contains(keep, g) {
			keep = append(keep, g)
		}
	}
	slices.Sort(keep)
	return keep
}

// ParseGroups reads the declared groups (--groups): comma-separated names, each at most 255 bytes of printable text
// without whitespace (the gateway passes a token's groups on in one comma-separated header, so a name cannot hold a
// comma or a space). Duplicates count once.
func ParseGroups(raw string) ([]string, error) {
	var out []string
	for _, g := range strings.Split(raw, ",") {
		g = strings.TrimSpace(g)
		switch {
		case g == "":
			continue
		case len(g) > 255:
			return nil, fmt.Errorf("group %.40q...: at most 255 bytes", g)
		case strings.IndexFunc(g, func(r rune) bool { return unicode.IsSpace(r) || Unprintable(r) }) >= 0:
			return nil, fmt.Errorf("group %q: a group name holds no whitespace or control characters (tokens' groups are "+
				"passed on comma-separated)", g)
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out, nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: since Go 1.24 it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

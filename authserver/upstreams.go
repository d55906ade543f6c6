package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/oidc"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

// The upstreams users connect accounts at (docs/connections.md): named by --upstreams, each set by flags named after
// it (--upstream-<name>-issuer, ...; in the environment AUTHSERVER_UPSTREAM_<NAME>_ISSUER, ...).

// upstreamSettings are one upstream's flags.
type upstreamSettings struct {
	issuer, authURL, tokenURL, revokeURL, clientID, clientSecret, scopes, displayName string
}

// loginsApp reports whether upstream n is a login provider's own app: named like the GitHub login or an OpenID
// provider, with no endpoint or client of its own. That provider's logins then keep their token as the user's
// connected account, with the upstream's scopes asked for at login.
func (s *settings) loginsApp(n string) bool {
	u := s.upstream[n]
	if u == nil || u.issuer != "" || u.authURL != "" || u.tokenURL != "" || u.clientID != "" {
		return false
	}
	_, openID := s.oidc[n]
	return n == login.GitHub || openID
}

const upstreamsFlag = "upstreams"

// flagValue finds --name on the command line, else in the environment variable env, before the flags are parsed
// (flags named after the values it lists must be registered first).
func flagValue(args []string, name, env string) string {
	value, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		n, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || n != name {
			continue
		}
		if !hasValue && i+1 < len(args) {
			v, i = args[i+1], i+1
		}
		value, found = v, true
	}
	if !found {
		value = os.Getenv(env)
	}
	return value
}

// upstreamNames reads --upstreams (or AUTHSERVER_UPSTREAMS): lower-case names, each once.
func upstreamNames(args []string) ([]string, error) {
	return nameList(upstreamsFlag, flagValue(args, upstreamsFlag, "AUTHSERVER_UPSTREAMS"), connections.CheckName)
}

// addUpstreamFlags registers the flags of each named upstream.
func addUpstreamFlags(fs *flag.FlagSet, s *settings, names []string) {
	s.upstream, s.upstreamOrder = map[string]*upstreamSettings{}, names
	for _, n := range names {
		u := &upstreamSettings{}
		s.upstream[n] = u
		f := func(setting string) string { return "upstream-" + n + "-" + setting }
		fs.StringVar(&u.issuer, f("issuer"), "", n+": the provider's issuer URL, for OpenID discovery of its endpoints (or give -auth-url and -token-url)")
		fs.StringVar(&u.authURL, f("auth-url"), "", n+": the provider's authorization endpoint")
		fs.StringVar(&u.tokenURL, f("token-url"), "", n+": the provider's token endpoint")
		fs.StringVar(&u.revokeURL, f("revoke-url"), "", n+": the provider's token revocation endpoint (RFC 7009), where disconnecting revokes the user's tokens (default: the issuer's revocation_endpoint; none: they stay valid there until they expire)")
		fs.StringVar(&u.clientID, f("client-id"), "", n+": the client id of the gateway's OAuth app at the provider (required)")
		fs.StringVar(&u.clientSecret, f("client-secret"), "", n+": its client secret (empty: a public client, PKCE only)")
		fs.StringVar(&u.scopes, f("scopes"), "", n+": comma-separated scopes asked for")
		fs.StringVar(&u.displayName, f("display-name"), "", n+": the name people read on the connect and account pages (default: the name)")
	}
}

// connectionsService builds the connected accounts from the flags (nil when neither an upstream nor a key is
// configured), checks that the key opens every stored connection, and seals again under the current key what an
// older key sealed. A wrong key stops the start.
func connectionsService(ctx context.Context, s *settings, st store.Store, trail *audit.Logger, log *slog.Logger) (*connections.Service, error) {
	keyText := s.connectionsKey
	if s.connectionsKeyFile != "" {
		if keyText != "" {
			return nil, errors.New("give --connections-key or --connections-key-file, not both")
		}
		b, err := os.ReadFile(s.connectionsKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--connections-key-file: %w", err)
		}
		keyText = string(b)
	}
	if s.brokerSecret != "" {
		if s.feedListen == "" {
			return nil, errors.New("--broker-secret: the broker endpoint is served on the internal listener only: set --feed-listen")
		}
		if len(s.brokerSecret) < 32 {
			return nil, errors.New("--broker-secret: at least 32 characters (e.g. openssl rand -base64 32)")
		}
	}
	if len(s.upstreamOrder) == 0 && keyText == "" {
		return nil, nil
	}
	if keyText == "" {
		return nil, errors.New("--upstreams: connected accounts' tokens are stored encrypted: give --connections-key or --connections-key-file " +
			"(a key is <id>:<base64 of 32 random bytes>, e.g. 1:$(openssl rand -base64 32))")
	}
	keys, err := connections.ParseKeys(keyText)
	if err != nil {
		return nil, fmt.Errorf("--connections-key: %w", err)
	}
	var ups []connections.Upstream
	for _, n := range s.upstreamOrder {
		u := s.upstream[n]
		up := connections.Upstream{Name: n, DisplayName: u.displayName, Issuer: u.issuer, AuthURL: u.authURL,
			TokenURL: u.tokenURL, RevokeURL: u.revokeURL, ClientID: u.clientID, ClientSecret: u.clientSecret, Scopes: flagenv.Split(u.scopes)}
		if o := s.oidc[n]; o != nil && s.loginsApp(n) {
			up.Issuer, up.ClientID, up.ClientSecret, up.FromLogin = o.issuer, o.clientID, o.clientSecret, true
			up.DisplayName = cmp.Or(up.DisplayName, o.displayName)
		} else if s.loginsApp(n) {
			if !githubConfigured(s) {
				return nil, errors.New("--upstreams github: give the upstream's own --upstream-github-* settings, or configure the GitHub login (--github-client-id), whose logins then connect it")
			}
			web := strings.TrimSuffix(s.ghWebURL, "/")
			up.AuthURL, up.TokenURL = web+"/login/oauth/authorize", web+"/login/oauth/access_token"
			up.ClientID, up.ClientSecret, up.FromLogin, up.SecretInForm = s.ghClientID, s.ghClientSecret, true, true
			up.DisplayName = cmp.Or(up.DisplayName, "GitHub")
		}
		ups = append(ups, up)
	}
	svc, err := connections.New(connections.Config{Issuer: s.issuer, Keys: keys, Upstreams: ups,
		HTTPClient: &http.Client{Timeout: 15 * time.Second}, Log: log, Audit: trail}, st)
	if err != nil {
		return nil, err
	}
	n, err := svc.CheckKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("connected accounts: %w", err)
	}
	if n > 0 {
		log.Info("connected accounts sealed again under the current key", "count", n, "key_id", keys.Current())
	}
	return svc, nil
}

// keepOpenIDLogins makes every login through an OpenID provider whose app is an upstream (settings.loginsApp) keep
// its token as the user's connected account there; the upstream's scopes were asked for at login (oidcProviders).
func keepOpenIDLogins(conns *connections.Service, providers []login.Provider) {
	if conns == nil {
		return
	}
	for _, p := range providers {
		o, ok := p.(*oidc.Provider)
		if up, connected := conns.Upstream(p.Name()); !ok || !connected || !up.FromLogin {
			continue
		}
		name := p.Name()
		o.KeepTokens(func(ctx context.Context, userID string, tok *oauth2.Token) error {
			return conns.Keep(ctx, name, userID, tok)
		})
	}
}

// keepGitHubLogins makes every GitHub login keep its token as the user's connected GitHub account, with the
// upstream's scopes asked for at login, when the github upstream is the login's own app.
func keepGitHubLogins(conns *connections.Service, cfg *github.Config) {
	if conns == nil {
		return
	}
	up, ok := conns.Upstream(login.GitHub)
	if !ok || !up.FromLogin {
		return
	}
	cfg.ExtraScopes = up.Scopes
	cfg.KeepToken = func(ctx context.Context, userID string, tok *oauth2.Token) error {
		return conns.Keep(ctx, login.GitHub, userID, tok)
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/github"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login/oidc"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/oauth"
	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

// The identity providers users log in with: GitHub when its OAuth app is configured (the --github-* flags), and the
// OpenID providers named by --oidc-providers, each set by flags named after it (--oidc-<name>-issuer, ...; in the
// environment AUTHSERVER_OIDC_<NAME>_ISSUER, ...). With several, the login shows a chooser: GitHub first, then the
// OpenID providers in the order listed.

// oidcSettings are one OpenID provider's flags.
type oidcSettings struct {
	issuer, clientID, clientSecret, displayName, scopes, usernameClaim, groupsClaim string
	userinfo                                                                        bool
	subjects, emails, domains, groups                                               string
}

const oidcProvidersFlag = "oidc-providers"

// oidcProviderNames finds --oidc-providers on the command line, else in AUTHSERVER_OIDC_PROVIDERS, before the flags
// are parsed: the providers' own flags are named after them. Names are checked (login.CheckName, not github, once
// each).
func oidcProviderNames(args []string) ([]string, error) {
	return nameList(oidcProvidersFlag, flagValue(args, oidcProvidersFlag, "AUTHSERVER_OIDC_PROVIDERS"), func(n string) error {
		if n == login.GitHub {
			return errors.New("github is configured by the --github-* flags, not as an OpenID provider")
		}
		return login.CheckName(n)
	})
}

// nameList reads a comma-separated list of names given to --flag, each lower-cased, checked and given once: the
// names of the providers or upstreams whose own flags are named after them.
func nameList(flag, value string, check func(string) error) ([]string, error) {
	var names []string
	for _, n := range flagenv.Split(value) {
		n = strings.ToLower(n)
		if err := check(n); err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		if slices.Contains(names, n) {
			return nil, fmt.Errorf("--%s: %s is listed twice", flag, n)
		}
		names = append(names, n)
	}
	return names, nil
}

// addOIDCFlags registers the flags of each named OpenID provider.
func addOIDCFlags(fs *flag.FlagSet, s *settings, names []string) {
	s.oidc, s.oidcOrder = map[string]*oidcSettings{}, names
	for _, n := range names {
		o := &oidcSettings{}
		s.oidc[n] = o
		f := func(setting string) string { return "oidc-" + n + "-" + setting }
		fs.StringVar(&o.issuer, f("issuer"), "", n+": the provider's issuer URL, exactly as its discovery document states it (required)")
		fs.StringVar(&o.clientID, f("client-id"), "", n+": the client id registered with the provider (required)")
		fs.StringVar(&o.clientSecret, f("client-secret"), "", n+": the client secret registered with the provider (required)")
		fs.StringVar(&o.displayName, f("display-name"), "", n+": the name users read on the sign-in, consent and refusal pages (default: the name, capitalized)")
		fs.StringVar(&o.scopes, f("scopes"), strings.Join(oidc.DefaultScopes, ","), n+": scopes asked for (openid is always added)")
		fs.BoolVar(&o.userinfo, f("userinfo"), false, n+": also read the userinfo endpoint for claims the ID token lacks")
		fs.StringVar(&o.usernameClaim, f("username-claim"), oidc.DefaultUsernameClaim, n+": the claim that names the user (X-User-Name); "+
			"without it, the verified e-mail address, then the sub")
		fs.StringVar(&o.groupsClaim, f("groups-claim"), oidc.DefaultGroupsClaim, n+": the claim --"+f("allowed-groups")+
			" is matched against (groups, roles, hd, or a path such as realm_access.roles)")
		fs.StringVar(&o.subjects, f("allowed-subjects"), "", n+": comma-separated sub values allowed in, or * for anyone the provider authenticates")
		fs.StringVar(&o.emails, f("allowed-emails"), "", n+": comma-separated e-mail addresses allowed in (only when the provider says they are verified)")
		fs.StringVar(&o.domains, f("allowed-email-domains"), "", n+": comma-separated domains whose verified addresses are allowed in (exact: no subdomains)")
		fs.StringVar(&o.groups, f("allowed-groups"), "", n+": comma-separated values of the groups claim allowed in")
	}
}

// githubConfigured reports whether the GitHub OAuth app is set (either half: then both are required).
func githubConfigured(s *settings) bool { return s.ghClientID != "" || s.ghClientSecret != "" }

// checkGitHub checks the GitHub settings without the store (the login pins come later) and returns its policy.
func checkGitHub(s *settings, log *slog.Logger) (github.Config, github.Policy, error) {
	if !githubConfigured(s) {
		if len(s.oidc) == 0 {
			return github.Config{}, github.Policy{}, errors.New("no identity provider: configure a GitHub OAuth app (--github-client-id and " +
				"--github-client-secret, docs/github.md) or OpenID providers (--oidc-providers, docs/idp.md), or both")
		}
		if s.allowedUsers != "" || s.allowedOrgs != "" || s.allowedTeams != "" {
			log.Warn("GitHub allow lists are set but GitHub is not configured (no --github-client-id): they have no effect")
		}
		return github.Config{}, github.Policy{}, nil
	}
	if s.ghClientID == "" || s.ghClientSecret == "" {
		return github.Config{}, github.Policy{}, errors.New("--github-client-id and --github-client-secret are required (a GitHub OAuth app; see docs/github.md)")
	}
	policy, err := github.ParsePolicy(s.allowedUsers, s.allowedOrgs, s.allowedTeams)
	if err != nil {
		return github.Config{}, github.Policy{}, err
	}
	if policy.Empty() {
		log.Warn("no GitHub user, organization or team is allowed: every GitHub login will be refused; set --allowed-github-users")
	}
	cfg := github.Config{ClientID: s.ghClientID, ClientSecret: s.ghClientSecret, WebURL: s.ghWebURL,
		APIURL: s.ghAPIURL, RedirectURL: oauth.CallbackURL(s.issuer)}
	if _, err := github.New(cfg, policy, nil); err != nil { // the settings, checked before the store is opened
		return github.Config{}, github.Policy{}, err
	}
	return cfg, policy, nil
}

// oidcProviders discovers each OpenID provider and returns them in the order listed, with a description of who
// each lets in for the start-up log.
// loginScopes are the scopes asked for at provider n's logins for the user's connected account there, when its app
// is an upstream (settings.loginsApp).
func loginScopes(s *settings, n string) []string {
	if !s.loginsApp(n) {
		return nil
	}
	return flagenv.Split(s.upstream[n].scopes)
}

func oidcProviders(ctx context.Context, s *settings, log *slog.Logger) ([]login.Provider, []string, error) {
	var providers []login.Provider
	var access []string
	for _, n := range s.oidcOrder {
		o := s.oidc[n]
		flagName := func(setting string) string { return "--oidc-" + n + "-" + setting }
		if o.issuer == "" || o.clientID == "" || o.clientSecret == "" {
			return nil, nil, fmt.Errorf("OpenID provider %s: %s, %s and %s are required (see docs/idp.md)",
				n, flagName("issuer"), flagName("client-id"), flagName("client-secret"))
		}
		policy, err := oidc.ParsePolicy(o.subjects, o.emails, o.domains, o.groups)
		if err != nil {
			return nil, nil, fmt.Errorf("OpenID provider %s: %w", n, err)
		}
		if policy.Empty() {
			log.Warn("no user of this OpenID provider is allowed: every login through it will be refused; set "+
				flagName("allowed-emails")+", "+flagName("allowed-email-domains")+", "+flagName("allowed-groups")+" or "+
				flagName("allowed-subjects"), "provider", n)
		}
		discover, cancel := context.WithTimeout(ctx, 30*time.Second)
		p, err := oidc.New(discover, oidc.Config{Name: n, DisplayName: o.displayName, Issuer: o.issuer, ClientID: o.clientID,
			ClientSecret: o.clientSecret, RedirectURL: s.issuer + oidc.CallbackPath(n), Scopes: strings.Fields(strings.ReplaceAll(o.scopes, ",", " ")),
			UserInfo: o.userinfo, UsernameClaim: o.usernameClaim, GroupsClaim: o.groupsClaim, ExtraScopes: loginScopes(s, n)}, policy, &http.Client{Timeout: 15 * time.Second})
		cancel()
		if err != nil {
			return nil, nil, err
		}
		if err := p.Ready(); err != nil {
			log.Warn("OpenID provider unreachable: the server starts without it, and its logins get a page saying so until "+
				"it answers (tried again at the next login, at most every 10 s)", "provider", n, "err", err)
		} else {
			log.Info("OpenID provider ready", "provider", n, "issuer", p.Issuer(), "callback", s.issuer+p.CallbackPath())
		}
		providers = append(providers, p)
		access = append(access, n+": "+policy.String())
	}
	return providers, access, nil
}

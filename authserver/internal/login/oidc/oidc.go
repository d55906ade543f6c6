// Package oidc logs users in with any OpenID Connect provider (Google, Microsoft Entra ID, Okta, Keycloak, Authentik,
// Auth0, GitLab, ...): issuer discovery, the authorization code flow with PKCE (S256) and a nonce, the ID token
// verified by github.com/coreos/go-oidc (issuer, audience, expiry, signature by the provider's published keys) and
// then by this package (nonce, authorized party, access-token hash), optionally the userinfo endpoint, and the
// access rules of Policy on the claims.
//
// A Provider implements login.Provider. Its users' ids are "<name>:<sub>": the provider's stable subject, namespaced
// by the provider's name so that two providers' subjects never meet.
package oidc

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Defaults of Config.
var DefaultScopes = []string{gooidc.ScopeOpenID, "email", "profile"}

const (
	DefaultUsernameClaim = "preferred_username"
	DefaultGroupsClaim   = "groups"
)

// CallbackPath is where provider name returns the browser, relative to the authorization server's issuer. Register
// <issuer><CallbackPath> as the redirect URI of the client at the provider.
func CallbackPath(name string) string { return "/oidc/" + name + "/callback" }

// Config names one OpenID provider and the client registered with it.
type Config struct {
	// Name identifies the provider (login.CheckName; not "github"): in settings, in CallbackPath, in user ids.
	Name string
	// DisplayName is what users read ("Google"); default: Name with a capital letter.
	DisplayName string
	// Issuer is the provider's issuer URL, exactly as its discovery document states it
	// (<Issuer>/.well-known/openid-configuration), e.g. https://accounts.google.com.
	Issuer                 string
	ClientID, ClientSecret string
	// RedirectURL is the authorization server's callback for this provider: its issuer + CallbackPath(Name).
	RedirectURL string
	// Scopes asked for; openid is always among them. Default: openid email profile.
	Scopes []string
	// UserInfo: also read the userinfo endpoint after the token exchange (its sub must be the ID token's) and take
	// the claims the ID token lacks from it. For providers that put e-mail or groups only there.
	UserInfo bool
	// ExtraScopes are asked for at every login besides Scopes, for the user's connected account at this provider
	// (package connections; KeepTokens): the login's token then serves the user's MCP servers.
	ExtraScopes []string
	// UsernameClaim names the user in X-User-Name and on pages (default preferred_username; then the verified
	// e-mail address, then the sub).
	UsernameClaim string
	// GroupsClaim holds the user's groups or roles for Policy.Groups (default groups; e.g. roles, or hd for a
	// Google Workspace domain). A claim name with dots that is not itself a claim is read as a path into nested
	// objects (realm_access.roles).
	GroupsClaim string
}

// Provider is one OpenID provider with its access rules. Safe for concurrent use.
type Provider struct {
	cfg    Config
	policy Policy
	client *http.Client
	keep   func(ctx context.Context, userID string, tok *oauth2.Token) error
	ready  atomic.Pointer[discovered] // nil until the provider's discovery document has been read

	mu      sync.Mutex // one discovery at a time
	lastTry time.Time
	lastErr error
}

// discovered is what the provider's discovery document gives.
type discovered struct {
	oauth    *oauth2.Config
	oidc     *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	// issParam: the provider says it sends iss in its authorization responses (RFC 9207), so one without is refused.
	issParam bool
}

// rediscoverAfter is the least time between two discovery attempts while the provider cannot be reached, so that
// logins while it is down do not each wait for it (a variable for the tests).
var rediscoverAfter = 10 * time.Second

// New checks cfg, discovers the provider (its metadata at <Issuer>/.well-known/openid-configuration, whose issuer
// must be exactly cfg.Issuer) and returns it. client makes every call to the provider (nil: a 15 s timeout).
//
// A provider that cannot be reached does not stop the server: New returns it all the same, with Ready telling why it
// is not ready, and discovery is tried again at its next login (at most every rediscoverAfter). A discovery
// document that contradicts cfg is a configuration error, returned by New.
func New(ctx context.Context, cfg Config, policy Policy, client *http.Client) (*Provider, error) {
	if err := login.CheckName(cfg.Name); err != nil {
		return nil, err
	}
	if cfg.Name == login.GitHub {
		return nil, errors.New(`oidc: the name "github" belongs to the GitHub provider; give this provider another name`)
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = strings.ToUpper(cfg.Name[:1]) + cfg.Name[1:]
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, failf(cfg, "issuer %q must be the provider's absolute https URL, without query or fragment", cfg.Issuer)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, failf(cfg, "the client id and client secret registered with the provider are required")
	}
	if r, err := url.Parse(cfg.RedirectURL); err != nil || (r.Scheme != "https" && r.Scheme != "http") || r.Host == "" {
		return nil, failf(cfg, "redirect URL %q must be the absolute http(s) URL of the authserver's callback", cfg.RedirectURL)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultScopes
	}
	if !slices.Contains(cfg.Scopes, gooidc.ScopeOpenID) {
		cfg.Scopes = append([]string{gooidc.ScopeOpenID}, cfg.Scopes...)
	}
	for _, extra := range cfg.ExtraScopes {
		if !slices.Contains(cfg.Scopes, extra) {
			cfg.Scopes = append(slices.Clip(cfg.Scopes), extra)
		}
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = DefaultUsernameClaim
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = DefaultGroupsClaim
	}
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	p := &Provider{cfg: cfg, policy: policy, client: client}
	if _, err := p.discover(ctx); err != nil && !errors.Is(err, login.ErrUnavailable) {
		return nil, err
	}
	return p, nil
}

func failf(cfg Config, format string, args ...any) error {
	return fmt.Errorf("oidc provider %s: %s", cfg.Name, fmt.Sprintf(format, args...))
}

// Ready reports whether the provider's discovery document has been read, and if not, why (an login.ErrUnavailable).
func (p *Provider) Ready() error {
	if p.ready.Load() != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastErr
}

// discover returns what the discovery document gives, reading it if no attempt was made in the last
// rediscoverAfter. A provider that cannot be reached gives login.ErrUnavailable; a document that contradicts the
// configuration, a configuration error.
func (p *Provider) discover(ctx context.Context) (*discovered, error) {
	if d := p.ready.Load(); d != nil {
		return d, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.ready.Load(); d != nil {
		return d, nil
	}
	if !p.lastTry.IsZero() && time.Since(p.lastTry) < rediscoverAfter {
		return nil, p.lastErr
	}
	p.lastTry = time.Now()
	d, err := p.read(ctx)
	if err != nil {
		p.lastErr = err
		return nil, err
	}
	p.ready.Store(d)
	return d, nil
}

// read fetches and checks the discovery document.
func (p *Provider) read(ctx context.Context) (*discovered, error) {
	cfg, client := p.cfg, p.client
	doc, err := gooidc.NewProvider(gooidc.ClientContext(ctx, client), cfg.Issuer)
	var mismatch *gooidc.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		return nil, failf(cfg, "the provider's discovery document names the issuer %q, not %q: set the issuer to exactly the provider's "+
			"(tokens are checked against it; for Microsoft Entra ID use the tenant's own issuer, "+
			"https://login.microsoftonline.com/<tenant id>/v2.0, never common or organizations)", mismatch.Discovered, mismatch.Provided)
	case err != nil:
		return nil, fmt.Errorf("oidc provider %s: discovery at %s/.well-known/openid-configuration failed: %w: %w",
			cfg.Name, strings.TrimSuffix(cfg.Issuer, "/"), login.ErrUnavailable, err)
	}
	var meta struct {
		ResponseTypes []string `json:"response_types_supported"`
		AuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
		IssParameter  bool     `json:"authorization_response_iss_parameter_supported"`
	}
	if err := doc.Claims(&meta); err != nil {
		return nil, failf(cfg, "read the discovery document: %v", err)
	}
	if len(meta.ResponseTypes) > 0 && !slices.Contains(meta.ResponseTypes, "code") {
		return nil, failf(cfg, "the provider does not offer the authorization code flow (response_types_supported lacks code)")
	}
	if cfg.UserInfo && doc.UserInfoEndpoint() == "" {
		return nil, failf(cfg, "userinfo is on, but the provider's discovery document names no userinfo_endpoint")
	}
	endpoint := doc.Endpoint()
	switch {
	case slices.Contains(meta.AuthMethods, "client_secret_basic") || len(meta.AuthMethods) == 0: // the default (OIDC Discovery §3)
		endpoint.AuthStyle = oauth2.AuthStyleInHeader
	case slices.Contains(meta.AuthMethods, "client_secret_post"):
		endpoint.AuthStyle = oauth2.AuthStyleInParams
	default:
		return nil, failf(cfg, "the provider's token endpoint takes neither client_secret_basic nor client_secret_post (it lists %s)",
			strings.Join(meta.AuthMethods, ", "))
	}
	// The key set lives as long as the provider: its context carries the HTTP client, never a cancellation.
	keys := gooidc.ClientContext(context.Background(), client)
	return &discovered{
		oauth: &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Scopes: cfg.Scopes, Endpoint: endpoint},
		oidc:     doc,
		verifier: doc.VerifierContext(keys, &gooidc.Config{ClientID: cfg.ClientID}),
		issParam: meta.IssParameter,
	}, nil
}

// KeepTokens has every login the access rules admit give its token response to keep (the user's connected account
// at this provider); an error of keep fails the login. Set it before the provider serves logins.
func (p *Provider) KeepTokens(keep func(ctx context.Context, userID string, tok *oauth2.Token) error) {
	p.keep = keep
}

// Name, DisplayName and CallbackPath implement login.Provider.
func (p *Provider) Name() string         { return p.cfg.Name }
func (p *Provider) DisplayName() string  { return p.cfg.DisplayName }
func (p *Provider) CallbackPath() string { return CallbackPath(p.cfg.Name) }

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Policy returns the access rules.
func (p *Provider) Policy() Policy { return p.policy }

// AuthCodeURL sends the browser to the provider with the attempt's S256 PKCE challenge and nonce, and prompt=none
// when the attempt is silent; login.ErrUnavailable while the provider's discovery document cannot be read.
func (p *Provider) AuthCodeURL(ctx context.Context, state string, a store.LoginAttempt) (string, error) {
	d, err := p.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.Verifier), gooidc.Nonce(a.Nonce)}
	if a.Silent {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "none"))
	}
	return d.oauth.AuthCodeURL(state, opts...), nil
}

// Login redeems the code (with the PKCE verifier), verifies the ID token, reads the claims (and userinfo when
// configured) and applies the policy.
func (p *Provider) Login(ctx context.Context, cb login.Callback, a store.LoginAttempt) (*store.User, error) {
	// RFC 9207: a response naming another issuer was sent by another provider (a mix-up attack), whatever it holds.
	if cb.Issuer != "" && cb.Issuer != p.cfg.Issuer {
		return nil, fmt.Errorf("oidc %s: the authorization response names the issuer %q, not %q: it comes from another provider",
			p.cfg.Name, cb.Issuer, p.cfg.Issuer)
	}
	d, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	if cb.Issuer == "" && d.issParam {
		return nil, fmt.Errorf("oidc %s: the authorization response has no iss parameter, which this provider always sends", p.cfg.Name)
	}
	if a.Verifier == "" || a.Nonce == "" {
		return nil, fmt.Errorf("oidc %s: the login attempt has no PKCE verifier or nonce", p.cfg.Name)
	}
	if cb.Code == "" {
		return nil, fmt.Errorf("oidc %s: %w", p.cfg.Name, login.ErrCodeRejected)
	}
	ctx = gooidc.ClientContext(ctx, p.client)
	tok, err := d.oauth.Exchange(ctx, cb.Code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("oidc %s: exchange the code: %w (%w)", p.cfg.Name, login.ErrCodeRejected, err)
		}
		return nil, fmt.Errorf("oidc %s: exchange the code: %w", p.cfg.Name, err)
	}
	user, err := p.identify(ctx, tok, a.Nonce)
	if err != nil || p.keep == nil {
		return user, err
	}
	if err := p.keep(ctx, user.ID, tok); err != nil {
		return nil, fmt.Errorf("oidc %s: keep the user's token as their connected account: %w", p.cfg.Name, err)
	}
	return user, nil
}

// identify verifies the token response's ID token against the nonce of the attempt and turns it into a user.
func (p *Provider) identify(ctx context.Context, tok *oauth2.Token, nonce string) (*store.User, error) {
	d, err := p.discover(ctx) // read already: the code was redeemed
	if err != nil {
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("oidc %s: the token response has no ID token (is openid among the scopes, and is the client an OpenID client?)", p.cfg.Name)
	}
	// Issuer, audience (our client id), expiry and not-before, and the signature with a key the provider publishes,
	// by an algorithm it advertises (never none).
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("oidc %s: the ID token is not valid: %w", p.cfg.Name, err)
	}
	// The nonce binds the ID token to this attempt (OIDC Core §3.1.3.7 item 11): a token issued for another login
	// (replayed, or injected by someone who started their own) carries another one.
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, fmt.Errorf("oidc %s: the ID token's nonce is not this login's: it was issued for another login (replayed or injected)", p.cfg.Name)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("oidc %s: read the ID token's claims: %w", p.cfg.Name, err)
	}
	// Authorized party (OIDC Core §3.1.3.7 items 4-5): with several audiences azp must be us, and if present it must be us.
	azp, _ := claims["azp"].(string)
	if (len(idt.Audience) > 1 || azp != "") && azp != p.cfg.ClientID {
		return nil, fmt.Errorf("oidc %s: the ID token was issued to %q (azp), not to this server's client", p.cfg.Name, azp)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("oidc %s: the ID token's at_hash does not match the access token: %w", p.cfg.Name, err)
		}
	}
	if p.cfg.UserInfo {
		info, err := d.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, fmt.Errorf("oidc %s: read userinfo: %w", p.cfg.Name, err)
		}
		// OIDC Core §5.3.4: a userinfo response about another subject must not be used.
		if info.Subject != idt.Subject {
			return nil, fmt.Errorf("oidc %s: userinfo describes the subject %q, not the ID token's %q", p.cfg.Name, info.Subject, idt.Subject)
		}
		var extra map[string]any
		if err := info.Claims(&extra); err != nil {
			return nil, fmt.Errorf("oidc %s: read userinfo claims: %w", p.cfg.Name, err)
		}
		claims = mergeClaims(claims, extra)
	}
	return p.user(idt.Subject, claims)
}

// mergeClaims adds userinfo's claims to the ID token's, which win. An address and its verification come together
// from one source: the ID token's if it has one.
func mergeClaims(token, info map[string]any) map[string]any {
	out := make(map[string]any, len(token)+len(info))
	for k, v := range info {
		out[k] = v
	}
	if _, ok := token["email"]; ok {
		delete(out, "email_verified")
	}
	for k, v := range token {
		out[k] = v
	}
	return out
}

// user applies the policy to the claims and returns the user.
func (p *Provider) user(subject string, claims map[string]any) (*store.User, error) {
	sub, err := login.CleanText("subject (sub)", subject, 255)
	if err == nil && sub != subject {
		err = errors.New("the provider sent a subject (sub) with surrounding spaces")
	}
	if err != nil {
		return nil, fmt.Errorf("oidc %s: unusable ID token: %w", p.cfg.Name, err)
	}
	email, _ := claims["email"].(string)
	email = strings.TrimSpace(email)
	verified := isTrue(claims["email_verified"])
	if len(email) > 254 || strings.IndexFunc(email, login.Unprintable) >= 0 || !strings.Contains(email, "@") {
		email, verified = "", false
	}
	verifiedEmail := ""
	if verified {
		verifiedEmail = email
	}
	groups, overage := p.groups(claims)
	username := ""
	if v, ok := claims[p.cfg.UsernameClaim].(string); ok {
		username = v
	}
	if username, err = login.CleanText("user name", username, 255); err != nil {
		username = verifiedEmail
		if username == "" {
			username = sub
		}
	}
	name := displayName(claims)

	id := identity{sub: sub, verifiedEmail: verifiedEmail, groups: groups}
	if !p.policy.allows(id) {
		return nil, &login.DeniedError{Login: username, Reason: p.refusal(username, email, verified, groups, overage)}
	}
	return &store.User{ID: login.UserID(p.cfg.Name, sub), Provider: p.cfg.Name, Login: username, Name: name, Email: verifiedEmail,
		Groups: groups}, nil
}

// refusal says why a user was refused, without naming who would be allowed.
func (p *Provider) refusal(login, email string, verified bool, groups []string, overage bool) string {
	d := p.cfg.DisplayName
	if p.policy.Empty() {
		return fmt.Sprintf("this server allows no %s user yet: its administrator must configure the allowed subjects, "+
			"e-mail addresses, e-mail domains or groups for %s", d, d)
	}
	reason := fmt.Sprintf("%s user %s is not allowed to use this server", d, login)
	var why []string
	if (len(p.policy.Emails) > 0 || len(p.policy.Domains) > 0) && email != "" && !verified {
		why = append(why, fmt.Sprintf("%s does not say that the e-mail address %s is verified, so it cannot admit them", d, email))
	}
	if len(p.policy.Groups) > 0 {
		switch {
		case overage:
			why = append(why, fmt.Sprintf("%s left the %s claim out of the ID token because the user is in too many groups; "+
				"the administrator can use app roles (the roles claim) instead", d, p.cfg.GroupsClaim))
		case len(groups) == 0:
			why = append(why, fmt.Sprintf("%s sent no %s claim for them", d, p.cfg.GroupsClaim))
		default:
			why = append(why, "they are in none of the allowed groups")
		}
	}
	if len(why) > 0 {
		reason += ": " + strings.Join(why, "; ")
	}
	return reason
}

// groups reads the groups claim: a list of strings or one string; a dotted name that is not a claim is a path into
// nested objects. overage reports a groups claim the provider moved elsewhere (Entra ID's _claim_names).
func (p *Provider) groups(claims map[string]any) (groups []string, overage bool) {
	v, ok := claims[p.cfg.GroupsClaim]
	if !ok && strings.Contains(p.cfg.GroupsClaim, ".") {
		var cur any = claims
		for _, part := range strings.Split(p.cfg.GroupsClaim, ".") {
			m, isMap := cur.(map[string]any)
			if !isMap {
				cur = nil
				break
			}
			cur = m[part]
		}
		v, ok = cur, cur != nil
	}
	if !ok {
		names, _ := claims["_claim_names"].(map[string]any)
		_, overage = names[p.cfg.GroupsClaim]
		return nil, overage
	}
	switch g := v.(type) {
	case string:
		if g != "" {
			groups = []string{g}
		}
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok && s != "" {
				groups = append(groups, s)
			}
		}
	}
	return groups, false
}

// displayName is the user's full name: name, else given and family name, shortened to 255 bytes.
func displayName(claims map[string]any) string {
	name, _ := claims["name"].(string)
	if strings.TrimSpace(name) == "" {
		given, _ := claims["given_name"].(string)
		family, _ := claims["family_name"].(string)
		name = given + " " + family
	}
	name = strings.TrimSpace(strings.Map(func(r rune) rune {
		if login.Unprintable(r) {
			return -1
		}
		return r
	}, name))
	for len(name) > 255 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name
}

// isTrue reads email_verified, which some providers (AWS Cognito) send as the string "true".
func isTrue(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return strings.EqualFold(b, "true")
	}
	return false
}

// MayRefresh re-checks the subject, e-mail and domain rules on what was recorded at login.
func (p *Provider) MayRefresh(u store.User) (bool, string) {
	sub, ok := strings.CutPrefix(u.ID, p.cfg.Name+":")
	if !ok || login.ProviderOf(u) != p.cfg.Name {
		return false, fmt.Sprintf("this grant's user did not log in through %s", p.cfg.DisplayName)
	}
	if p.policy.MayRefresh(sub, u.Email) {
		return true, ""
	}
	return false, fmt.Sprintf("%s user %s is no longer allowed to use this server", p.cfg.DisplayName, u.Login)
}

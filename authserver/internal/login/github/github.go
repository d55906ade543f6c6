// Package github logs users in with GitHub, one of the login package's providers (LoginProvider): GitHub's OAuth
// web flow, the user it vouches for (read with go-github), and the access rules (users, organizations, teams) that
// decide who may log in.
//
// It works against github.com, GitHub Enterprise Server and the fake GitHub of internal/testkit/fakegithub alike:
// only the two base URLs differ.
package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	gh "github.com/google/go-github/v62/github"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Default base URLs of github.com.
const (
	DefaultWebURL = "https://github.com/"
	DefaultAPIURL = "https://api.github.com/"
)

// Config names the GitHub OAuth app and where GitHub lives.
type Config struct {
	ClientID, ClientSecret string
	WebURL                 string // default "https://github.com/"; GitHub Enterprise Server or the fake GitHub otherwise
	APIURL                 string // default "https://api.github.com/"; GHES: https://host/api/v3/
	RedirectURL            string // the authserver's callback URL
	// Pins keeps the account each listed login was first seen with (nil: logins are not pinned, for tests).
	Pins LoginPins
	// ExtraScopes are asked for at every login besides what the access rules need, for the user's connected GitHub
	// account (package connections): the login's token then serves the user's MCP servers.
	ExtraScopes []string
	// KeepToken, when set, is given the GitHub token of every login the access rules admit (the user's connected
	// GitHub account); an error fails the login. Nil: the token is used for the login's calls only and dropped.
	KeepToken func(ctx context.Context, userID string, tok *oauth2.Token) error
	// Groups are the declared groups (login.Service.KeepGroups); those spelled as a GitHub organization ("acme") or
	// team ("acme/platform") are checked at each login and put in the user's record when the user is an active member.
	Groups []string
}

// LoginPins pins a login to the first account (numeric id) seen with it, and returns the pinned account.
// store.Store implements it.
type LoginPins interface {
	PinLogin(ctx context.Context, login, userID string) (string, error)
}

// ErrCodeRejected: GitHub refused the login code (unknown, expired or already used). The user should simply log in
// again; it is not a server fault.
var ErrCodeRejected = errors.New("GitHub refused the login code (expired or already used); log in again")

// ErrAppCredentials: GitHub refused the OAuth app's client id or secret, a configuration error of this server.
var ErrAppCredentials = errors.New("GitHub refused the OAuth app credentials; check the GitHub client id and secret")

// AccessDeniedError is a GitHub user the policy refuses. Reason is meant for the person who tried to log in.
type AccessDeniedError struct{ Login, Reason string }

func (e *AccessDeniedError) Error() string { return "access denied: " + e.Reason }

// Provider runs GitHub's OAuth web flow and applies the Policy. It is safe for concurrent use.
type Provider struct {
	oauth  *oauth2.Config
	policy Policy
	pins   LoginPins
	groups []string // declared groups that name a GitHub organization or team
	keep   func(ctx context.Context, userID string, tok *oauth2.Token) error
	client *http.Client
	api    *gh.Client // without credentials; each login derives one with the user's token
}

// New checks cfg and returns a Provider that uses client for every call to GitHub (nil: a client with a 15 s timeout).
func New(cfg Config, policy Policy, client *http.Client) (*Provider, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("github: the GitHub OAuth app client id and client secret are required")
	}
	webURL, err := baseURL("web URL", cfg.WebURL, DefaultWebURL)
	if err != nil {
		return nil, err
	}
	apiURL, err := baseURL("API URL", cfg.APIURL, DefaultAPIURL)
	if err != nil {
		return nil, err
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("github: redirect URL %q must be the absolute http(s) URL of the authserver's GitHub callback", cfg.RedirectURL)
	}
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	var groups []string
	for _, g := range cfg.Groups {
		if githubGroup(g) {
			groups = append(groups, g)
		}
	}
	api := gh.NewClient(client)
	api.BaseURL = apiURL // set directly: WithEnterpriseURLs would append /api/v3/ to URLs that must stay as given
	api.UserAgent = "mcp-oauth-gateway"
	return &Provider{
		oauth: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       withExtra(scopes(policy, len(groups) > 0), cfg.ExtraScopes),
			Endpoint: oauth2.Endpoint{
				AuthURL:  webURL.JoinPath("login/oauth/authorize").String(),
				TokenURL: webURL.JoinPath("login/oauth/access_token").String(),
				// GitHub documents the client credentials as form parameters.
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
		policy: policy,
		pins:   cfg.Pins,
		groups: groups,
		keep:   cfg.KeepToken,
		client: client,
		api:    api,
	}, nil
}

func baseURL(what, s, def string) (*url.URL, error) {
	if s == "" {
		s = def
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("github: %s %q must be an absolute http(s) URL without query", what, s)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/" // go-github resolves paths against it
	}
	return u, nil
}

// scopes asks for no more than the policy needs: the profile, the e-mail addresses (user:email, since the primary
// address may be private) and, only when organizations or teams are checked (to let users in, or as groups),
// read:org.
func scopes(p Policy, groups bool) []string {
	s := []string{"read:user", "user:email"}
	if p.NeedsMembership() || groups {
		s = append(s, "read:org")
	}
	return s
}

// withExtra adds the extra scopes not asked for already.
func withExtra(s, extra []string) []string {
	for _, e := range extra {
		if !slices.Contains(s, e) {
			s = append(s, e)
		}
	}
	return s
}

// Policy returns the access rules the provider applies.
func (p *Provider) Policy() Policy { return p.policy }

// AuthCodeURL is where the browser goes to log in on GitHub; state comes back unchanged to the callback.
func (p *Provider) AuthCodeURL(state string) string { return p.oauth.AuthCodeURL(state) }

// AuthCodeURLWithPKCE is AuthCodeURL with an S256 PKCE challenge (RFC 7636) derived from verifier, a value from
// oauth2.GenerateVerifier kept with the pending request; pass it to LoginWithPKCE. PKCE binds GitHub's code to this
// browser round trip even if the code leaks (OAuth 2.1 asks it of every client); GitHub supports it since 2025.
func (p *Provider) AuthCodeURLWithPKCE(state, verifier string) string {
	return p.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
}

// Login exchanges the GitHub code, reads the user (numeric id, login, name, primary verified e-mail) and checks the
// policy. A refused user gives an *AccessDeniedError; other failures are wrapped errors (ErrCodeRejected and
// ErrAppCredentials among them). The GitHub token is used for these calls only and then dropped, unless KeepToken
// keeps it as the user's connected account.
func (p *Provider) Login(ctx context.Context, code string) (*store.User, error) {
	return p.login(ctx, code)
}

// LoginWithPKCE is Login for a flow started with AuthCodeURLWithPKCE: it sends the verifier with the code.
func (p *Provider) LoginWithPKCE(ctx context.Context, code, verifier string) (*store.User, error) {
	if verifier == "" {
		return nil, errors.New("github: login: empty PKCE verifier")
	}
	return p.login(ctx, code, oauth2.VerifierOption(verifier))
}

func (p *Provider) login(ctx context.Context, code string, opts ...oauth2.AuthCodeOption) (*store.User, error) {
	if code == "" {
		return nil, fmt.Errorf("github: login: %w", ErrCodeRejected)
	}
	tok, err := p.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.client), code, opts...)
	if err != nil {
		// GitHub answers 200 with an error field; x/oauth2 turns it into a RetrieveError.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			switch re.ErrorCode {
			case "bad_verification_code":
				return nil, fmt.Errorf("github: exchange code: %w (%w)", ErrCodeRejected, err)
			case "incorrect_client_credentials":
				return nil, fmt.Errorf("github: exchange code: %w (%w)", ErrAppCredentials, err)
			}
		}
		return nil, fmt.Errorf("github: exchange code: %w", err)
	}
	api := p.api.WithAuthToken(tok.AccessToken)

	u, _, err := api.Users.Get(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("github: read the user: %w", err)
	}
	if u.GetID() == 0 || u.GetLogin() == "" {
		return nil, errors.New("github: read the user: GitHub returned a user without id or login")
	}
	user := &store.User{
		ID:    strconv.FormatInt(u.GetID(), 10),
		Login: u.GetLogin(),
		Name:  u.GetName(),
	}
	if err := p.authorize(ctx, api, user.ID, user.Login); err != nil {
		return nil, err
	}
	email, err := primaryVerifiedEmail(ctx, api)
	if err != nil {
		return nil, err
	}
	user.Email = email
	if user.Groups, err = p.memberships(ctx, api, user.Login); err != nil {
		return nil, err
	}
	if p.keep != nil {
		if err := p.keep(ctx, user.ID, tok); err != nil {
			return nil, fmt.Errorf("github: keep the user's token as their connected account: %w", err)
		}
	}
	return user, nil
}

// githubGroup reports whether a declared group is spelled as a GitHub organization or an org/team slug.
func githubGroup(g string) bool {
	org, team, isTeam := strings.Cut(strings.ToLower(g), "/")
	return validName(org) && (!isTeam || (len(team) <= maxNameLen && slugPattern.MatchString(team)))
}

// memberships are the declared GitHub groups the user is an active member of, as declared: one call per group, at
// login. A group GitHub will not tell about (an organization restricting OAuth apps) is left out; any other failure
// fails the login, since a policy may deny by group and a group left out could let the user through.
func (p *Provider) memberships(ctx context.Context, api *gh.Client, login string) ([]string, error) {
	var groups, hidden []string
	for _, g := range p.groups {
		org, team, isTeam := strings.Cut(strings.ToLower(g), "/")
		var m *gh.Membership
		var err error
		if isTeam {
			m, _, err = api.Teams.GetTeamMembershipBySlug(ctx, org, team, login)
		} else {
			m, _, err = api.Organizations.GetOrgMembership(ctx, "", org)
		}
		active, err := isMember(m, err, org, &hidden)
		if err != nil {
			return nil, fmt.Errorf("github: read membership of group %s: %w", g, err)
		}
		if active {
			groups = append(groups, g)
		}
	}
	return groups, nil
}

// primaryVerifiedEmail is the user's primary address if GitHub has verified it, else "". The profile's public
// e-mail is not used: GitHub does not say whether it is verified.
func primaryVerifiedEmail(ctx context.Context, api *gh.Client) (string, error) {
	opts := &gh.ListOptions{PerPage: 100}
	for {
		emails, resp, err := api.Users.ListEmails(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("github: read the user's e-mail addresses: %w", err)
		}
		for _, e := range emails {
			if e.GetPrimary() {
				if e.GetVerified() {
					return e.GetEmail(), nil
				}
				return "", nil
			}
		}
		if resp.NextPage == 0 {
			return "", nil
		}
		opts.Page = resp.NextPage
	}
}

// authorize applies the policy: the user list first (no call to GitHub; an id, or a login checked against its pin),
// then organization membership, then team membership, stopping at the first rule that admits the user.
func (p *Provider) authorize(ctx context.Context, api *gh.Client, id, login string) error {
	if p.policy.Empty() {
		return &AccessDeniedError{Login: login, Reason: "this server allows no GitHub user yet: its administrator must " +
			"configure the allowed GitHub users (ALLOWED_GITHUB_USERS, logins or *), organizations or teams"}
	}
	if p.policy.AllowsID(id) || p.policy.AllowsAnyone() {
		return nil
	}
	if p.policy.AllowsLogin(login) {
		if p.pins == nil {
			return nil
		}
		pinned, err := p.pins.PinLogin(ctx, login, id)
		if err != nil {
			return fmt.Errorf("github: pin login %s: %w", login, err)
		}
		if pinned == id {
			return nil
		}
		// The login is listed, but another account held it when it was first let in: logins change hands.
		if !p.policy.NeedsMembership() {
			return &AccessDeniedError{Login: login, Reason: fmt.Sprintf("GitHub user %s (account %s) is not the account that "+
				"was allowed under that name (account %s): GitHub logins change hands. If this is you, ask the administrator "+
				"to allow your account by id (id:%s)", login, id, pinned, id)}
		}
	}
	if !p.policy.NeedsMembership() {
		return &AccessDeniedError{Login: login, Reason: fmt.Sprintf("GitHub user %s is not in the allowed users", login)}
	}
	var hidden []string // organizations that would not tell us
	for _, org := range p.policy.Orgs {
		m, _, err := api.Organizations.GetOrgMembership(ctx, "", org)
		active, err := isMember(m, err, org, &hidden)
		if err != nil {
			return fmt.Errorf("github: check membership of organization %s: %w", org, err)
		}
		if active {
			return nil
		}
	}
	for _, team := range p.policy.Teams {
		org, slug, _ := strings.Cut(team, "/")
		m, _, err := api.Teams.GetTeamMembershipBySlug(ctx, org, slug, login)
		active, err := isMember(m, err, org, &hidden)
		if err != nil {
			return fmt.Errorf("github: check membership of team %s: %w", team, err)
		}
		if active {
			return nil
		}
	}
	reason := fmt.Sprintf("GitHub user %s is not a member of any allowed organization or team", login)
	if len(p.policy.Users) > 0 {
		reason = fmt.Sprintf("GitHub user %s is not in the allowed users and is not a member of any allowed organization or team", login)
	}
	if len(hidden) > 0 {
		reason += fmt.Sprintf(" (GitHub refused to show membership in %s: the organization may restrict OAuth app access "+
			"until an owner approves this app)", strings.Join(hidden, ", "))
	}
	return &AccessDeniedError{Login: login, Reason: reason}
}

// isMember reads GitHub's answer to a membership request (of an organization, or of a team in org): active or not,
// or the request's error. A 404 means no member; a 403 too, and org joins hidden.
func isMember(m *gh.Membership, err error, org string, hidden *[]string) (bool, error) {
	switch {
	case err == nil:
		return m.GetState() == "active", nil
	case isStatus(err, http.StatusNotFound):
		return false, nil
	case isStatus(err, http.StatusForbidden):
		// An organization that restricts OAuth app access hides membership until an owner approves the app.
		*hidden = appendNew(*hidden, org)
		return false, nil
	}
	return false, err
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func isStatus(err error, code int) bool {
	var er *gh.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == code
}

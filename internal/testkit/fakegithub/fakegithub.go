// Package fakegithub is a fake GitHub for tests and the local development stack. It speaks the part of GitHub the
// authorization server uses: the OAuth web flow (/login/oauth/authorize, /login/oauth/access_token) and the REST
// endpoints under /api/v3/ (as on GitHub Enterprise Server) that read the user, their e-mail addresses and their
// organization and team memberships.
//
// It logs the configured user in without a password, so it must never be reachable from a network: Start listens on
// loopback only, and cmd/fakegithub refuses any other address.
package fakegithub

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIPrefix is where the REST API lives, as on GitHub Enterprise Server (https://host/api/v3/).
const APIPrefix = "/api/v3/"

// CodeLifetime is how long a login code can be exchanged; GitHub uses 10 minutes.
const CodeLifetime = 10 * time.Minute

// Config is what the fake GitHub knows.
type Config struct {
	Users []User
	Apps  []App
	// Login is the user /login/oauth/authorize logs in; default the first of Users. SetLogin changes it.
	Login string
	// RestrictedOrgs have OAuth app access restrictions and have not approved the app: GitHub answers 403 to
	// membership questions about them.
	RestrictedOrgs []string
	// Logger receives one line per request outcome (never a code or token); nil discards.
	Logger *slog.Logger
}

// User is a GitHub account.
type User struct {
	ID     int64
	Login  string
	Name   string
	Emails []Email
	Orgs   []string // active organization memberships
	// PendingOrgs are invitations not yet accepted: GitHub reports them with state "pending".
	PendingOrgs []string
	// Teams are active team memberships, "org/team-slug"; a team member is also an active member of the organization.
	Teams []string
}

// Email is one of a user's e-mail addresses.
type Email struct {
	Email    string
	Primary  bool
	Verified bool
}

// App is an OAuth app registered on the fake GitHub.
type App struct {
	ClientID, ClientSecret string
	// CallbackURL is the app's authorization callback URL. As on GitHub, a redirect_uri must have its scheme, host
	// and port (any port when the host is loopback) and a path at or below its path. Empty: any redirect_uri on a
	// loopback host.
	CallbackURL string
}

// Server is the fake GitHub's http.Handler.
type Server struct {
	// URL is set by Start: the base URL of the test server.
	URL string

	mux        *http.ServeMux
	log        *slog.Logger
	mu         sync.Mutex
	users      []User
	apps       []App
	restricted []string
	login      string
	deny       bool
	codes      map[string]grant // login code -> grant
	tokens     map[string]grant // access token -> grant
}

// grant is what a code or token stands for.
type grant struct {
	clientID    string
	redirectURI string
	login       string
	scopes      []string
	challenge   string    // codes only: the S256 PKCE challenge, if the client sent one
	expires     time.Time // codes only
}

// New validates cfg and returns the handler.
func New(cfg Config) (*Server, error) {
	if len(cfg.Users) == 0 {
		return nil, errors.New("fakegithub: at least one user is required")
	}
	if len(cfg.Apps) == 0 {
		return nil, errors.New("fakegithub: at least one OAuth app is required")
	}
	for _, u := range cfg.Users {
		if u.ID <= 0 || u.Login == "" {
			return nil, fmt.Errorf("fakegithub: user %q needs a positive id and a login", u.Login)
		}
		for _, t := range u.Teams {
			if org, slug, ok := strings.Cut(t, "/"); !ok || org == "" || slug == "" {
				return nil, fmt.Errorf("fakegithub: user %s: team %q is not org/team-slug", u.Login, t)
			}
		}
	}
	for _, a := range cfg.Apps {
		if a.ClientID == "" || a.ClientSecret == "" {
			return nil, errors.New("fakegithub: every OAuth app needs a client id and a client secret")
		}
		if a.CallbackURL != "" {
			if u, err := url.Parse(a.CallbackURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, fmt.Errorf("fakegithub: app %s: callback URL %q is not an absolute http(s) URL", a.ClientID, a.CallbackURL)
			}
		}
	}
	s := &Server{
		log:        cfg.Logger,
		users:      slices.Clone(cfg.Users),
		apps:       slices.Clone(cfg.Apps),
		restricted: slices.Clone(cfg.RestrictedOrgs),
		codes:      map[string]grant{},
		tokens:     map[string]grant{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.SetLogin(cfg.Login); err != nil {
		return nil, err
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /login/oauth/authorize", s.authorize)
	s.mux.HandleFunc("POST /login/oauth/access_token", s.accessToken)
	s.mux.HandleFunc("GET "+APIPrefix+"user", s.api(s.getUser))
	s.mux.HandleFunc("GET "+APIPrefix+"user/emails", s.api(s.listEmails))
	s.mux.HandleFunc("GET "+APIPrefix+"user/memberships/orgs/{org}", s.api(s.orgMembership))
	s.mux.HandleFunc("GET "+APIPrefix+"orgs/{org}/teams/{team}/memberships/{username}", s.api(s.teamMembership))
	s.mux.HandleFunc(APIPrefix, s.api(func(w http.ResponseWriter, _ *http.Request, _ grant) { notFound(w) }))
	return s, nil
}

// ServeHTTP serves the OAuth web flow and the REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// SetLogin chooses who the next /login/oauth/authorize logs in ("" = the first configured user). It also ends a
// SetDeny.
func (s *Server) SetLogin(login string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if login == "" {
		login = s.users[0].Login
	}
	if s.userLocked(login) == nil {
		return fmt.Errorf("fakegithub: no user %q is configured", login)
	}
	s.login, s.deny = login, false
	return nil
}

// SetDeny makes the next authorizations behave like a user who clicks "Cancel" on GitHub: the redirect carries
// error=access_denied instead of a code.
func (s *Server) SetDeny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// WebURL is the base of the OAuth web flow, for the provider's WebURL ("" before Start).
func (s *Server) WebURL() string { return s.URL + "/" }

// APIURL is the base of the REST API, for the provider's APIURL ("" before Start).
func (s *Server) APIURL() string { return s.URL + APIPrefix }

func (s *Server) userLocked(login string) *User {
	for i := range s.users {
		if strings.EqualFold(s.users[i].Login, login) {
			return &s.users[i]
		}
	}
	return nil
}

func (s *Server) app(clientID string) *App {
	for i := range s.apps {
		if s.apps[i].ClientID == clientID {
			return &s.apps[i]
		}
	}
	return nil
}

// authorize is GitHub's authorization page, where the user is already logged in and has approved the app.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	app := s.app(q.Get("client_id"))
	if app == nil {
		// GitHub shows a 404 page for an unknown client id; never redirect.
		http.Error(w, "fake GitHub: no OAuth app has client_id "+strconv.Quote(q.Get("client_id")), http.StatusNotFound)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" {
		redirectURI = app.CallbackURL
	}
	target, err := url.Parse(redirectURI)
	if err != nil || !callbackAllows(app.CallbackURL, target) {
		http.Error(w, "fake GitHub: redirect_uri "+strconv.Quote(redirectURI)+" is not under the app's callback URL "+
			strconv.Quote(app.CallbackURL), http.StatusBadRequest)
		return
	}
	challenge := q.Get("code_challenge")
	if m := q.Get("code_challenge_method"); challenge != "" && m != "S256" {
		http.Error(w, "fake GitHub: code_challenge_method must be S256", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	login, deny := s.login, s.deny
	out := target.Query()
	if deny {
		out.Set("error", "access_denied")
		out.Set("error_description", "The user has denied your application access.")
		out.Set("error_uri", "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#access-denied")
	} else {
		code := randomHex(10)
		s.codes[code] = grant{clientID: app.ClientID, redirectURI: q.Get("redirect_uri"), login: login,
			scopes: parseScopes(q.Get("scope")), challenge: challenge, expires: time.Now().Add(CodeLifetime)}
		out.Set("code", code)
	}
	s.mu.Unlock()
	if st := q.Get("state"); st != "" {
		out.Set("state", st)
	}
	target.RawQuery = out.Encode()
	s.log.Info("fake GitHub authorized", "client_id", app.ClientID, "login", login, "denied", deny)
	http.Redirect(w, r, target.String(), http.StatusFound)
}

// callbackAllows applies GitHub's redirect_uri rule for OAuth apps.
func callbackAllows(callback string, target *url.URL) bool {
	if target.Host == "" || (target.Scheme != "http" && target.Scheme != "https") || target.User != nil || target.Fragment != "" {
		return false
	}
	if callback == "" {
		return isLoopbackHost(target.Hostname())
	}
	cb, err := url.Parse(callback)
	if err != nil || cb.Scheme != target.Scheme || !strings.EqualFold(cb.Hostname(), target.Hostname()) {
		return false
	}
	if cb.Port() != target.Port() && !isLoopbackHost(cb.Hostname()) {
		return false
	}
	base := strings.TrimSuffix(cb.Path, "/")
	return target.Path == cb.Path || target.Path == base || strings.HasPrefix(target.Path, base+"/")
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseScopes(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// accessToken exchanges a code, checking the client credentials (form parameters or HTTP Basic, both of which
// GitHub accepts). Like GitHub it answers 200 even for errors, as JSON when asked for, else form-encoded.
func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		tokenReply(w, r, url.Values{"error": {"invalid_request"}, "error_description": {"The request body is not a form."}})
		return
	}
	clientID, secret, ok := r.BasicAuth()
	if !ok {
		clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	app := s.app(clientID)
	if app == nil || secret != app.ClientSecret {
		s.log.Info("fake GitHub refused client credentials", "client_id", clientID)
		tokenReply(w, r, url.Values{"error": {"incorrect_client_credentials"},
			"error_description": {"The client_id and/or client_secret passed are incorrect."},
			"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#incorrect-client-credentials"}})
		return
	}
	code := r.PostForm.Get("code")
	s.mu.Lock()
	g, found := s.codes[code]
	delete(s.codes, code) // single use, whatever happens next
	s.mu.Unlock()
	if !found || g.clientID != app.ClientID || time.Now().After(g.expires) {
		tokenReply(w, r, url.Values{"error": {"bad_verification_code"},
			"error_description": {"The code passed is incorrect or expired."},
			"error_uri":         {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code"}})
		return
	}
	if g.challenge != "" && !pkceMatches(g.challenge, r.PostForm.Get("code_verifier")) {
		tokenReply(w, r, url.Values{"error": {"bad_verification_code"},
			"error_description": {"The code_verifier does not match the code_challenge."}})
		return
	}
	if ru := r.PostForm.Get("redirect_uri"); ru != "" && g.redirectURI != "" && ru != g.redirectURI {
		tokenReply(w, r, url.Values{"error": {"redirect_uri_mismatch"},
			"error_description": {"The redirect_uri MUST match the registered callback URL for this application."}})
		return
	}
	token := "gho_" + randomHex(18)
	s.mu.Lock()
	s.tokens[token] = g
	s.mu.Unlock()
	tokenReply(w, r, url.Values{"access_token": {token}, "token_type": {"bearer"}, "scope": {strings.Join(g.scopes, ",")}})
}

func pkceMatches(challenge, verifier string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return verifier != "" && subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}

func tokenReply(w http.ResponseWriter, r *http.Request, v url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		m := map[string]string{}
		for k := range v {
			m[k] = v.Get(k)
		}
		writeJSON(w, http.StatusOK, m)
		return
	}
	w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	_, _ = w.Write([]byte(v.Encode()))
}

// api wraps a REST handler with GitHub's token check ("Authorization: Bearer …" or "token …").
func (s *Server) api(h func(http.ResponseWriter, *http.Request, grant)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		if auth == "" {
			writeJSON(w, http.StatusUnauthorized, apiError("Requires authentication"))
			return
		}
		scheme, token, _ := strings.Cut(auth, " ")
		s.mu.Lock()
		g, ok := s.tokens[strings.TrimSpace(token)]
		s.mu.Unlock()
		if !ok || (!strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token")) {
			writeJSON(w, http.StatusUnauthorized, apiError("Bad credentials"))
			return
		}
		w.Header().Set("X-OAuth-Scopes", strings.Join(g.scopes, ", "))
		h(w, r, g)
	}
}

// hasScope applies GitHub's scope implications: "user" includes read:user and user:email; admin:org and write:org
// include read:org.
func hasScope(g grant, want string) bool {
	for _, s := range g.scopes {
		if s == want ||
			(s == "user" && (want == "read:user" || want == "user:email")) ||
			((s == "admin:org" || s == "write:org") && want == "read:org") {
			return true
		}
	}
	return false
}

func (s *Server) user(g grant) User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.userLocked(g.login)
}

func (s *Server) getUser(w http.ResponseWriter, _ *http.Request, g grant) {
	u := s.user(g)
	writeJSON(w, http.StatusOK, map[string]any{
		"login": u.Login, "id": u.ID, "node_id": "U_fake" + strconv.FormatInt(u.ID, 10), "type": "User",
		"name": nullable(u.Name), "email": nil, "site_admin": false,
		"html_url": "https://github.example/" + u.Login,
	})
}

func (s *Server) listEmails(w http.ResponseWriter, _ *http.Request, g grant) {
	if !hasScope(g, "user:email") {
		// GitHub answers 404 when the token lacks the scope.
		notFound(w)
		return
	}
	out := []map[string]any{}
	for _, e := range s.user(g).Emails {
		out = append(out, map[string]any{"email": e.Email, "primary": e.Primary, "verified": e.Verified, "visibility": "private"})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) orgMembership(w http.ResponseWriter, r *http.Request, g grant) {
	if !hasScope(g, "read:org") {
		writeJSON(w, http.StatusForbidden, apiError("You need at least read:org scope or user scope to list your organization memberships."))
		return
	}
	u, org := s.user(g), r.PathValue("org")
	if containsFold(s.restricted, org) {
		writeJSON(w, http.StatusForbidden, restrictedError(org))
		return
	}
	state := ""
	switch {
	case containsFold(u.Orgs, org) || teamInOrg(u.Teams, org):
		state = "active"
	case containsFold(u.PendingOrgs, org):
		state = "pending"
	default:
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"state": state, "role": "member",
		"organization": map[string]any{"login": strings.ToLower(org)},
		"user":         map[string]any{"login": u.Login, "id": u.ID},
	})
}

func (s *Server) teamMembership(w http.ResponseWriter, r *http.Request, g grant) {
	if !hasScope(g, "read:org") {
		writeJSON(w, http.StatusForbidden, apiError("You need at least read:org scope to read team memberships."))
		return
	}
	org, team := r.PathValue("org"), r.PathValue("team")
	if containsFold(s.restricted, org) {
		writeJSON(w, http.StatusForbidden, restrictedError(org))
		return
	}
	s.mu.Lock()
	caller, member := s.userLocked(g.login), s.userLocked(r.PathValue("username"))
	var callerOrgs, callerTeams, memberTeams []string
	callerOrgs, callerTeams = caller.Orgs, caller.Teams
	if member != nil {
		memberTeams = member.Teams
	}
	s.mu.Unlock()
	// GitHub hides a team from users outside its organization.
	if !containsFold(callerOrgs, org) && !teamInOrg(callerTeams, org) {
		notFound(w)
		return
	}
	if member == nil || !containsFold(memberTeams, org+"/"+team) {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"state": "active", "role": "member"})
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}

func teamInOrg(teams []string, org string) bool {
	return slices.ContainsFunc(teams, func(t string) bool {
		o, _, _ := strings.Cut(t, "/")
		return strings.EqualFold(o, org)
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func apiError(msg string) map[string]string {
	return map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"}
}

func restrictedError(org string) map[string]string {
	return apiError("Although you appear to have the correct authorization credentials, the `" + org +
		"` organization has enabled OAuth App access restrictions, meaning that data access to third-parties is limited.")
}

func notFound(w http.ResponseWriter) { writeJSON(w, http.StatusNotFound, apiError("Not Found")) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

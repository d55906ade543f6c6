// Package hydratest runs a real OpenID provider for tests: ORY Hydra v2.3.0 (built into .cache/bin/hydra from the
// nested module tools/hydra by `go tool task deps`) in its in-memory mode, which needs no database. The package is
// Hydra's login and consent application: it logs in the user set with SetUser without a password and grants every
// requested scope, putting the user's claims into the ID token (Hydra also answers them at its userinfo endpoint).
//
// Everything else is Hydra's own: discovery, the authorization endpoint, PKCE, nonce, signed ID tokens, the token
// and userinfo endpoints, its keys. Nothing here imitates an OpenID provider.
package hydratest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// User is whom the next logins are: the ID token's sub, and its other claims (email, email_verified, groups, name,
// preferred_username, ...), which Hydra also returns from its userinfo endpoint.
type User struct {
	Subject string
	Claims  map[string]any
}

// Server is a running Hydra with this package as its login and consent app.
type Server struct {
	// Issuer is Hydra's issuer URL (its public endpoint), e.g. http://127.0.0.1:4444.
	Issuer string
	// AdminURL is Hydra's admin API.
	AdminURL string

	proc *testenv.Process
	app  *httptest.Server
	http *http.Client

	mu       sync.Mutex
	user     User
	deny     string // non-empty: logins are rejected with this description
	remember bool   // logins and consents are remembered in Hydra's session
	logins   int
}

// Bin returns Hydra's binary, built by `go tool task deps` (skips the test, or fails it in CI, when it is missing).
func Bin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(testenv.RepoRoot(t), ".cache", "bin", "hydra")
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, "ORY Hydra binary "+p, "run `go tool task deps` (it builds tools/hydra)")
	}
	return p
}

// Options change how Hydra runs.
type Options struct {
	// IDTokenTTL is the lifetime of the ID tokens Hydra issues (zero: Hydra's default, one hour).
	IDTokenTTL time.Duration
}

// Start runs Hydra on free loopback ports until the test ends.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Bin(t)
	s := &Server{http: &http.Client{Timeout: 10 * time.Second},
		user: User{Subject: "user-1", Claims: map[string]any{"email": "user-1@example.com", "email_verified": true}}}
	s.app = httptest.NewServer(http.HandlerFunc(s.serveApp))
	t.Cleanup(s.app.Close)
	public, admin := testenv.FreePort(t), testenv.FreePort(t)
	s.Issuer = fmt.Sprintf("http://127.0.0.1:%d", public)
	s.AdminURL = fmt.Sprintf("http://127.0.0.1:%d", admin)
	dir := t.TempDir()
	// Hydra refuses a system secret under 16 characters; a fresh one per run.
	config := fmt.Sprintf(`dsn: memory
serve:
  public: {host: 127.0.0.1, port: %d}
  admin: {host: 127.0.0.1, port: %d}
  cookies: {same_site_mode: Lax}
urls:
  self: {issuer: %q, public: %q}
  login: %q
  consent: %q
  error: %q
secrets:
  system: [%q]
oidc:
  subject_identifiers: {supported_types: [public]}
log: {level: warn, leak_sensitive_values: false}
`, public, admin, s.Issuer, s.Issuer, s.app.URL+"/login", s.app.URL+"/consent", s.app.URL+"/error", rand.Text()+rand.Text())
	if o.IDTokenTTL > 0 {
		config += fmt.Sprintf("ttl: {id_token: %s}\n", o.IDTokenTTL)
	}
	file := filepath.Join(dir, "hydra.yml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatalf("write Hydra's configuration: %v", err)
	}
	// --dev allows plain http on loopback (no TLS in tests); --sqa-opt-out sends no usage statistics.
	s.proc = testenv.Start(t, "hydra", exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out", "-c", file))
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.http.Get(s.AdminURL + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Hydra is not ready after 30 s: %v\n%s", err, s.proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// Client registers an OAuth client with Hydra (confidential, client_secret_basic, authorization code and refresh
// token, the scopes openid, profile, email, groups and offline_access) and returns its id and secret.
func (s *Server) Client(t testing.TB, redirectURIs ...string) (id, secret string) {
	t.Helper()
	id, secret = "client-"+rand.Text()[:10], rand.Text()
	var out map[string]any
	status := s.admin(t, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": id, "client_secret": secret, "client_name": "MCP OAuth Gateway (test)",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"scope": "openid profile email groups offline_access", "redirect_uris": redirectURIs,
		"token_endpoint_auth_method": "client_secret_basic",
	}, &out)
	if status != http.StatusCreated {
		t.Fatalf("create a Hydra client: HTTP %d: %v", status, out)
	}
	return id, secret
}

// ShareSigningKey makes s sign its ID tokens with from's key, as the tenants of a multi-tenant provider share the
// provider's keys: then only the issuer tells their tokens apart.
func (s *Server) ShareSigningKey(t testing.TB, from *Server) {
	t.Helper()
	const set = "/admin/keys/hydra.openid.id-token"
	var keys json.RawMessage
	if status := from.admin(t, http.MethodGet, set, nil, &keys); status != http.StatusOK {
		t.Fatalf("read Hydra's ID token key: HTTP %d", status)
	}
	if status := s.admin(t, http.MethodPut, set, keys, nil); status != http.StatusOK {
		t.Fatalf("set Hydra's ID token key: HTTP %d", status)
	}
}

// SetUser makes the next logins this user's.
func (s *Server) SetUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user = u
}

// SetDeny makes the next logins fail (the user cancelled at the provider): Hydra sends the client error=access_denied.
// An empty reason logs users in again.
func (s *Server) SetDeny(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = reason
}

// SetRemember makes Hydra remember the next logins and consents in its session cookie, so that the same browser is
// later logged in without the user, as prompt=none needs; false (the default) forgets them.
func (s *Server) SetRemember(remember bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remember = remember
}

// Logins counts the logins the app accepted.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Output is what Hydra logged.
func (s *Server) Output() string { return s.proc.Output() }

// serveApp is the login and consent app Hydra redirects the browser to.
func (s *Server) serveApp(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	user, deny, remember := s.user, s.deny, s.remember
	s.mu.Unlock()
	q := r.URL.Query()
	var next struct {
		RedirectTo string `json:"redirect_to"`
	}
	var status int
	var err error
	switch r.URL.Path {
	case "/login":
		challenge := url.QueryEscape(q.Get("login_challenge"))
		if deny != "" {
			status, err = s.call(http.MethodPut, "/admin/oauth2/auth/requests/login/reject?login_challenge="+challenge,
				map[string]any{"error": "access_denied", "error_description": deny}, &next)
			break
		}
		status, err = s.call(http.MethodPut, "/admin/oauth2/auth/requests/login/accept?login_challenge="+challenge,
			map[string]any{"subject": user.Subject, "remember": remember}, &next)
		if err == nil && status == http.StatusOK {
			s.mu.Lock()
			s.logins++
			s.mu.Unlock()
		}
	case "/consent":
		challenge := url.QueryEscape(q.Get("consent_challenge"))
		var req struct {
			RequestedScope    []string `json:"requested_scope"`
			RequestedAudience []string `json:"requested_access_token_audience"`
		}
		if status, err = s.call(http.MethodGet, "/admin/oauth2/auth/requests/consent?consent_challenge="+challenge, nil, &req); err != nil ||
			status != http.StatusOK {
			break
		}
		claims := map[string]any{}
		for k, v := range user.Claims {
			claims[k] = v
		}
		status, err = s.call(http.MethodPut, "/admin/oauth2/auth/requests/consent/accept?consent_challenge="+challenge,
			map[string]any{"grant_scope": req.RequestedScope, "grant_access_token_audience": req.RequestedAudience,
				"remember": remember, "session": map[string]any{"id_token": claims}}, &next)
	default:
		http.Error(w, "Hydra error: "+q.Get("error")+": "+q.Get("error_description"), http.StatusBadRequest)
		return
	}
	if err != nil || status != http.StatusOK || next.RedirectTo == "" {
		http.Error(w, fmt.Sprintf("Hydra's admin API answered %d: %v", status, err), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, next.RedirectTo, http.StatusFound)
}

func (s *Server) admin(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	status, err := s.call(method, path, body, out)
	if err != nil {
		t.Fatalf("Hydra admin %s %s: %v", method, path, err)
	}
	return status
}

func (s *Server) call(method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.AdminURL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("HTTP %d, not JSON: %s", resp.StatusCode, strconv.Quote(string(b)))
		}
	}
	return resp.StatusCode, nil
}

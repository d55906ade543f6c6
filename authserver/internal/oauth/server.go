// Package oauth is the authorization server's HTTP side: RFC 8414 metadata, JWKS, dynamic client registration
// (RFC 7591/7592), the authorization code flow with PKCE through an identity provider (GitHub, OpenID Connect; package
// login) and a consent page, the token endpoint with
// refresh-token rotation, revocation (RFC 7009), introspection (RFC 7662) and the revocation feed the plugin follows.
// Each rule sits beside the check that enforces it.
package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientassertion"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientlife"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/clientmeta"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/grant"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/login"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/ratelimit"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/observe"
)

// Config is everything the handlers need to know about the deployment.
type Config struct {
	Issuer           string   // public URL, exactly as in metadata and tokens
	Resources        []string // canonical URLs of the protected MCP endpoints
	ResourcePatterns []string // e.g. https://*.example.com/mcp: one label replaces the *
	DefaultResource  string   // used when a client sends no resource ("" : resource is required)
	Scopes           []string // scopes clients may ask for; the first is the default
	// ScopeDescriptions says what each scope lets an application do, for the consent page (a scope without one:
	// the built-in text of mcp and offline_access, else its name alone).
	ScopeDescriptions map[string]string

	CodeTTL        time.Duration
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
	Grants         grant.Policy      // a grant's maximum age and refresh rate (Window: the access-token lifetime)
	Clients        clientlife.Policy // when registered clients expire: never used, or idle
	AuthRequestTTL time.Duration     // time a user has to log in and consent
	ConsentTTL     time.Duration     // how long an approval is remembered (0: ask every time)

	// RefreshReuseWindow is how long after its rotation a refresh token presented again gets the same successor
	// instead of revoking its grant (0: never; every repeat is a replay).
	RefreshReuseWindow time.Duration

	RegisterPerMinute float64 // registrations per client IP
	RegisterBurst     int
	// AuthorizePerMinute bounds /authorize and /device_authorization requests per address (each endpoint on its own;
	// burst the same, at least 10; 0: unlimited). Each such request stores a pending request until it expires.
	AuthorizePerMinute float64
	// ClientFetchPerMinute bounds, per address (burst the same, at least 10; 0: unlimited), the client metadata
	// documents and key sets (jwks_uri) that requests to the endpoints clients authenticate at (/token, /revoke,
	// /introspect, /device_authorization) make this server fetch before the client is authenticated. Look-ups
	// answered from the fetcher's cache are not counted.
	ClientFetchPerMinute float64
	// MaxPendingPerClient caps one client's authorization requests and device grants in flight (0: no cap).
	MaxPendingPerClient int
	TrustedProxies      []netip.Prefix // X-Forwarded-For is read only from these peers
	FeedPollInterval    time.Duration
	// SeparateFeed: the revocation feed is served by FeedHandler on a listener of its own (an internal address), and
	// neither served by Handler nor advertised in the metadata.
	SeparateFeed bool

	DeviceCodeTTL           time.Duration // lifetime of a device code (RFC 8628)
	DevicePollInterval      time.Duration // least time between a device's polls
	DeviceAttemptsPerMinute float64       // user codes one IP address may try per minute

	Metrics *metrics.Metrics // nil: not counted
	Audit   *audit.Logger    // the audit trail; nil: nothing recorded

	// Exchange is the token exchange policy (RFC 8693, ParseExchangePolicy): for each audience, the clients that may
	// exchange a user's access token for one of that audience ("*": any authenticated client). Empty: off.
	Exchange map[string][]string

	// Connections keeps users' connected accounts at upstreams: with it the connect pages are served and the
	// account page lists them (nil: no upstreams; the account page lists authorized applications only).
	Connections *connections.Service

	ClientMetadata *clientmeta.Fetcher // resolves URL client ids (CIMD); nil: only registered clients
	// ClientKeys fetches the key sets (jwks_uri) of private_key_jwt clients, registered or not; nil: only clients
	// whose keys are inline (jwks) can use private_key_jwt. Usually the same fetcher as ClientMetadata.
	ClientKeys *clientmeta.Fetcher
	// AssertionMaxLifetime bounds how far ahead a client assertion's exp may be (0: clientassertion's default, 10 min).
	AssertionMaxLifetime time.Duration

	// Now is the clock of the token endpoint's refreshes (nil: time.Now); tests move it past the reuse window.
	Now func() time.Time
}

// now is the time by the configured clock.
func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Server holds the handlers' dependencies.
type Server struct {
	cfg        Config
	store      store.Store
	keys       *keys.Manager
	login      *login.Service // the identity providers users log in with
	log        *slog.Logger
	secure     bool // issuer is https: cookies are Secure
	assertions *clientassertion.Verifier

	// Per-address limits (ratelimit.AddressKey: IPv6 by /64), each bounded in memory.
	registerLimit   *ratelimit.Limiter // POST /register
	deviceLimit     *ratelimit.Limiter // user codes typed at /device
	authorizeLimit  *ratelimit.Limiter // GET /authorize
	deviceAuthLimit *ratelimit.Limiter // POST /device_authorization
	fetchLimit      *ratelimit.Limiter // client documents and key sets fetched before a client authenticates
}

// New checks the configuration and returns the server; users log in through logins' identity providers.
func New(cfg Config, st store.Store, km *keys.Manager, logins *login.Service, log *slog.Logger) (*Server, error) {
	if logins == nil {
		return nil, errors.New("no identity provider configured: users could not log in")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		strings.HasSuffix(cfg.Issuer, "/") {
		return nil, fmt.Errorf("issuer %q must be an http(s) URL without query, fragment or trailing slash", cfg.Issuer)
	}
	if len(cfg.Resources) == 0 && len(cfg.ResourcePatterns) == 0 {
		return nil, errors.New("no protected resources configured: give the MCP endpoints' URLs (--resources)")
	}
	for _, r := range cfg.Resources {
		if c, err := canonicalResource(r); err != nil || c != r {
			return nil, fmt.Errorf("resource %q is not a canonical URL (want %q): lowercase scheme and host, no trailing slash, no query or fragment", r, c)
		}
	}
	if cfg.DefaultResource != "" && !matchResource(cfg, cfg.DefaultResource) {
		return nil, fmt.Errorf("default resource %q is not one of the protected resources", cfg.DefaultResource)
	}
	if err := CheckScopes(cfg.Scopes); err != nil {
		return nil, err
	}
	if cfg.RefreshReuseWindow < 0 || (cfg.RefreshReuseWindow > 0 && cfg.RefreshReuseWindow >= cfg.AccessTTL) {
		return nil, fmt.Errorf("the refresh reuse window (--refresh-reuse-window %s) must be 0 or shorter than the "+
			"access-token lifetime (--access-token-lifetime %s): a repeat within it gets the same access token",
			cfg.RefreshReuseWindow, cfg.AccessTTL)
	}
	if cfg.Grants.Window <= 0 {
		cfg.Grants.Window = cfg.AccessTTL
	}
	return &Server{cfg: cfg, store: st, keys: km, login: logins, log: log, secure: u.Scheme == "https",
		assertions:      &clientassertion.Verifier{JTIs: st, MaxLifetime: cfg.AssertionMaxLifetime},
		registerLimit:   ratelimit.New(cfg.RegisterPerMinute, cfg.RegisterBurst),
		deviceLimit:     ratelimit.New(cfg.DeviceAttemptsPerMinute, 10),
		authorizeLimit:  ratelimit.New(cfg.AuthorizePerMinute, max(10, int(cfg.AuthorizePerMinute))),
		deviceAuthLimit: ratelimit.New(cfg.AuthorizePerMinute, max(10, int(cfg.AuthorizePerMinute))),
		fetchLimit:      ratelimit.New(cfg.ClientFetchPerMinute, max(10, int(cfg.ClientFetchPerMinute)))}, nil
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.cors(s.metadata))
	mux.HandleFunc("GET /.well-known/openid-configuration", s.cors(s.metadata))
	// Some clients (ChatGPT has been reported doing it) derive the metadata address from the MCP URL, inserting its
	// path (RFC 8414 §3.1 style): the same document answers there, issuer and all.
	mux.HandleFunc("GET /.well-known/oauth-authorization-server/{path...}", s.cors(s.metadata))
	mux.HandleFunc("GET /.well-known/openid-configuration/{path...}", s.cors(s.metadata))
	mux.HandleFunc("GET /.well-known/jwks.json", s.cors(s.jwks))
	mux.HandleFunc("POST /register", s.cors(s.register))
	mux.HandleFunc("GET /register/{id}", s.cors(s.readClient))
	mux.HandleFunc("PUT /register/{id}", s.cors(s.updateClient))
	mux.HandleFunc("DELETE /register/{id}", s.cors(s.deleteClient))
	mux.HandleFunc("GET /authorize", s.authorize)
	mux.HandleFunc("GET /login", s.chooseLogin)
	for _, p := range s.login.Providers() {
		mux.HandleFunc("GET "+p.CallbackPath(), s.loginCallback(p.Name()))
	}
	mux.HandleFunc("POST /consent", s.consent)
	mux.HandleFunc("POST /token", s.cors(s.token))
	mux.HandleFunc("POST /device_authorization", s.cors(s.deviceAuthorization))
	mux.HandleFunc("GET /device", s.devicePage)
	mux.HandleFunc("POST /device", s.deviceSubmit)
	mux.HandleFunc("POST /revoke", s.cors(s.revoke))
	mux.HandleFunc("POST /introspect", s.cors(s.introspect))
	if !s.cfg.SeparateFeed {
		mux.HandleFunc("GET /revocations", s.cors(s.feed))
	}
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /account", s.accountPage)
	mux.HandleFunc("POST /account", s.accountAction)
	if s.cfg.Connections != nil {
		mux.HandleFunc("GET /connect/{upstream}", s.connectStart)
		mux.HandleFunc("GET /connect/{upstream}/callback", s.connectCallback)
	}
	mux.HandleFunc("OPTIONS /", s.cors(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	// Anything else is not here: 404, not the 405 (Allow: OPTIONS) that the preflight route alone would give. In the
	// one-origin layout this is what a client gets at the root /.well-known/oauth-protected-resource, which belongs
	// to no one MCP server there (each has its path-suffixed document).
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { notHere(mux, w, r) })
	return mux
}

// notHere answers a request no route took: 405 with Allow when the path exists for other methods, else 404.
func notHere(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := mux.Handler(probe); pattern != "/" && !strings.HasPrefix(pattern, "OPTIONS ") {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(append(allow, http.MethodOptions), ", "))
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "this endpoint takes "+strings.Join(allow, " or "))
		return
	}
	oauthError(w, http.StatusNotFound, "not_found", "no such endpoint on this authorization server")
}

// grantTypes are the grants /token takes, for the metadata.
func (s *Server) grantTypes() []string {
	g := []string{"authorization_code", "refresh_token", DeviceGrantType}
	if len(s.cfg.Exchange) > 0 {
		g = append(g, TokenExchangeGrantType)
	}
	return g
}

// CallbackURL is the GitHub OAuth app's callback for this issuer.
func CallbackURL(issuer string) string { return issuer + "/github/callback" }

// cors lets browser clients (MCP Inspector) call the JSON endpoints. They carry no ambient credentials (no cookies),
// so any origin may call them.
func (s *Server) cors(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
			h.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
			h.Set("Access-Control-Max-Age", "86400")
		}
		next(w, r)
	}
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	i := s.cfg.Issuer
	auth := []string{"none", "client_secret_basic", "client_secret_post", clientmeta.AuthPrivateKeyJWT}
	md := map[string]any{
		"issuer":                                                   i,
		"authorization_endpoint":                                   i + "/authorize",
		"token_endpoint":                                           i + "/token",
		"registration_endpoint":                                    i + "/register",
		"revocation_endpoint":                                      i + "/revoke",
		"introspection_endpoint":                                   i + "/introspect",
		"jwks_uri":                                                 i + "/.well-known/jwks.json",
		"revocation_feed_endpoint":                                 i + "/revocations",
		"device_authorization_endpoint":                            i + "/device_authorization",
		"response_types_supported":                                 []string{"code"},
		"response_modes_supported":                                 []string{"query"},
		"grant_types_supported":                                    s.grantTypes(),
		"code_challenge_methods_supported":                         []string{"S256"},
		"token_endpoint_auth_methods_supported":                    auth,
		"token_endpoint_auth_signing_alg_values_supported":         jwk.Algorithms,
		"revocation_endpoint_auth_methods_supported":               auth,
		"revocation_endpoint_auth_signing_alg_values_supported":    jwk.Algorithms,
		"introspection_endpoint_auth_methods_supported":            auth,
		"introspection_endpoint_auth_signing_alg_values_supported": jwk.Algorithms,
		"scopes_supported":                                         s.scopesSupported(),
		"authorization_response_iss_parameter_supported":           true,
		"client_id_metadata_document_supported":                    s.cfg.ClientMetadata != nil,
	}
	if s.cfg.SeparateFeed {
		delete(md, "revocation_feed_endpoint") // on an internal address, which the public need not know
	}
	writeJSON(w, http.StatusOK, md)
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	set, err := s.keys.JWKS(r.Context())
	if err != nil {
		s.storeFailed(w, r, "read signing keys", err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, map[string]any{"keys": set})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.log.WarnContext(r.Context(), "health: store unreachable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "store": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// oauthError is an RFC 6749 error response.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	observe.Outcome(w, code)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

// oauthErr is an OAuth error answer (RFC 6749 §5.2) that a handler returns instead of writing: the status, the error
// code, its description, Retry-After (seconds; empty: none) and WWW-Authenticate (empty: none).
type oauthErr struct {
	status     int
	code, desc string
	retryAfter string
	challenge  string
}

func (e *oauthErr) Error() string { return e.code + ": " + e.desc }

// badRequest is a 400 OAuth error.
func badRequest(code, desc string) error {
	return &oauthErr{status: http.StatusBadRequest, code: code, desc: desc}
}

// storeErr is a failure of the store (or of the signing keys it holds) during what.
type storeErr struct {
	what string
	err  error
}

func (e *storeErr) Error() string { return e.what + ": " + e.err.Error() }
func (e *storeErr) Unwrap() error { return e.err }

func storeFailure(what string, err error) error { return &storeErr{what: what, err: err} }

// answerError writes an error a handler returned: an OAuth error as it is, anything else as a failure of the store.
func (s *Server) answerError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthErr
	if errors.As(err, &oe) {
		if oe.retryAfter != "" {
			w.Header().Set("Retry-After", oe.retryAfter)
		}
		if oe.challenge != "" {
			w.Header().Set("WWW-Authenticate", oe.challenge)
		}
		oauthError(w, oe.status, oe.code, oe.desc)
		return
	}
	var se *storeErr
	if errors.As(err, &se) {
		s.storeFailed(w, r, se.what, se.err)
		return
	}
	s.storeFailed(w, r, "unknown", err)
}

// storeFailed answers a failure of the store: 503, so clients retry instead of starting over.
func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), "store failure", "op", what, "err", err)
	s.cfg.Metrics.StoreError()
	w.Header().Set("Retry-After", "5")
	oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the authorization server's storage is unavailable; try again shortly")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// randomToken returns n random bytes, base64url encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: since Go 1.24 it crashes the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// clientIP is the caller's address: the peer, or, when the peer is a trusted proxy, the rightmost X-Forwarded-For
// address that is not one of the trusted proxies.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		peer = a
		if !s.trusted(a) {
			break
		}
	}
	return peer.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// allowRegistration applies the per-address registration rate limit.
func (s *Server) allowRegistration(ip string) bool {
	return s.registerLimit.Allow(ratelimit.AddressKey(ip))
}

// allowFrom takes one event from l for the request's caller address.
func (s *Server) allowFrom(l *ratelimit.Limiter, r *http.Request) bool {
	return l.Allow(ratelimit.AddressKey(s.clientIP(r)))
}

// canonicalResource normalises an MCP server URL the way RFC 8707 and the MCP spec describe: lowercase scheme and
// host, no fragment, no trailing slash.
func canonicalResource(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("resource %q is not an absolute URL", raw)
	}
	// An empty query or fragment ("?", "#") counts too: the URL would otherwise have two spellings.
	if u.Fragment != "" || u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#") {
		return "", fmt.Errorf("resource %q must not have a query or fragment", raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	if u.Scheme != "https" && u.Scheme != "http" {
		return "", fmt.Errorf("resource %q must be an http(s) URL", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// matchResource reports whether a canonical resource is protected by this server.
func matchResource(cfg Config, res string) bool {
	for _, r := range cfg.Resources {
		if r == res {
			return true
		}
	}
	for _, p := range cfg.ResourcePatterns {
		// path.Match's * never crosses "/", so it stands for host labels only, never for a path.
		if ok, _ := path.Match(p, res); ok {
			return true
		}
	}
	return false
}

// resolveResource picks the resource of a request: the one named (canonicalised), or the default.
func (s *Server) resolveResource(named []string) (string, string) {
	if len(named) > 1 {
		return "", "one resource per request: this server issues tokens for a single MCP server at a time"
	}
	if len(named) == 0 || named[0] == "" {
		if s.cfg.DefaultResource == "" {
			return "", "the resource parameter (RFC 8707) is required: name the MCP server's URL"
		}
		return s.cfg.DefaultResource, ""
	}
	res, err := canonicalResource(named[0])
	if err != nil {
		return "", err.Error()
	}
	if !matchResource(s.cfg, res) {
		return "", fmt.Sprintf("%s is not an MCP server protected by this authorization server", res)
	}
	return res, ""
}

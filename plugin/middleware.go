package plugin

// The HTTP side: the cached path, the way a first-seen token takes to its verdict (verify.go), the refusals and
// their challenges, and the protected-resource metadata.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

// Middleware protects one MCP endpoint: it answers metadata requests, challenges requests without a valid token and
// passes the others on with the caller's identity in headers.
type Middleware struct {
	next      http.Handler
	name      string
	s         *settings
	st        *issuerState
	cache     *tokenCache
	keepAuth  bool
	challenge string          // WWW-Authenticate for a request without a token
	scopeStr  string          // the required scopes as a token's scope claim would list them
	hdrNames  []string        // identity headers to strip from preflights
	prm       []byte          // the protected-resource metadata document
	prmPaths  map[string]bool // metadata paths served here, never forwarded even with a valid token
	// The header writes of an allowed token: opsTemplate has the names (and Authorization, removed, unless
	// keepAuthorization); allowed fills in the claims, opsClaim[i] being the index of the claim of opsTemplate[i]
	// among sub, username, email, client_id, scope, groups (comma separated) and the metadata URL.
	opsTemplate []headerOp
	opsClaim    []int
}

// New builds the middleware for one router. It never waits for the network: keys load in the background and
// requests get 503 until they are there.
func New(ctx context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	if next == nil {
		return nil, errors.New("mcp-oauth: no next handler")
	}
	s, err := parseConfig(config)
	if err != nil {
		return nil, err
	}
	st := registry.issuerFor(s)
	m := &Middleware{next: next, name: name, s: s, st: st, cache: st.cacheFor(s)}
	if err := m.prepare(); err != nil {
		return nil, err
	}
	return m, nil
}

// prepare computes from m.s what the request path needs.
func (m *Middleware) prepare() error {
	s := m.s
	m.keepAuth = s.keepAuth
	m.scopeStr = strings.Join(s.scopes, " ")
	m.challenge = "Bearer resource_metadata=\"" + s.metadataURL + "\""
	if len(s.scopes) > 0 {
		m.challenge += ", scope=\"" + strings.Join(s.scopes, " ") + "\""
	}
	for i, h := range s.headers {
		if h != "" {
			m.hdrNames = append(m.hdrNames, h)
			m.opsTemplate = append(m.opsTemplate, headerOp{name: h})
			m.opsClaim = append(m.opsClaim, i)
		}
	}
	if !m.keepAuth {
		// The backend must not get a token it could replay elsewhere (MCP: no token passthrough).
		m.opsTemplate = append(m.opsTemplate, headerOp{name: "Authorization"})
	}
	m.prmPaths = map[string]bool{wellKnownPRM: true, wellKnownPRM + "/": true}
	if s.prmPath != "" {
		m.prmPaths[s.prmPath] = true
	}
	resourceName := s.resourceName
	if resourceName == "" {
		resourceName = s.resource
	}
	// RFC 9728 §2; authorization_servers must be string-identical to the AS metadata's issuer.
	var err error
	m.prm, err = json.Marshal(map[string]interface{}{
		"resource":                 s.resource,
		"authorization_servers":    []string{s.issuer},
		"scopes_supported":         s.scopesSupported,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            resourceName,
	})
	return err
}

// ServeHTTP is the request path. Under Traefik each expression here runs interpreted and Yaegi allocates a slot
// for every one of them on every call, taken branch or not; so a token seen before costs one sync.Map lookup and
// the precomputed header writes, and everything else lives in serveSlow.
//
// The functions a request goes through are plain functions, not methods: under Yaegi a call to an interpreted
// method costs about four times a function call (docs/plugin.md, Performance).
func (m *Middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	if a := h["Authorization"]; len(a) == 1 {
		if v, ok := m.cache.hot.Load(a[0]); ok && !m.prmPaths[r.URL.Path] {
			for _, op := range v.([]headerOp) {
				h[op.name] = op.vals
			}
			m.next.ServeHTTP(w, r)
			return
		}
	}
	serveSlow(m, w, r)
}

// serveSlow serves a request whose token is not in the hot cache. The verdict on a single Authorization value is
// admit's (verify.go); everything else, and every refusal, is serveOther's, reject's or deny's.
func serveSlow(m *Middleware, w http.ResponseWriter, r *http.Request) {
	auth := r.Header["Authorization"]
	if len(auth) != 1 || m.prmPaths[r.URL.Path] {
		m.serveOther(w, r)
		return
	}
	e, err := admit(m, auth[0])
	if err != nil || e.denied {
		m.refuse(w, r, e, err)
		return
	}
	h := r.Header
	for _, op := range e.ops {
		h[op.name] = op.vals
	}
	m.next.ServeHTTP(w, r)
}

// refuse answers a single Authorization value that serveSlow does not let through: not a Bearer token (serveOther), a token
// refused (err), or a valid token without the route's scopes (403).
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, e *cacheEntry, err error) {
	switch {
	case err == errNotBearer:
		m.serveOther(w, r)
	case err != nil:
		m.reject(w, r, err)
	default:
		m.deny(w, r, http.StatusForbidden, e.challenge, "insufficient_scope", e.desc)
	}
}

// serveOther handles what is neither a cache hit nor a single Bearer token: metadata, preflights, requests without
// or with malformed credentials.
func (m *Middleware) serveOther(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, wellKnownPRM) {
		m.serveMetadata(w, r)
		return
	}
	h := r.Header
	// A CORS preflight carries no credentials by design (Fetch standard), so it is never challenged.
	if r.Method == http.MethodOptions && h.Get("Access-Control-Request-Method") != "" {
		for _, name := range m.hdrNames {
			h.Del(name)
		}
		if !m.keepAuth {
			h.Del("Authorization")
		}
		m.next.ServeHTTP(w, r)
		return
	}
	auth := h.Values("Authorization")
	if len(auth) == 0 {
		m.deny(w, r, http.StatusUnauthorized, m.challenge, "", "this MCP server needs an OAuth access token: authorize with the server named in resource_metadata")
		return
	}
	if len(auth) > 1 {
		m.deny(w, r, http.StatusBadRequest, m.errorChallenge("invalid_request", "send one Authorization header"), "invalid_request", "send one Authorization header")
		return
	}
	scheme, tok, _ := strings.Cut(auth[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// RFC 6750 §3.1: a request with no usable credentials gets the bare challenge.
		m.deny(w, r, http.StatusUnauthorized, m.challenge, "", "this MCP server accepts Bearer tokens only (RFC 6750)")
		return
	}
	if strings.TrimLeft(tok, " ") == "" {
		m.deny(w, r, http.StatusBadRequest, m.errorChallenge("invalid_request", "the Bearer token is empty"), "invalid_request", "the Bearer token is empty")
		return
	}
	// "Bearer" followed by a tab or such: not a form this server reads.
	m.deny(w, r, http.StatusBadRequest, m.errorChallenge("invalid_request", "malformed Authorization header"), "invalid_request", "malformed Authorization header")
}

// reject answers a token that failed verification: 503 while keys are missing, else 401 invalid_token.
func (m *Middleware) reject(w http.ResponseWriter, r *http.Request, err error) {
	if err == errKeysNotReady {
		m.unavailable(w, r, "the signing keys of "+m.s.issuer+" are not loaded yet; retry shortly")
		return
	}
	if err == errFeedStale {
		lag := m.st.feedLag()
		m.unavailable(w, r, "the revocation feed of "+m.s.issuer+" has not been read for "+lag.Round(time.Second).String()+
			", longer than this gateway accepts tokens without it; retry shortly")
		return
	}
	m.deny(w, r, http.StatusUnauthorized, m.errorChallenge("invalid_token", err.Error()), "invalid_token", err.Error())
}

// errorChallenge is the WWW-Authenticate value for an error (RFC 6750 §3), with the metadata URL and scope so a
// client can start over from it.
func (m *Middleware) errorChallenge(code, desc string) string {
	return "Bearer error=\"" + code + "\", error_description=\"" + descSafe(desc) + "\", resource_metadata=\"" +
		m.s.metadataURL + "\"" + scopeParam(m.s.scopes)
}

func scopeParam(scopes []string) string {
	if len(scopes) == 0 {
		return ""
	}
	return ", scope=\"" + strings.Join(scopes, " ") + "\""
}

// descSafe keeps a description inside its quoted-string: " and \ are not allowed in error_description.
func descSafe(v string) string {
	return strings.NewReplacer("\"", "'", "\\", "/").Replace(v)
}

// deny writes an error answer with its challenge. Browsers may read WWW-Authenticate (MCP clients run in them too).
func (m *Middleware) deny(w http.ResponseWriter, r *http.Request, status int, challenge, code, desc string) {
	wh := w.Header()
	wh.Set(requestIDHeader, requestID(r))
	wh.Set("WWW-Authenticate", challenge)
	wh.Set("Access-Control-Allow-Origin", "*")
	wh.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
	wh.Set("Cache-Control", "no-store")
	wh.Set("Content-Type", "application/json")
	if code == "" {
		code = "unauthorized"
	}
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": desc})
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (m *Middleware) unavailable(w http.ResponseWriter, r *http.Request, desc string) {
	wh := w.Header()
	wh.Set(requestIDHeader, requestID(r))
	wh.Set("Retry-After", "2")
	wh.Set("Access-Control-Allow-Origin", "*")
	wh.Set("Cache-Control", "no-store")
	wh.Set("Content-Type", "application/json")
	body, _ := json.Marshal(map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": desc,
	})
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(body)
}

// serveMetadata answers RFC 9728 metadata requests, without authentication and open to browsers: the TS SDK sends
// MCP-Protocol-Version on discovery requests, which makes browsers send a preflight first.
func (m *Middleware) serveMetadata(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	wh := w.Header()
	wh.Set("Access-Control-Allow-Origin", "*")
	if p != wellKnownPRM && p != wellKnownPRM+"/" && (m.s.prmPath == "" || p != m.s.prmPath) {
		wh.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":"not_found","error_description":"no protected-resource metadata at this path; see ` + m.s.metadataURL + `"}`))
		return
	}
	switch r.Method {
	case http.MethodOptions:
		wh.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		wh.Set("Access-Control-Allow-Headers", "MCP-Protocol-Version, Authorization, Content-Type")
		wh.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet, http.MethodHead:
		wh.Set("Content-Type", "application/json")
		wh.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(m.prm)
		}
	default:
		wh.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

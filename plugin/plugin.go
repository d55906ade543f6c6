package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"math"
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
	challenge string   // WWW-Authenticate for a request without a token
	hdrNames  []string // identity headers to strip from preflights
	prm       []byte   // the protected-resource metadata document
	prmPaths  map[string]bool // metadata paths served here, never forwarded even with a valid token
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
	m := &Middleware{
		next:     next,
		name:     name,
		s:        s,
		st:       st,
		cache:    st.cacheFor(s),
		keepAuth: s.keepAuth,
	}
	m.challenge = "Bearer resource_metadata=\"" + s.metadataURL + "\""
	if len(s.scopes) > 0 {
		m.challenge += ", scope=\"" + strings.Join(s.scopes, " ") + "\""
	}
	for _, h := range s.headers {
		if h != "" {
			m.hdrNames = append(m.hdrNames, h)
		}
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
	m.prm, err = json.Marshal(map[string]interface{}{
		"resource":                 s.resource,
		"authorization_servers":    []string{s.issuer},
		"scopes_supported":         s.scopesSupported,
		"bearer_methods_supported": []string{"header"},
		"resource_name":            resourceName,
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ServeHTTP is the request path. Under Traefik each expression here runs interpreted and Yaegi allocates a slot
// for every one of them on every call, taken branch or not; so a token seen before costs one sync.Map lookup and
// the precomputed header writes, and everything else lives in serveSlow.
func (m *Middleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := r.Header
	if a := h["Authorization"]; len(a) == 1 {
		if v, ok := m.cache.hot.Load(a[0]); ok && !m.prmPaths[r.URL.Path] {
			for _, op := range v.(*cacheEntry).ops {
				h[op.name] = op.vals
			}
			m.next.ServeHTTP(w, r)
			return
		}
	}
	m.serveSlow(w, r)
}

func (m *Middleware) serveSlow(w http.ResponseWriter, r *http.Request) {
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
		m.deny(w, http.StatusUnauthorized, m.challenge, "", "this MCP server needs an OAuth access token: authorize with the server named in resource_metadata")
		return
	}
	if len(auth) > 1 {
		m.deny(w, http.StatusBadRequest, m.errorChallenge("invalid_request", "send one Authorization header"), "invalid_request", "send one Authorization header")
		return
	}
	scheme, tok, _ := strings.Cut(auth[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// RFC 6750 §3.1: a request with no usable credentials gets the bare challenge.
		m.deny(w, http.StatusUnauthorized, m.challenge, "", "this MCP server accepts Bearer tokens only (RFC 6750)")
		return
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		m.deny(w, http.StatusBadRequest, m.errorChallenge("invalid_request", "the Bearer token is empty"), "invalid_request", "the Bearer token is empty")
		return
	}
	if !m.st.ready() {
		m.unavailable(w)
		return
	}
	now := time.Now()
	if e := m.cache.get(auth[0], now.Unix()); e != nil {
		m.pass(w, r, e)
		return
	}
	e, err := m.verify(tok, now)
	if err == errKeysNotReady {
		m.unavailable(w)
		return
	}
	if err != nil {
		m.deny(w, http.StatusUnauthorized, m.errorChallenge("invalid_token", err.Error()), "invalid_token", err.Error())
		return
	}
	m.cache.put(auth[0], e, now.Unix())
	// A revocation or key removal that landed while this token was being checked may have purged the cache before
	// the put: look again so the entry cannot outlive it.
	if m.st.isRevoked(e.jti) || !m.st.hasKey(e.kid) {
		m.cache.remove(auth[0])
		const desc = "token has been revoked or its signing key was retired"
		m.deny(w, http.StatusUnauthorized, m.errorChallenge("invalid_token", desc), "invalid_token", desc)
		return
	}
	m.pass(w, r, e)
}

// pass applies a verdict: 403 for a token without the needed scopes, else the identity headers and the next handler.
func (m *Middleware) pass(w http.ResponseWriter, r *http.Request, e *cacheEntry) {
	if e.denied {
		m.deny(w, http.StatusForbidden, e.challenge, "insufficient_scope", e.desc)
		return
	}
	h := r.Header
	for _, op := range e.ops {
		h[op.name] = op.vals
	}
	m.next.ServeHTTP(w, r)
}

// verify checks a token fully and returns the verdict to cache; errors are token errors (401) except
// errKeysNotReady.
func (m *Middleware) verify(tok string, now time.Time) (*cacheEntry, error) {
	s := m.s
	pt, err := parseToken(tok, s.maxTokenBytes, s.algorithms)
	if err != nil {
		return nil, err
	}
	key, err := m.st.keyFor(pt.kid)
	if err != nil {
		return nil, err
	}
	if err := key.verify(pt.alg, pt.signingInput, pt.sig); err != nil {
		return nil, err
	}
	c := &pt.claims
	if err := checkClaims(c, s, now); err != nil {
		return nil, err
	}
	if m.st.isRevoked(c.Jti) {
		return nil, errors.New("token has been revoked")
	}
	e := &cacheEntry{deadline: int64(math.Floor(*c.Exp + s.skew.Seconds())), jti: c.Jti, kid: pt.kid}
	held := strings.Fields(c.Scope)
	var missing []string
	for _, need := range s.scopes {
		found := false
		for _, have := range held {
			if have == need {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, need)
		}
	}
	if len(missing) > 0 {
		// MCP 2025-11-25 step-up: list the scopes already held plus the missing ones, since v1 SDK clients replace
		// their scope with the challenge's instead of adding to it.
		want := strings.Join(append(append([]string{}, held...), missing...), " ")
		e.denied = true
		e.desc = "token lacks scope " + strings.Join(missing, " ")
		e.challenge = "Bearer error=\"insufficient_scope\", scope=\"" + descSafe(want) + "\", resource_metadata=\"" +
			s.metadataURL + "\", error_description=\"" + e.desc + "\""
		return e, nil
	}
	values := []string{c.Sub, c.Username, c.Email, c.ClientID, c.Scope}
	for i, name := range s.headers {
		if name == "" {
			continue
		}
		op := headerOp{name: name}
		if values[i] != "" {
			op.vals = []string{values[i]}
		}
		e.ops = append(e.ops, op)
	}
	if !s.keepAuth {
		// The backend must not get a token it could replay elsewhere (MCP: no token passthrough).
		e.ops = append(e.ops, headerOp{name: "Authorization"})
	}
	return e, nil
}

func (st *issuerState) hasKey(kid string) bool {
	st.mu.RLock()
	_, ok := st.keys[kid]
	st.mu.RUnlock()
	return ok
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
func (m *Middleware) deny(w http.ResponseWriter, status int, challenge, code, desc string) {
	wh := w.Header()
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

func (m *Middleware) unavailable(w http.ResponseWriter) {
	wh := w.Header()
	wh.Set("Retry-After", "2")
	wh.Set("Access-Control-Allow-Origin", "*")
	wh.Set("Cache-Control", "no-store")
	wh.Set("Content-Type", "application/json")
	body, _ := json.Marshal(map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": "the signing keys of " + m.s.issuer + " are not loaded yet; retry shortly",
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

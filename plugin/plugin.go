package plugin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
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
	scopeWord string          // " <scope> " when the route needs one scope (see prepare)
	hdrNames  []string        // identity headers to strip from preflights
	prm       []byte          // the protected-resource metadata document
	prmPaths  map[string]bool // metadata paths served here, never forwarded even with a valid token
	// The header writes of an allowed token: opsTemplate has the names (and Authorization, removed, unless
	// keepAuthorization); allowed fills in the claims, opsClaim[i] being the index of the claim of opsTemplate[i]
	// among sub, username, email, client_id, scope.
	opsTemplate []headerOp
	opsClaim    []int
	maxKeyBytes int // the longest Authorization value fastVerify takes (maxTokenBytes after "Bearer ")
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
	// One required scope is found in any scope claim by a substring search; with several, only a claim of exactly
	// them takes fastVerify ("\n" is in no claim it takes).
	m.scopeWord = "\n"
	if len(s.scopes) == 1 {
		m.scopeWord = " " + s.scopes[0] + " "
	}
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
	m.maxKeyBytes = s.maxTokenBytes + len("Bearer ")
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

// serveSlow serves a request whose token is not in the hot cache: a first-seen token through fastVerify, and
// anything else through serveUncommon.
func serveSlow(m *Middleware, w http.ResponseWriter, r *http.Request) {
	auth := r.Header["Authorization"]
	if len(auth) != 1 || m.prmPaths[r.URL.Path] {
		m.serveOther(w, r)
		return
	}
	e, err := fastVerify(m, auth[0])
	if e == nil {
		m.serveUncommon(w, r, auth[0], err)
		return
	}
	h := r.Header
	for _, op := range e.ops {
		h[op.name] = op.vals
	}
	m.next.ServeHTTP(w, r)
}

// serveUncommon answers a single Authorization value that fastVerify did not take (err: its final refusal).
func (m *Middleware) serveUncommon(w http.ResponseWriter, r *http.Request, key string, err error) {
	var e *cacheEntry
	if err == nil {
		e, err = m.admit(key)
	}
	switch {
	case err == errNotBearer:
		m.serveOther(w, r)
	case err != nil:
		m.reject(w, r, err)
	default:
		m.pass(w, r, e)
	}
}

// errNotBearer: the Authorization value is not a Bearer token; serveOther answers it.
var errNotBearer = errors.New("not a Bearer token")

// admit returns the verdict on the Authorization value key: the cached 403, or a fresh verdict, which it caches.
func (m *Middleware) admit(key string) (*cacheEntry, error) {
	now := time.Now()
	if e := m.cache.deniedEntry(key, now.Unix()); e != nil {
		return e, nil
	}
	if len(key) < 8 || !strings.EqualFold(key[:7], "Bearer ") {
		return nil, errNotBearer
	}
	e, err := m.verify(strings.TrimLeft(key[7:], " "), now)
	if err != nil {
		return nil, err
	}
	put(m.cache, key, e)
	// A revocation or key removal that landed while this token was being checked may have purged the cache
	// before the put: look again so the entry cannot outlive it.
	if err := m.st.recheck(e.jti, e.kid); err != nil {
		m.cache.remove(e)
		return nil, err
	}
	return e, nil
}

// unixEpoch makes time.Since a clock read in one native call.
var unixEpoch = time.Unix(0, 0)

var errRevokedOrRetired = errors.New("token has been revoked or its signing key was retired")

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
		lag, _ := m.st.feedLag()
		m.unavailable(w, r, "the revocation feed of "+m.s.issuer+" has not been read for "+lag.Round(time.Second).String()+
			", longer than this gateway accepts tokens without it; retry shortly")
		return
	}
	m.deny(w, r, http.StatusUnauthorized, m.errorChallenge("invalid_token", err.Error()), "invalid_token", err.Error())
}

// pass applies a verdict: 403 for a token without the needed scopes, else the identity headers and the next handler.
func (m *Middleware) pass(w http.ResponseWriter, r *http.Request, e *cacheEntry) {
	if e.denied {
		m.deny(w, r, http.StatusForbidden, e.challenge, "insufficient_scope", e.desc)
		return
	}
	h := r.Header
	for _, op := range e.ops {
		h[op.name] = op.vals
	}
	m.next.ServeHTTP(w, r)
}

// verify checks a token fully and returns the verdict to cache. Its errors are token errors (401), or
// errKeysNotReady (503). It remembers the header of a valid token, so that fastVerify can take later ones.
func (m *Middleware) verify(tok string, now time.Time) (*cacheEntry, error) {
	pt, err := parseToken(tok, m.s.maxTokenBytes, m.s.algorithms)
	if err != nil {
		return nil, err
	}
	key, err := m.st.keyFor(pt.kid)
	if err != nil {
		return nil, err
	}
	if err = key.verify(pt.alg, pt.signingInput, pt.sig); err != nil {
		return nil, err
	}
	if err = checkClaims(&pt.claims, m.s, now); err != nil {
		return nil, err
	}
	if m.st.isRevoked(pt.claims.Jti) {
		return nil, errRevoked
	}
	m.cache.learnHeader(pt.headerSeg, pt.alg, pt.kid, key, pt.sigLen)
	return verdict(m, &pt.claims, pt.kid), nil
}

// fastVerify is verify and the caching of its verdict for the common case, in as few interpreted steps as Yaegi
// allows (docs/plugin.md, Performance): a token after exactly "Bearer ", whose header segment a valid token already
// had (so its checks are done and its key known), with claims without escapes, one audience and the route's scopes
// (a 403 is verify's). Any other token, or one refused for a reason verify words more precisely, gets neither
// verdict nor error: admit then judges it from the start. A bad signature is final, so that a forged token costs
// one signature check, not two.
func fastVerify(m *Middleware, key string) (*cacheEntry, error) {
	// At most four parts, so that a long value full of dots costs no more than a token before its length is checked.
	p := strings.SplitN(key, ".", 4)
	if len(p) != 3 || len(key) > m.maxKeyBytes {
		return nil, nil
	}
	kh, known := m.cache.headers.Load(p[0])
	cb, err := strictB64.DecodeString(p[1])
	sig, err2 := strictB64.DecodeString(p[2])
	// JSON strings hold control characters only as escapes: without a backslash (or DEL) every claim is fit for a
	// header value.
	if !known || err != nil || err2 != nil || bytes.ContainsAny(cb, "\\\x7f") {
		return nil, nil
	}
	h, c, s := kh.(*knownHeader), blankClaims, m.s
	now := float64(time.Since(unixEpoch)) / 1e9
	lo, hi := now-s.skewSec, now+s.skewSec
	// A missing exp or iat is NaN, which fails every comparison. The signature segment must have the length of a
	// valid one: the decoder skips line breaks.
	if json.Unmarshal(cb, &c) != nil || !(lo < c.Exp && c.Iat <= hi && c.Nbf <= hi) || c.Iss != s.issuer ||
		c.Aud != s.resource || c.Sub == "" || c.ClientID == "" || c.Jti == "" || len(p[2]) != h.sigLen ||
		(c.Scope != m.scopeStr && !strings.Contains(" "+c.Scope+" ", m.scopeWord)) {
		return nil, nil
	}
	input := key[7 : len(p[0])+1+len(p[1])]
	if h.es256 != nil {
		// verifyKey.verify's common case, inline.
		d := sha256.Sum256([]byte(input))
		if len(sig) != 64 || !ecdsa.Verify(h.es256, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			err = errSignature
		}
	} else {
		err = h.key.verify(h.alg, input, sig)
	}
	if err != nil {
		if strings.ContainsAny(key, "\r\n") {
			return nil, nil // verify names the line break
		}
		return nil, err
	}
	e, st := allowed(m, &c, h.kid), m.st
	// Under the issuer's read lock: a revocation, key change or stale feed either came first and is seen here, or
	// waits for the entry to be in the cache and then purges it.
	st.mu.RLock()
	_, revoked := st.revoked[c.Jti]
	current := st.keys[h.kid] == h.key && !st.feedStale
	if current && !revoked {
		put(m.cache, key, e)
	}
	st.mu.RUnlock()
	if revoked {
		return nil, errRevoked
	}
	if !current {
		return nil, nil
	}
	return e, nil
}

// verdict is the cache entry of a valid token: the headers to set, or a 403 when scopes are missing.
func verdict(m *Middleware, c *tokenClaims, kid string) *cacheEntry {
	if c.Scope != m.scopeStr && !hasScopes(c.Scope, m.s.scopes) {
		e := &cacheEntry{deadline: int64(c.Exp + m.s.skewSec), jti: c.Jti, kid: kid}
		m.denyScopes(e, c.Scope)
		return e
	}
	return allowed(m, c, kid)
}

// allowed is the verdict on a valid token with the route's scopes.
func allowed(m *Middleware, c *tokenClaims, kid string) *cacheEntry {
	e := &cacheEntry{deadline: int64(c.Exp + m.s.skewSec), jti: c.Jti, kid: kid}
	// One array for the values, a header slicing one each; an empty claim leaves its header nil (removed).
	vals := []string{c.Sub, c.Username, c.Email, c.ClientID, c.Scope}
	e.ops = append([]headerOp(nil), m.opsTemplate...)
	for i, ci := range m.opsClaim {
		if vals[ci] != "" {
			e.ops[i].vals = vals[ci : ci+1 : ci+1]
		}
	}
	return e
}

func hasScopes(scope string, need []string) bool {
	held := strings.Fields(scope)
	for _, n := range need {
		found := false
		for _, h := range held {
			if h == n {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// denyScopes turns e into a 403 verdict. MCP 2025-11-25 step-up: the challenge lists the scopes already held plus
// the missing ones, since v1 SDK clients replace their scope with the challenge's instead of adding to it.
func (m *Middleware) denyScopes(e *cacheEntry, scope string) {
	held := strings.Fields(scope)
	want := append([]string{}, held...)
	var missing []string
	for _, n := range m.s.scopes {
		if !hasScopes(scope, []string{n}) {
			missing = append(missing, n)
			want = append(want, n)
		}
	}
	e.denied = true
	e.desc = "token lacks scope " + strings.Join(missing, " ")
	e.challenge = "Bearer error=\"insufficient_scope\", scope=\"" + descSafe(strings.Join(want, " ")) + "\", resource_metadata=\"" +
		m.s.metadataURL + "\", error_description=\"" + e.desc + "\""
}

// recheck reports whether a verdict just cached still holds: errFeedStale when the revocation feed went stale
// meanwhile (503), errRevokedOrRetired when jti was revoked or kid left the key set (401), else nil.
func (st *issuerState) recheck(jti, kid string) error {
	st.mu.RLock()
	_, revoked := st.revoked[jti]
	_, known := st.keys[kid]
	stale := st.feedStale
	st.mu.RUnlock()
	if stale {
		return errFeedStale
	}
	if revoked || !known {
		return errRevokedOrRetired
	}
	return nil
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

package plugin

// Verification: the verdict on an Authorization value, a cache entry (the header writes of an allowed token, or a
// 403). admit judges any Bearer value (the cached 403, else verify), caches the verdict and returns it to the
// request path (middleware.go). Everything verify checks is in this file (the token's parsing, its signature, its
// claims) except what it asks the issuer's shared state (issuer.go: the key for a kid, whether a jti is revoked).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// errNotBearer: the Authorization value is not a Bearer token; serveOther answers it.
var errNotBearer = errors.New("not a Bearer token")

// admit returns the verdict on the Authorization value key: the cached 403, or a fresh verdict, which it caches.
func admit(m *Middleware, key string) (*cacheEntry, error) {
	now := time.Now()
	if e := m.cache.deniedEntry(key, now.Unix()); e != nil {
		return e, nil
	}
	if len(key) < 8 || !strings.EqualFold(key[:7], "Bearer ") {
		return nil, errNotBearer
	}
	e, err := verify(m, strings.TrimLeft(key[7:], " "), now)
	if err != nil {
		return nil, err
	}
	put(m.cache, key, e)
	// A revocation or key removal that landed while this token was being checked may have purged the cache
	// before the put: look again so the entry cannot outlive it.
	if err := recheck(m.st, e.jti, e.kid); err != nil {
		m.cache.remove(e)
		return nil, err
	}
	return e, nil
}

// verify checks a token fully and returns the verdict to cache. Its errors are token errors (401), or
// errKeysNotReady (503).
func verify(m *Middleware, tok string, now time.Time) (*cacheEntry, error) {
	pt, err := parseToken(tok, m.s.maxTokenBytes, m.s.algorithms)
	if err != nil {
		return nil, err
	}
	key, err := keyFor(m.st, pt.kid)
	if err != nil {
		return nil, err
	}
	if err = key.verify(pt.alg, pt.signingInput, pt.sig); err != nil {
		return nil, err
	}
	if err = checkClaims(&pt.claims, m.s, now); err != nil {
		return nil, err
	}
	if isRevoked(m.st, pt.claims.Jti) {
		return nil, errRevoked
	}
	return verdict(m, &pt.claims, pt.kid), nil
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
	vals := []string{c.Sub, c.Username, c.Email, c.ClientID, c.Scope, joinGroups(c.Groups), m.s.metadataURL}
	e.ops = append([]headerOp(nil), m.opsTemplate...)
	for i, ci := range m.opsClaim {
		if vals[ci] != "" {
			e.ops[i].vals = vals[ci : ci+1 : ci+1]
		}
	}
	return e
}

// joinGroups is the groups claim as one header value, comma separated ("" when absent or empty). checkClaims has
// made sure it is a list of names without commas, whitespace or control characters.
func joinGroups(groups interface{}) string {
	list, _ := groups.([]interface{})
	names := make([]string, 0, len(list))
	for _, g := range list {
		s, _ := g.(string)
		names = append(names, s)
	}
	return strings.Join(names, ",")
}

// groupsValid reports whether a groups claim is absent or a list of non-empty strings without commas, whitespace or
// control characters: a name holding a comma would read as two groups in the comma-separated header.
func groupsValid(groups interface{}) bool {
	if groups == nil {
		return true
	}
	list, ok := groups.([]interface{})
	if !ok {
		return false
	}
	for _, g := range list {
		s, ok := g.(string)
		if !ok || s == "" || strings.ContainsAny(s, groupSeparators) || !headerSafe(s) {
			return false
		}
	}
	return true
}

// groupSeparators are what a group name cannot hold: the header's separator and whitespace.
const groupSeparators = ", \t\u00a0\u2028\u2029"

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

// tokenHeader is the JOSE header of an access token (RFC 7515 §4).
type tokenHeader struct {
	Alg  string      `json:"alg"`
	Typ  string      `json:"typ"`
	Kid  string      `json:"kid"`
	Crit interface{} `json:"crit"`
}

// tokenClaims are the RFC 9068 claims the middleware reads. Numeric dates are float64 because RFC 7519 allows
// fractions. They are decoded over blankClaims, whose values no JSON number has, to tell a missing date: NaN for
// exp and iat, -Inf for nbf (which may be missing); cheaper under Yaegi than pointers.
type tokenClaims struct {
	Iss      string      `json:"iss"`
	Sub      string      `json:"sub"`
	Aud      interface{} `json:"aud"`
	ClientID string      `json:"client_id"`
	Scope    string      `json:"scope"`
	Iat      float64     `json:"iat"`
	Nbf      float64     `json:"nbf"`
	Exp      float64     `json:"exp"`
	Jti      string      `json:"jti"`
	Username string      `json:"username"`
	Email    string      `json:"email"`
	Groups   interface{} `json:"groups"`
}

var blankClaims = tokenClaims{Iat: math.NaN(), Nbf: math.Inf(-1), Exp: math.NaN()}

// parsedToken is a structurally valid JWS whose signature is not checked yet.
type parsedToken struct {
	alg          string
	kid          string
	signingInput string
	sig          []byte
	claims       tokenClaims
}

// Token errors. Their text is the error_description clients see. They are values built once because under Yaegi
// every expression of a function costs an allocation on each call, taken or not: a validation function full of
// fmt.Errorf calls is slow even when the token is fine.
var (
	errJWE        = errors.New("encrypted tokens (JWE) are not accepted")
	errNotJWS     = errors.New("token is not a compact JWS (three base64url parts separated by dots)")
	errLineBreak  = errors.New("token contains a line break")
	errHeaderB64  = errors.New("token header is not strict base64url")
	errHeaderJSON = errors.New("token header is not a JSON object")
	errAlgNone    = errors.New("unsigned tokens (alg none) are not accepted")
	errTyp        = errors.New("token typ is not at+jwt (RFC 9068)")
	errCrit       = errors.New("token header has crit extensions this server does not understand")
	errNoKid      = errors.New("token header has no kid")
	errSigB64     = errors.New("token signature is not strict base64url")
	errPayloadB64 = errors.New("token payload is not strict base64url")
	errClaimsJSON = errors.New("token claims are not a JSON object of the expected types")
	errNoExp      = errors.New("token has no exp")
	errExpired    = errors.New("token has expired")
	errNotYet     = errors.New("token is not valid yet (nbf)")
	errNoIat      = errors.New("token has no iat")
	errFutureIat  = errors.New("token was issued in the future (iat)")
	errRequired   = errors.New("token lacks sub, client_id or jti (RFC 9068 §2.2)")
	errControl    = errors.New("token has control characters in an identity claim")
	errGroups     = errors.New("token groups claim is not a list of names without commas or whitespace")
	errRevoked    = errors.New("token has been revoked")
	errSignature  = errors.New("signature is invalid")
)

func errTooBig(n, limit int) error {
	return fmt.Errorf("token is %d bytes, the limit is %d", n, limit)
}

func errAlg(alg string) error {
	return fmt.Errorf("alg %s is not accepted", quoteSafe(alg))
}

// parseToken splits and decodes a compact JWS (RFC 7515 §7.1) and its claims.
func parseToken(tok string, maxBytes int, algs map[string]bool) (*parsedToken, error) {
	if len(tok) > maxBytes {
		return nil, errTooBig(len(tok), maxBytes)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		if len(parts) == 5 {
			return nil, errJWE
		}
		return nil, errNotJWS
	}
	// The base64 decoder skips CR and LF, which base64url does not have; one check covers the three parts.
	if strings.ContainsAny(tok, "\r\n") {
		return nil, errLineBreak
	}
	hb, err := strictB64.DecodeString(parts[0])
	if err != nil {
		return nil, errHeaderB64
	}
	var h tokenHeader
	if json.Unmarshal(hb, &h) != nil {
		return nil, errHeaderJSON
	}
	if !algs[h.Alg] {
		if h.Alg == "none" || h.Alg == "" {
			return nil, errAlgNone
		}
		return nil, errAlg(h.Alg)
	}
	// RFC 9068 §4: the resource server must check typ, so an ID token or another JWT cannot pass as an access token.
	if h.Typ != "at+jwt" && h.Typ != "application/at+jwt" {
		return nil, errTyp
	}
	if h.Crit != nil {
		return nil, errCrit
	}
	if h.Kid == "" {
		return nil, errNoKid
	}
	pt := &parsedToken{alg: h.Alg, kid: h.Kid, signingInput: tok[:len(parts[0])+1+len(parts[1])]}
	if pt.sig, err = strictB64.DecodeString(parts[2]); err != nil || len(pt.sig) == 0 {
		return nil, errSigB64
	}
	cb, err := strictB64.DecodeString(parts[1])
	if err != nil {
		return nil, errPayloadB64
	}
	pt.claims = blankClaims
	if json.Unmarshal(cb, &pt.claims) != nil {
		return nil, errClaimsJSON
	}
	return pt, nil
}

// checkClaims applies RFC 9068 §4 validation: issuer, audience (RFC 8707), time window and required claims.
func checkClaims(c *tokenClaims, s *settings, now time.Time) error {
	if c.Iss != s.issuer {
		return s.errIssuer
	}
	if !audienceHas(c.Aud, s.resource) {
		return s.errAudience
	}
	t := float64(now.UnixNano()) / 1e9
	if math.IsNaN(c.Exp) {
		return errNoExp
	}
	if t >= c.Exp+s.skewSec {
		return errExpired
	}
	if t < c.Nbf-s.skewSec {
		return errNotYet
	}
	if math.IsNaN(c.Iat) {
		return errNoIat
	}
	if c.Iat > t+s.skewSec {
		return errFutureIat
	}
	if c.Sub == "" || c.ClientID == "" || c.Jti == "" {
		return errRequired
	}
	if !headerSafe(c.Sub + c.ClientID + c.Scope + c.Username + c.Email) {
		return errControl
	}
	if !groupsValid(c.Groups) {
		return errGroups
	}
	return nil
}

func audienceHas(aud interface{}, resource string) bool {
	switch a := aud.(type) {
	case string:
		return a == resource
	case []interface{}:
		for _, v := range a {
			if s, ok := v.(string); ok && s == resource {
				return true
			}
		}
	}
	return false
}

// controlChars are the bytes a header value cannot carry.
const controlChars = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f"

// headerSafe reports whether v can be sent as a header value unchanged. strings.ContainsAny runs compiled under
// Yaegi, where a loop over the bytes would run interpreted.
func headerSafe(v string) bool {
	return !strings.ContainsAny(v, controlChars)
}

// quoteSafe makes client-supplied text safe inside a quoted-string of WWW-Authenticate (RFC 6750 §3 forbids " and \
// in error_description) and keeps it short.
func quoteSafe(v string) string {
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b.WriteByte('?')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// verify checks a JWS signature (RFC 7515/7518) over signingInput. The algorithm must fit the key's type and curve
// and, when the JWK names an alg, equal it: this is what stops algorithm confusion.
func (k *verifyKey) verify(alg, signingInput string, sig []byte) error {
	if k.alg != "" && k.alg != alg {
		return errKeyAlg(alg, k)
	}
	if alg == "ES256" && k.crv == "P-256" {
		// The common case, kept short: under Yaegi every expression of the function costs on each call.
		d := sha256.Sum256([]byte(signingInput))
		if len(sig) != 64 || !ecdsa.Verify(k.ec, d[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			return errSignature
		}
		return nil
	}
	return k.verifyOther(alg, signingInput, sig)
}

// verifyOther covers ES384, ES512 and the RSA algorithms.
func (k *verifyKey) verifyOther(alg, signingInput string, sig []byte) error {
	var hash crypto.Hash
	var digest []byte
	switch alg {
	case "ES256", "RS256", "PS256":
		d := sha256.Sum256([]byte(signingInput))
		hash, digest = crypto.SHA256, d[:]
	case "ES384", "RS384", "PS384":
		d := sha512.Sum384([]byte(signingInput))
		hash, digest = crypto.SHA384, d[:]
	default:
		d := sha512.Sum512([]byte(signingInput))
		hash, digest = crypto.SHA512, d[:]
	}
	if alg[0] == 'E' {
		if k.ec == nil || k.crv != algCurve(alg) {
			return errKeyAlg(alg, k)
		}
		size := len(sig) / 2
		if len(sig) != 2*k.size || !ecdsa.Verify(k.ec, digest, new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])) {
			return errSignature
		}
		return nil
	}
	if k.rsa == nil {
		return errKeyAlg(alg, k)
	}
	var err error
	if alg[0] == 'P' {
		err = rsa.VerifyPSS(k.rsa, hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	} else {
		err = rsa.VerifyPKCS1v15(k.rsa, hash, digest, sig)
	}
	if err != nil {
		return errSignature
	}
	return nil
}

func errKeyAlg(alg string, k *verifyKey) error {
	if k.alg != "" {
		return fmt.Errorf("token alg %s differs from key alg %s", alg, k.alg)
	}
	return fmt.Errorf("alg %s needs a %s key, key '%s' is not one", alg, algCurve(alg), quoteSafe(k.kid))
}

// strictB64 rejects non-canonical encodings (stray bits in the last character), so each token has one spelling.
var strictB64 = base64.RawURLEncoding.Strict()

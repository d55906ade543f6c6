package plugin

// Verification: the verdict on an Authorization value, a cache entry (the header writes of an allowed token, or a
// 403). fastVerify takes the common first-seen token in few interpreted steps; admit judges any Bearer value from
// the start (the cached 403, else verify). Both cache the verdict and return it to the request path (plugin.go); the leaves they call are the token's
// parsing and claims (token.go), its signature (keys.go), the issuer's key set (keyset.go) and revocations
// (revocations.go).

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"time"
)

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

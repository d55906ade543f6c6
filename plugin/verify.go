package plugin

// Verification: the verdict on an Authorization value, a cache entry (the header writes of an allowed token, or a
// 403). admit judges any Bearer value (the cached 403, else verify), caches the verdict and returns it to the
// request path (plugin.go); the leaves it calls are the token's parsing and claims (token.go), its signature
// (keys.go), the issuer's key set (keyset.go) and revocations (revocations.go).

import (
	"errors"
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

var errRevokedOrRetired = errors.New("token has been revoked or its signing key was retired")

// verify checks a token fully and returns the verdict to cache. Its errors are token errors (401), or
// errKeysNotReady (503).
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

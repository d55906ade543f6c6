package plugin

// The issuer's key set: loaded at start and every jwksRefreshInterval, fetched again for an unknown kid (at most
// once per jwksMinRefreshInterval), and the cached verdicts of a key that left the set dropped.

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var errKeysNotReady = errors.New("signing keys are not loaded yet")

// keyFor returns the key for kid, or errKeysNotReady until keys are known and the revocation feed was read once (or
// is off), so that no revoked token slips in at start. An unknown kid triggers a JWKS fetch (refreshFor).
func (st *issuerState) keyFor(kid string) (*verifyKey, error) {
	st.mu.RLock()
	k, ready, stale := st.keys[kid], st.keys != nil && (st.feedTried || st.feedConf == feedOff), st.feedStale
	st.mu.RUnlock()
	if stale {
		return nil, errFeedStale
	}
	if k == nil || !ready {
		return st.refreshFor(kid, ready)
	}
	return k, nil
}

// refreshFor fetches the JWKS for an unknown kid, at most once per jwksMinRefresh, so a flood of made-up kids cannot
// hammer the authorization server.
func (st *issuerState) refreshFor(kid string, ready bool) (*verifyKey, error) {
	if !ready {
		return nil, errKeysNotReady
	}
	st.refreshMu.Lock()
	defer st.refreshMu.Unlock()
	st.mu.RLock()
	k, minGap := st.keys[kid], st.jwksMinRefresh
	st.mu.RUnlock()
	if k != nil {
		return k, nil
	}
	if time.Since(st.lastFetch) >= minGap {
		if err := st.fetchKeysLocked(); err != nil {
			st.errs.Warn("JWKS refresh for an unknown kid failed", "issuer", st.issuer, "error", err)
		}
		st.mu.RLock()
		k = st.keys[kid]
		st.mu.RUnlock()
		if k != nil {
			return k, nil
		}
	}
	return nil, errUnknownKid(kid)
}

func errUnknownKid(kid string) error {
	return fmt.Errorf("token kid '%s' is not in the issuer's key set", quoteSafe(kid))
}

func (st *issuerState) keysLoop() {
	backoff := time.Second
	failing := false
	for {
		st.refreshMu.Lock()
		err := st.fetchKeysLocked()
		st.refreshMu.Unlock()
		st.mu.RLock()
		wait, loaded := st.jwksRefresh, st.keys != nil
		st.mu.RUnlock()
		if err != nil {
			if !failing {
				st.errs.Error("cannot load the issuer's signing keys; retrying", "issuer", st.issuer, "error", err)
			}
			failing = true
			if !loaded {
				// Until keys arrive every request gets 503, so retry soon, backing off to 30 s.
				wait = backoff
				if backoff < 30*time.Second {
					backoff *= 2
				}
			}
		} else {
			if failing {
				st.info.Info("signing keys loaded", "issuer", st.issuer)
			}
			failing = false
			backoff = time.Second
		}
		if !st.sleep(wait) {
			return
		}
	}
}

// fetchKeysLocked fetches the JWKS and installs it; the caller holds refreshMu. Cached tokens signed by a key that
// left the set are dropped, so a retired key stops working at once.
func (st *issuerState) fetchKeysLocked() error {
	st.lastFetch = time.Now()
	u, err := st.jwksEndpoint()
	if err != nil {
		return err
	}
	body, err := st.get(u)
	if err != nil {
		return err
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	if len(skipped) > 0 {
		st.errs.Warn("JWKS has keys this middleware cannot use", "url", u, "skipped", strings.Join(skipped, "; "))
	}
	st.mu.Lock()
	old := st.keys
	st.keys = keys
	st.mu.Unlock()
	var gone []string
	for kid := range old {
		if keys[kid] == nil {
			gone = append(gone, kid)
		}
	}
	if len(gone) > 0 {
		st.purge(func(e *cacheEntry) bool {
			for _, kid := range gone {
				if e.kid == kid {
					return true
				}
			}
			return false
		})
	}
	return nil
}

func (st *issuerState) jwksEndpoint() (string, error) { return st.endpoint(st.jwksConf, &st.jwksURL) }

package plugin

// The issuer's key set: JWKS parsing (RFC 7517), loading at start and every jwksRefreshInterval, fetching again for
// an unknown kid (at most once per jwksMinRefreshInterval), and dropping the cached verdicts of a key that left
// the set. Signature checks with a key are verify.go's.

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// verifyKey is one signing key from the issuer's JWKS (RFC 7517).
type verifyKey struct {
	kid  string
	alg  string // the JWK's alg, "" when the JWK does not pin one
	crv  string // EC keys: P-256, P-384 or P-521
	size int    // EC keys: bytes of one coordinate
	ec   *ecdsa.PublicKey
	rsa  *rsa.PublicKey
}

// jwk is the wire form of one key; unknown members are ignored.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

type jwkSet struct {
	Keys []json.RawMessage `json:"keys"`
}

// parseJWKS turns a JWKS document into keys by kid. Keys the middleware cannot use (other kty, use "enc", no kid)
// are skipped and reported in skipped, so one odd key does not take the others down.
func parseJWKS(body []byte) (map[string]*verifyKey, []string, error) {
	var set jwkSet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	keys := map[string]*verifyKey{}
	var skipped []string
	for i, raw := range set.Keys {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		vk, err := k.toKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		if _, dup := keys[vk.kid]; dup {
			skipped = append(skipped, fmt.Sprintf("key %d: duplicate kid %q", i, vk.kid))
			continue
		}
		keys[vk.kid] = vk
	}
	if len(keys) == 0 {
		return nil, skipped, fmt.Errorf("JWKS has no usable signing key (%d keys listed)", len(set.Keys))
	}
	return keys, skipped, nil
}

func (k *jwk) toKey() (*verifyKey, error) {
	if k.Kid == "" {
		return nil, errors.New("no kid")
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("use %q is not sig", k.Use)
	}
	if k.Alg != "" && !supportedAlgorithms[k.Alg] {
		return nil, fmt.Errorf("alg %q is not supported", k.Alg)
	}
	vk := &verifyKey{kid: k.Kid, alg: k.Alg}
	switch k.Kty {
	case "EC":
		var curve elliptic.Curve
		var dh ecdh.Curve
		switch k.Crv {
		case "P-256":
			curve, dh = elliptic.P256(), ecdh.P256()
		case "P-384":
			curve, dh = elliptic.P384(), ecdh.P384()
		case "P-521":
			curve, dh = elliptic.P521(), ecdh.P521()
		default:
			return nil, fmt.Errorf("curve %q is not supported", k.Crv)
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err := b64(k.X)
		if err != nil || len(x) != size {
			return nil, fmt.Errorf("x is not a %d-byte base64url value", size)
		}
		y, err := b64(k.Y)
		if err != nil || len(y) != size {
			return nil, fmt.Errorf("y is not a %d-byte base64url value", size)
		}
		// crypto/ecdh checks that the point is on the curve (an invalid-curve key must never be used).
		point := append(append([]byte{4}, x...), y...)
		if _, err := dh.NewPublicKey(point); err != nil {
			return nil, fmt.Errorf("point is not on %s: %w", k.Crv, err)
		}
		if k.Alg != "" && algCurve(k.Alg) != k.Crv {
			return nil, fmt.Errorf("alg %q does not fit curve %s", k.Alg, k.Crv)
		}
		vk.crv, vk.size = k.Crv, size
		//lint:ignore SA1019 Traefik's Yaegi offers the standard library of Go 1.23 and older, without ParseUncompressedPublicKey; the point was checked above
		vk.ec = &ecdsa.PublicKey{Curve: curve, X: new(big.Int).SetBytes(x), Y: new(big.Int).SetBytes(y)}
	case "RSA":
		n, err := b64(k.N)
		if err != nil || len(n) == 0 {
			return nil, errors.New("n is not a base64url value")
		}
		e, err := b64(k.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("e is not a base64url value of at most 4 bytes")
		}
		exp := 0
		for _, b := range e {
			exp = exp<<8 | int(b)
		}
		if exp < 3 || exp%2 == 0 {
			return nil, fmt.Errorf("exponent %d is not valid", exp)
		}
		mod := new(big.Int).SetBytes(n)
		if mod.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too short (minimum 2048)", mod.BitLen())
		}
		if k.Alg != "" && algCurve(k.Alg) != "RSA" {
			return nil, fmt.Errorf("alg %q does not fit an RSA key", k.Alg)
		}
		vk.rsa = &rsa.PublicKey{N: mod, E: exp}
	default:
		return nil, fmt.Errorf("kty %q is not supported", k.Kty)
	}
	return vk, nil
}

// algCurve is the key type an algorithm needs: the EC curve name, or "RSA".
func algCurve(alg string) string {
	switch alg {
	case "ES256":
		return "P-256"
	case "ES384":
		return "P-384"
	case "ES512":
		return "P-521"
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		return "RSA"
	}
	return ""
}

// b64 decodes base64url without padding. The decoder skips CR and LF, which the JOSE alphabet does not have.
func b64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64url value")
	}
	return strictB64.DecodeString(s)
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

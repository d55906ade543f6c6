package plugin

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
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

// b64 decodes base64url without padding. The decoder skips CR and LF, which the JOSE alphabet does not have.
func b64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64url value")
	}
	return strictB64.DecodeString(s)
}

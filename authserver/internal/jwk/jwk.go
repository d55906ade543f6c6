// Package jwk is the one encoding of public keys as JSON Web Keys (RFC 7517, RFC 7518 §6): it reads the keys a
// client publishes as a JSON Web Key Set, for checking the signatures of its private_key_jwt client assertions, and
// writes the authorization server's own signing keys for its JWKS (Object, both ways).
//
// Only what the authorization server verifies is kept: RSA keys of 2048 to 8192 bits (RS256, PS256) and EC keys on
// P-256 (ES256). Keys meant for encryption and key types the server does not use are skipped; a set that carries a
// private or symmetric key, or a malformed key of a kind the server uses, is refused as a whole, since it is
// broken or unsafe as published.
package jwk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Algorithms are the JWS algorithms client assertions may use, strongest-first in no particular sense: RS256 is
// what most clients (ChatGPT among them) sign with. Never "none", never an HMAC (RFC 8725 §3.1).
var Algorithms = []string{"RS256", "PS256", "ES256"}

// Limits of a set, so a client cannot make the server hold or try many keys.
const (
	MaxKeys    = 20
	minRSABits = 2048
	maxRSABits = 8192
)

// Key is one public verification key of a set.
type Key struct {
	ID     string           // kid; may be empty
	Alg    string           // the key's alg member; empty: any algorithm its type fits
	Public crypto.PublicKey // *rsa.PublicKey or *ecdsa.PublicKey
}

// Fits reports whether the key can verify a signature made with alg.
func (k Key) Fits(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	switch k.Public.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "PS256"
	case *ecdsa.PublicKey:
		return alg == "ES256"
	}
	return false
}

// Object is one JWK as JSON writes it: how the server publishes its signing keys (Encode) and how ParseSet reads a
// client's. Members are written in this order, the empty ones left out.
type Object struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"` // EC: crv, x, y
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"` // RSA: n, e
	E   string `json:"e,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
	// Private or symmetric material: never written, and never acceptable in a published set.
	D string `json:"d,omitempty"`
	K string `json:"k,omitempty"`
	P string `json:"p,omitempty"`
}

// ParseSet reads a JWK Set ({"keys":[...]}) and returns the keys the server can verify with. It fails when the set
// is malformed, unsafe, or holds no usable key; the error says why in words a client's developer can act on.
func ParseSet(b []byte) ([]Key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if set.Keys == nil {
		return nil, errors.New(`not a JSON Web Key Set: no "keys" member`)
	}
	if len(set.Keys) > MaxKeys {
		return nil, fmt.Errorf("the key set has %d keys; at most %d are accepted", len(set.Keys), MaxKeys)
	}
	var out []Key
	for i, raw := range set.Keys {
		var r Object
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("key %d is not a JSON Web Key: %w", i, err)
		}
		name := fmt.Sprintf("key %d", i)
		if r.Kid != "" {
			name = fmt.Sprintf("key %q", r.Kid)
		}
		if r.D != "" || r.K != "" || r.P != "" || r.Kty == "oct" {
			return nil, fmt.Errorf("%s holds private or symmetric key material: publish public keys only", name)
		}
		if r.Use != "" && r.Use != "sig" {
			continue // an encryption key: not for signatures
		}
		if r.Alg != "" && !slices.Contains(Algorithms, r.Alg) {
			continue // an algorithm this server does not accept; another key may fit
		}
		var pub crypto.PublicKey
		var err error
		switch r.Kty {
		case "RSA":
			pub, err = rsaKey(r)
		case "EC":
			if r.Crv != "P-256" {
				continue // other curves: not used here
			}
			pub, err = ecKey(r)
		default:
			continue // OKP and others: not used here
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		k := Key{ID: r.Kid, Alg: r.Alg, Public: pub}
		if k.Alg != "" && !k.Fits(k.Alg) {
			return nil, fmt.Errorf("%s: its alg %s does not fit a %s key", name, r.Alg, r.Kty)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the key set has no signing key this server accepts (RSA of at least %d bits or EC P-256, for %s)",
			minRSABits, strings.Join(Algorithms, ", "))
	}
	return out, nil
}

func decode(name, v string) ([]byte, error) {
	if v == "" {
		return nil, fmt.Errorf("%s is missing", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(v, "="))
	if err != nil {
		return nil, fmt.Errorf("%s is not base64url: %w", name, err)
	}
	return b, nil
}

func rsaKey(r Object) (*rsa.PublicKey, error) {
	nb, err := decode("n", r.N)
	if err != nil {
		return nil, err
	}
	eb, err := decode("e", r.E)
	if err != nil {
		return nil, err
	}
	n := new(big.Int).SetBytes(nb)
	if bits := n.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("an RSA key of %d bits; %d to %d are accepted", bits, minRSABits, maxRSABits)
	}
	e := new(big.Int).SetBytes(eb)
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return nil, errors.New("the RSA exponent e is not a usable public exponent")
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
}

func ecKey(r Object) (*ecdsa.PublicKey, error) {
	x, err := decode("x", r.X)
	if err != nil {
		return nil, err
	}
	y, err := decode("y", r.Y)
	if err != nil {
		return nil, err
	}
	if len(x) != 32 || len(y) != 32 {
		return nil, errors.New("x and y of a P-256 key must be 32 bytes each (RFC 7518 §6.2.1)")
	}
	// ParseUncompressedPublicKey checks that the point is on the curve.
	k, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), slices.Concat([]byte{4}, x, y))
	if err != nil {
		return nil, fmt.Errorf("not a point on P-256: %w", err)
	}
	return k, nil
}

// Encode returns the key as a public JWK for signatures: kty, the key's members, kid and alg when set, and use "sig".
func (k Key) Encode() (Object, error) {
	o := Object{Kid: k.ID, Alg: k.Alg, Use: "sig"}
	b64 := base64.RawURLEncoding.EncodeToString
	switch p := k.Public.(type) {
	case *rsa.PublicKey:
		o.Kty, o.N, o.E = "RSA", b64(p.N.Bytes()), b64(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		if p.Curve != elliptic.P256() {
			return Object{}, fmt.Errorf("encode key %s: an EC key on %s; only P-256 is used", k.ID, p.Curve.Params().Name)
		}
		b, err := p.Bytes() // uncompressed point: 0x04 || X || Y
		if err != nil {
			return Object{}, fmt.Errorf("encode key %s: %w", k.ID, err)
		}
		o.Kty, o.Crv, o.X, o.Y = "EC", "P-256", b64(b[1:33]), b64(b[33:])
	default:
		return Object{}, fmt.Errorf("encode key %s: a %T is not a key this server uses", k.ID, k.Public)
	}
	return o, nil
}

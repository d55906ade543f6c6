package clientprofile

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
)

// publicJWK is the profile's public key as a JWK, as the client publishes it at its jwks_uri.
func publicJWK(p Profile) map[string]any {
	b64 := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": p.KeyID, "use": "sig", "alg": p.SigningMethod.Alg()}
	switch k := p.Signer.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(k.N.Bytes()), b64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		b, _ := k.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", b64(b[1:33]), b64(b[33:])
	}
	return m
}

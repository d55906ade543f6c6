// Package successor seals the token response that rotated a refresh token, so that the server can hand the same
// response to the token's holder again for a short while (the reuse window) without the store ever holding a token
// it could hand out itself.
//
// The response is encrypted with AES-256-GCM under a key derived (HKDF-SHA-256) from the rotated refresh token's
// own value, which the store never sees (it keeps the token's SHA-256 hash). Whoever reads the store, a backup or a
// Redis replica learns nothing usable; only a client presenting the old token can open what was sealed for it, and
// it would have received that response anyway. The old token's hash is bound in as additional data, so a sealed
// response cannot be moved to another token's record.
package successor

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Response is what a refresh handed to the client: the successor refresh token and the access token issued with it.
type Response struct {
	RefreshToken    string    `json:"refresh_token"`
	AccessToken     string    `json:"access_token"`
	AccessExpiresAt time.Time `json:"access_expires_at"`
	Scope           string    `json:"scope"`
}

// keyInfo separates this key from anything else ever derived from a refresh token.
const keyInfo = "mcp-oauth-gateway refresh successor v1"

// ErrOpen: the sealed response cannot be opened with this token (another token, or damaged data).
var ErrOpen = errors.New("successor: cannot open the sealed response")

// Seal encrypts r for the holder of the refresh token oldToken, whose stored hash is oldHash.
func Seal(oldToken, oldHash string, r Response) ([]byte, error) {
	aead, err := aeadFor(oldToken)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("successor: encode: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("successor: nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plain, []byte(oldHash)), nil
}

// Open decrypts what Seal sealed for oldToken.
func Open(oldToken, oldHash string, sealed []byte) (Response, error) {
	var r Response
	aead, err := aeadFor(oldToken)
	if err != nil {
		return r, err
	}
	if len(sealed) < aead.NonceSize() {
		return r, ErrOpen
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(oldHash))
	if err != nil {
		return r, ErrOpen
	}
	if err := json.Unmarshal(plain, &r); err != nil {
		return r, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	return r, nil
}

func aeadFor(token string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, []byte(token), nil, keyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("successor: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("successor: %w", err)
	}
	return cipher.NewGCM(block)
}

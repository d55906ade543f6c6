package connections

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Keyring seals connected accounts' tokens with AES-256-GCM. The first key seals; every key opens, so that a record
// sealed under a key being retired stays readable until it is sealed again under the new one (Rekey).
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// ErrWrongKey: a record does not open under the key its key id names (another key of that id, or a changed record).
var ErrWrongKey = errors.New("connections: the record does not open under its key (wrong key, or the record was altered or moved)")

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ParseKeys reads keys as --connections-key gives them: entries <id>:<base64 of 32 random bytes>, separated by
// commas or new lines; the first seals. `openssl rand -base64 32` makes a key.
func ParseKeys(text string) (*Keyring, error) {
	k := &Keyring{aeads: map[string]cipher.AEAD{}}
	for _, e := range strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		id, b64, ok := strings.Cut(e, ":")
		if !ok || !keyIDPattern.MatchString(id) {
			return nil, errors.New("a key is <id>:<base64 of 32 bytes>, the id of letters, digits, - and _ (at most 32), e.g. 2026a:$(openssl rand -base64 32)")
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			raw, err = base64.RawURLEncoding.DecodeString(b64)
		}
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("key %q: want the base64 of exactly 32 random bytes (openssl rand -base64 32)", id)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("key id %q is given twice", id)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		k.aeads[id] = aead
		if k.current == "" {
			k.current = id
		}
	}
	if k.current == "" {
		return nil, errors.New("no key given")
	}
	return k, nil
}

// Current is the id of the key that seals.
func (k *Keyring) Current() string { return k.current }

// Has reports whether the keyring holds a key of that id.
func (k *Keyring) Has(id string) bool { _, ok := k.aeads[id]; return ok }

// associated binds a sealed value to what it is for: a record copied to another user or upstream does not open.
func associated(purpose, userID, upstream string) []byte {
	return []byte("mcpgw\x00" + purpose + "\x00" + userID + "\x00" + upstream)
}

// seal encrypts plain under the current key: a random 96-bit nonce followed by the ciphertext.
func (k *Keyring) seal(plain, ad []byte) (keyID string, sealed []byte) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce) // never fails: since Go 1.24 it crashes the program instead
	return k.current, aead.Seal(nonce, nonce, plain, ad)
}

// open decrypts what seal made under keyID.
func (k *Keyring) open(keyID string, sealed, ad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("connections: sealed under key %q, which the configured keys do not include", keyID)
	}
	if len(sealed) < aead.NonceSize() {
		return nil, ErrWrongKey
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Package keys manages the authorization server's ES256 signing keys: created on first start and kept in the store
// (so a restart or a second node signs with the same keys), published as a JWKS, rotated without breaking tokens.
//
// Rotation publishes a new key first and signs with it only after ActivateAfter, so resource servers that cache the
// JWKS learn it before they meet a token it signed; the old key stays published until the last token it signed has
// expired.
package keys

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/jwk"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Alg is the only signing algorithm: ECDSA P-256 verifies fast in Go and keeps tokens small.
const Alg = "ES256"

// Manager reads the key set from the store and caches it.
type Manager struct {
	Store store.Store
	// MaxTokenLifetime is the longest lifetime of a token a key signs; a retired key stays published this long.
	MaxTokenLifetime time.Duration
	// Refresh is how often the cached set is re-read, so keys rotated by another node are picked up.
	Refresh time.Duration

	mu       sync.Mutex
	set      []store.SigningKey
	priv     map[string]*ecdsa.PrivateKey
	loadedAt time.Time
}

// Ensure loads the key set and creates the first key if there is none.
func (m *Manager) Ensure(ctx context.Context) error {
	for range 5 {
		set, err := m.Store.SigningKeys(ctx)
		if err != nil {
			return fmt.Errorf("read signing keys: %w", err)
		}
		if len(set) > 0 {
			return m.use(set)
		}
		k, err := newKey(time.Now(), time.Now())
		if err != nil {
			return err
		}
		ok, err := m.Store.CompareAndSetSigningKeys(ctx, nil, []store.SigningKey{k})
		if err != nil {
			return fmt.Errorf("store first signing key: %w", err)
		}
		if ok {
			return m.use([]store.SigningKey{k})
		}
		// Another node created one at the same moment: read theirs.
	}
	return errors.New("could not agree on a first signing key")
}

// Rotate adds a new key that signs from now+activateAfter, schedules the keys it replaces for retirement once the
// last token they signed has expired, and drops keys already past retirement. It returns the new key's id.
func (m *Manager) Rotate(ctx context.Context, activateAfter time.Duration) (string, error) {
	for range 5 {
		prev, err := m.Store.SigningKeys(ctx)
		if err != nil {
			return "", fmt.Errorf("read signing keys: %w", err)
		}
		now := time.Now()
		k, err := newKey(now, now.Add(activateAfter))
		if err != nil {
			return "", err
		}
		next := make([]store.SigningKey, 0, len(prev)+1)
		for _, old := range prev {
			if !old.RetireAt.IsZero() && old.RetireAt.Before(now) {
				continue
			}
			if old.RetireAt.IsZero() {
				old.RetireAt = k.ActiveAt.Add(m.MaxTokenLifetime)
			}
			next = append(next, old)
		}
		next = append(next, k)
		ok, err := m.Store.CompareAndSetSigningKeys(ctx, prev, next)
		if err != nil {
			return "", fmt.Errorf("store rotated signing keys: %w", err)
		}
		if ok {
			return k.KID, m.use(next)
		}
	}
	return "", errors.New("signing keys changed concurrently five times; try again")
}

// Signer returns the key to sign with now: the newest active key.
func (m *Manager) Signer(ctx context.Context) (string, *ecdsa.PrivateKey, error) {
	if err := m.refresh(ctx); err != nil {
		return "", nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var best *store.SigningKey
	for i := range m.set {
		k := &m.set[i]
		if k.ActiveAt.After(now) || (!k.RetireAt.IsZero() && k.RetireAt.Before(now)) {
			continue
		}
		if best == nil || k.ActiveAt.After(best.ActiveAt) {
			best = k
		}
	}
	if best == nil {
		return "", nil, errors.New("no active signing key")
	}
	return best.KID, m.priv[best.KID], nil
}

// PublicKey returns a published key by id, for checking tokens this server issued: like the JWKS, never a retired
// key.
func (m *Manager) PublicKey(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.set, func(k store.SigningKey) bool { return k.KID == kid })
	if i < 0 || (!m.set[i].RetireAt.IsZero() && m.set[i].RetireAt.Before(time.Now())) {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	return &m.priv[kid].PublicKey, nil
}

// JWKS returns every published key: active, not yet active (pre-published) and retiring.
func (m *Manager) JWKS(ctx context.Context) ([]jwk.Object, error) {
	if err := m.refresh(ctx); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := []jwk.Object{}
	for _, k := range m.set {
		if !k.RetireAt.IsZero() && k.RetireAt.Before(now) {
			continue
		}
		o, err := jwk.Key{ID: k.KID, Alg: Alg, Public: &m.priv[k.KID].PublicKey}.Encode()
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (m *Manager) refresh(ctx context.Context) error {
	m.mu.Lock()
	fresh := m.priv != nil && time.Since(m.loadedAt) < m.refreshEvery()
	m.mu.Unlock()
	if fresh {
		return nil
	}
	set, err := m.Store.SigningKeys(ctx)
	if err != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.priv != nil {
			return nil // keep signing with what we know while the store is briefly away
		}
		return fmt.Errorf("read signing keys: %w", err)
	}
	if len(set) == 0 {
		return errors.New("no signing keys in the store")
	}
	return m.use(set)
}

func (m *Manager) refreshEvery() time.Duration {
	if m.Refresh > 0 {
		return m.Refresh
	}
	return 30 * time.Second
}

func (m *Manager) use(set []store.SigningKey) error {
	priv := make(map[string]*ecdsa.PrivateKey, len(set))
	for _, k := range set {
		block, _ := pem.Decode([]byte(k.PrivatePEM))
		if block == nil {
			return fmt.Errorf("signing key %s: no PEM block", k.KID)
		}
		parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("signing key %s: %w", k.KID, err)
		}
		ec, ok := parsed.(*ecdsa.PrivateKey)
		if !ok {
			return fmt.Errorf("signing key %s is not an ECDSA key", k.KID)
		}
		priv[k.KID] = ec
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.set, m.priv, m.loadedAt = slices.Clone(set), priv, time.Now()
	return nil
}

func newKey(published, active time.Time) (store.SigningKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("encode signing key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return store.SigningKey{}, fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(pubDER)
	return store.SigningKey{
		KID:         base64.RawURLEncoding.EncodeToString(sum[:12]),
		Alg:         Alg,
		PrivatePEM:  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		PublishedAt: published,
		ActiveAt:    active,
	}, nil
}

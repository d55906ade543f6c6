package embedded

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// Record kinds, as written in the journal. Each kind is one map of the in-memory state.
const (
	kindClient  = "client"
	kindAuthReq = "authreq"
	kindCode    = "code"
	kindRefresh = "refresh"
	kindAccess  = "access"
	kindRevoked = "revoked" // feed entry, by jti
	kindConsent = "consent" // by consentKey(user, client)
	kindFamily  = "family"  // tombstone of a revoked grant family
	kindKeys    = "keys"    // the signing key set, under id ""
	kindSeq     = "seq"     // the feed's sequence counter, under id ""
	kindDevice  = "device"  // device authorization grant, by user code
	kindJTI     = "jti"     // a used single-use identifier (client assertion jti), by the caller's key
	kindPin     = "pin"     // a GitHub login pinned to its account, by lower-case login
	kindConn    = "conn"    // a connected account, by connectionKey(user, upstream)
)

var kinds = []string{kindClient, kindAuthReq, kindCode, kindRefresh, kindAccess, kindRevoked, kindConsent, kindFamily, kindKeys, kindSeq, kindDevice, kindJTI, kindPin, kindConn}

// codeRec is an authorization code plus whether it was redeemed: a redeemed code is kept until it expires so that a
// second redemption is recognised (and its family revoked) instead of looking like an unknown code.
type codeRec struct {
	store.AuthCode
	Used bool `json:"used,omitempty"`
}

// refreshRec is a refresh token plus whether it was rotated and to what, kept until expiry for replay detection.
type refreshRec struct {
	store.RefreshToken
	Used    bool         `json:"used,omitempty"`
	Rotated *rotationRec `json:"rotated,omitempty"` // nil for a token rotated before rotations were recorded
}

// rotationRec is a rotation and until when its sealed response is kept.
type rotationRec struct {
	store.Rotation
	SealedUntil time.Time `json:"sealed_until,omitzero"`
}

// familyTomb marks a revoked grant family for a while, so tokens that a concurrent request creates for it after
// the revocation (a code redeemed twice at once) are born revoked.
type familyTomb struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// usedJTI marks a single-use identifier as used until it expires.
type usedJTI struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// familyTombTTL covers the moment between a code's redemption and the storing of the tokens issued for it.
const familyTombTTL = 24 * time.Hour

// newRecord returns an empty value of the kind, for decoding a journal line.
func newRecord(kind string) (any, error) {
	switch kind {
	case kindClient:
		return &store.Client{}, nil
	case kindAuthReq:
		return &store.AuthRequest{}, nil
	case kindCode:
		return &codeRec{}, nil
	case kindRefresh:
		return &refreshRec{}, nil
	case kindAccess:
		return &store.AccessToken{}, nil
	case kindRevoked:
		return &store.Revocation{}, nil
	case kindConsent:
		return &store.Consent{}, nil
	case kindFamily:
		return &familyTomb{}, nil
	case kindKeys:
		return &[]store.SigningKey{}, nil
	case kindSeq:
		return new(int64), nil
	case kindDevice:
		return &store.DeviceGrant{}, nil
	case kindJTI:
		return &usedJTI{}, nil
	case kindPin:
		return &store.LoginPin{}, nil
	case kindConn:
		return &store.Connection{}, nil
	}
	return nil, fmt.Errorf("unknown record kind %q", kind)
}

// expiryOf returns when a record stops counting; zero means never.
func expiryOf(v any) time.Time {
	switch r := v.(type) {
	case *store.Client:
		return r.ExpiresAt
	case *store.AuthRequest:
		return r.ExpiresAt
	case *codeRec:
		return r.ExpiresAt
	case *refreshRec:
		return r.ExpiresAt
	case *store.AccessToken:
		return r.ExpiresAt
	case *store.Revocation:
		return r.ExpiresAt
	case *store.Consent:
		return r.ExpiresAt
	case *familyTomb:
		return r.ExpiresAt
	case *store.DeviceGrant:
		return r.ExpiresAt
	case *usedJTI:
		return r.ExpiresAt
	}
	return time.Time{}
}

func expired(v any, now time.Time) bool {
	exp := expiryOf(v)
	return !exp.IsZero() && !now.Before(exp)
}

func connectionKey(userID, upstream string) string { return consentKey(userID, upstream) }

func cloneConnection(c *store.Connection) *store.Connection {
	cp := *c
	cp.Sealed = slices.Clone(c.Sealed)
	return &cp
}

func consentKey(userID, clientID string) string {
	// JSON-encoding both parts keeps the key unambiguous whatever the ids contain.
	b, _ := json.Marshal([2]string{userID, clientID})
	return string(b)
}

// Copies: the store never shares memory with its callers, so a caller editing a returned record changes nothing.

func cloneClient(c *store.Client) *store.Client {
	cp := *c
	cp.RedirectURIs = slices.Clone(c.RedirectURIs)
	cp.GrantTypes = slices.Clone(c.GrantTypes)
	cp.Metadata = maps.Clone(c.Metadata)
	cp.JWKS = slices.Clone(c.JWKS)
	cp.AlsoAuthMethods = slices.Clone(c.AlsoAuthMethods)
	return &cp
}

func cloneAuthRequest(r *store.AuthRequest) *store.AuthRequest {
	cp := *r
	if r.User != nil {
		u := *r.User
		cp.User = &u
	}
	return &cp
}

func clone[T any](v *T) *T {
	cp := *v
	return &cp
}

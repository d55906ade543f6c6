// Package store defines the authorization server's persistent state and the one interface every backend implements.
//
// Two backends exist: Redis (redisstore, for production and several nodes) and an embedded single-node store
// (embedded, the default). Both must pass the contract suite in storetest. Secrets never reach a store in clear:
// client secrets, registration access tokens, authorization codes and refresh tokens are stored under their SHA-256
// hash (see HashSecret), so a copy of the store cannot be replayed.
package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors returned by every backend. Callers test them with errors.Is.
var (
	// ErrNotFound: no such record, or it expired.
	ErrNotFound = errors.New("store: not found")
	// ErrAlreadyExists: Create* was called with an id that is taken.
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrReused: a single-use record (authorization code, refresh token) was presented a second time. The call
	// that returns it also returns the record, so the caller can revoke the grant family it belongs to.
	ErrReused = errors.New("store: already used")
	// ErrConflict: a compare-and-swap found the record changed since the caller read it (SwapConnection).
	ErrConflict = errors.New("store: changed since read")
	// ErrUnavailable wraps failures of the backend itself (Redis down, disk full); handlers answer 503.
	ErrUnavailable = errors.New("store: unavailable")
)

// HashSecret returns the lookup key under which a high-entropy secret is stored. SHA-256 is enough: the secrets are
// 256-bit random values, so a slow password hash would add cost without adding safety.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Client is a registered OAuth client (RFC 7591). Metadata holds the registered client metadata exactly as it is
// returned to the client (JSON object), so unknown-but-accepted fields round-trip.
type Client struct {
	ID                    string         `json:"client_id"`
	SecretHash            string         `json:"secret_hash,omitempty"` // empty for public clients
	RegistrationTokenHash string         `json:"registration_token_hash"`
	RedirectURIs          []string       `json:"redirect_uris"`
	TokenEndpointAuth     string         `json:"token_endpoint_auth_method"`
	GrantTypes            []string       `json:"grant_types"`
	Name                  string         `json:"client_name,omitempty"`
	Scope                 string         `json:"scope,omitempty"`
	Metadata              map[string]any `json:"metadata,omitempty"`
	IssuedAt              time.Time      `json:"issued_at"`
	ExpiresAt             time.Time      `json:"expires_at,omitzero"` // zero: never expires
	// LastUsedAt is when the client last obtained tokens (zero: never). The server moves ExpiresAt forward on use, so
	// an idle or never-used registration expires while one in use stays (see TouchClient).
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	// Keys for private_key_jwt client authentication (RFC 7523, RFC 7591 §2): a JWK Set URL or the set itself, and
	// the one signing algorithm the client declared (empty: any the server allows).
	JWKSURI        string          `json:"jwks_uri,omitempty"`
	JWKS           json.RawMessage `json:"jwks,omitempty"`
	AuthSigningAlg string          `json:"token_endpoint_auth_signing_alg,omitempty"`
	// AlsoAuthMethods are further token endpoint auth methods the client may use besides TokenEndpointAuth. Only a
	// metadata-document client has them (its document's token_endpoint_auth_methods_supported); never stored.
	AlsoAuthMethods []string `json:"-"`
}

// User is the identity an identity provider vouched for.
type User struct {
	// ID is the token's sub: a GitHub user's numeric id as a string (as before there were other providers), or
	// "<provider>:<sub>" for an OpenID provider's user (see package login, UserID).
	ID    string `json:"id"`
	Login string `json:"login"` // the user's name at the provider (GitHub login, preferred_username, ...)
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"` // only an address the provider verified
	// Provider names the identity provider ("github", "google"); empty in records from before there were several:
	// those are GitHub's.
	Provider string `json:"provider,omitempty"`
	// Groups are the user's groups read at login that the operator declared relevant (login.Service), sorted; they
	// become the access tokens' groups claim, refreshes included. Set once at login and never changed in place.
	Groups []string `json:"groups,omitempty"`
}

// LoginAttempt is one round trip to an identity provider, kept with its authorization request until the provider
// sends the browser back: which provider, the PKCE verifier whose challenge went with the request, and the nonce
// (OpenID) that the ID token must carry. An attempt finishes once.
type LoginAttempt struct {
	Provider string `json:"provider"`
	Verifier string `json:"verifier,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	// Silent asks the provider to show the user nothing (OpenID Connect prompt=none): it logs in a user it already
	// knows, or answers an error.
	Silent bool `json:"silent,omitempty"`
}

// AuthRequest is an authorization request between /authorize and the redirect back to the client: it survives the
// round trip to GitHub and the consent page. Short-lived.
type AuthRequest struct {
	ID            string `json:"id"`
	ClientID      string `json:"client_id"`
	RedirectURI   string `json:"redirect_uri"`
	State         string `json:"state,omitempty"`
	CodeChallenge string `json:"code_challenge"`
	Scope         string `json:"scope"`
	// IgnoredScope lists the scopes the client asked for that are not granted (unknown here, or not the client's),
	// for the consent page.
	IgnoredScope string `json:"ignored_scope,omitempty"`
	Resource     string `json:"resource"`
	// AskConsent: the client asked for the consent page even if the user approved it before (prompt=consent,
	// OpenID Connect Core §3.1.2.1).
	AskConsent bool `json:"ask_consent,omitempty"`
	// Silent: the client asked that no page be shown (prompt=none): what would need the user ends in an error sent
	// to the client (login_required, consent_required).
	Silent bool `json:"silent,omitempty"`
	// DeviceUserCode is set when the request approves a device grant (RFC 8628) instead of redirecting to a client.
	DeviceUserCode string `json:"device_user_code,omitempty"`
	// Login is the round trip to the identity provider under way (zero before one is chosen and after it returned).
	Login LoginAttempt `json:"login,omitzero"`
	User  *User        `json:"user,omitempty"` // set after login
	// Connect is set when the request connects an upstream account instead of authorizing a client.
	Connect *ConnectIntent `json:"connect,omitempty"`
	// Account: the request logs the user in to the account page; once logged in, a record of this kind (under the
	// hash of the page's session cookie) is that session.
	Account   bool      `json:"account,omitempty"`
	CSRFToken string    `json:"csrf_token,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ConnectIntent is what a connect request (the connect page, package connections) carries through the login and the
// round trip to the upstream.
type ConnectIntent struct {
	Upstream string `json:"upstream"`
	// UserID is the user the connect link was made for (empty: started from the account page, by whoever logs in).
	UserID string `json:"user_id,omitempty"`
	// Ticket is the link's single-use identifier, used up once the right user has logged in.
	Ticket string `json:"ticket,omitempty"`
	// Verifier is the PKCE verifier of the round trip to the upstream (set once it starts).
	Verifier string `json:"verifier,omitempty"`
}

// Connection is a user's connected account at an upstream: the tokens the upstream issued, sealed by package
// connections (AES-GCM under KeyID, with the user and upstream as associated data), never in clear. Connections do
// not expire; they end when the user disconnects or the upstream refuses the refresh token.
type Connection struct {
	UserID   string `json:"user_id"`
	Upstream string `json:"upstream"`
	KeyID    string `json:"key_id"`
	Sealed   []byte `json:"sealed"`
	Scope    string `json:"scope,omitempty"`
	// TokenExpiresAt is when the sealed access token expires (zero: the upstream did not say).
	TokenExpiresAt time.Time `json:"token_expires_at,omitzero"`
	CreatedAt      time.Time `json:"created_at"`
	RefreshedAt    time.Time `json:"refreshed_at,omitzero"`
}

// AuthCode is an issued authorization code, stored under HashSecret(code). It is bound to everything the token
// request must repeat. FamilyID names the grant family its tokens will belong to, known before redemption so a
// second redemption can revoke what the first one issued.
type AuthCode struct {
	Hash          string    `json:"hash"`
	ClientID      string    `json:"client_id"`
	RedirectURI   string    `json:"redirect_uri"`
	CodeChallenge string    `json:"code_challenge"`
	Scope         string    `json:"scope"`
	Resource      string    `json:"resource"`
	User          User      `json:"user"`
	FamilyID      string    `json:"family_id"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// RefreshToken is stored under HashSecret(token). Every refresh token belongs to a grant family: the chain of
// tokens rotated from one authorization code.
type RefreshToken struct {
	Hash      string    `json:"hash"`
	FamilyID  string    `json:"family_id"`
	ClientID  string    `json:"client_id"`
	User      User      `json:"user"`
	Scope     string    `json:"scope"`
	Resource  string    `json:"resource"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// GrantExpiresAt is when the grant ends, set at its login and inherited by every rotated token: no token of the
	// family lives past it (zero: a token stored before grants had an end).
	GrantExpiresAt time.Time `json:"grant_expires_at,omitzero"`
	// RefreshLoad counts the grant's recent refreshes as of RefreshLoadAt (a leaky bucket, see package grant).
	RefreshLoad   float64   `json:"refresh_load,omitempty"`
	RefreshLoadAt time.Time `json:"refresh_load_at,omitzero"`
	// Rotation is what the token was rotated to. A backend sets it only on a token it returns with ErrReused, and
	// keeps it beside the token, not in it (nil: rotated before rotations were recorded, or restored from a dump).
	Rotation *Rotation `json:"-"`
}

// Sealed is an opaque response a rotation keeps until ExpiresAt, the end of the server's reuse window (so that a
// used token, kept much longer for replay detection, does not keep it). The zero value keeps nothing.
type Sealed struct {
	Data      []byte
	ExpiresAt time.Time
}

// Rotation records a refresh token's rotation, so that a client presenting the token again shortly after (a retry,
// a second node, a second thread) can be handed the same successor instead of being taken for a thief.
type Rotation struct {
	At        time.Time `json:"at"`        // when it was rotated: the successor's IssuedAt
	Successor string    `json:"successor"` // the successor's hash
	// Sealed is the token response that carried the successor, encrypted under a key derived from the rotated
	// token itself (package successor): the store holds no token it could hand out, only the holder of the old
	// token can read it. Empty when none was given or it expired (Sealed.ExpiresAt).
	Sealed []byte `json:"sealed,omitempty"`
	// SuccessorUsed reports that the successor was rotated in turn, or is gone (revoked, expired), as the backend
	// saw it in the same atomic step that returned this record. Not stored.
	SuccessorUsed bool `json:"-"`
}

// AccessToken records an issued JWT access token by its jti, so that revoking a family, a client or a user can
// publish every jti still alive to the revocation feed.
type AccessToken struct {
	JTI       string    `json:"jti"`
	FamilyID  string    `json:"family_id"`
	ClientID  string    `json:"client_id"`
	UserID    string    `json:"user_id"`
	Scope     string    `json:"scope"`
	Resource  string    `json:"resource"`
	IssuedAt  time.Time `json:"issued_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Grant sums up one live grant family of a user (for the account page): a family holding an unused refresh token or
// an unexpired, unrevoked access token.
type Grant struct {
	FamilyID string `json:"family_id"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Resource string `json:"resource"`
	// LastIssuedAt is when the family's newest token was issued: when the client last obtained tokens with it.
	LastIssuedAt time.Time `json:"last_issued_at"`
}

// Revocation is one entry of the revocation feed: a revoked access token's jti, kept until the token would have
// expired anyway. Seq orders the feed; readers resume from the highest Seq they saw.
type Revocation struct {
	JTI       string    `json:"jti"`
	ExpiresAt time.Time `json:"exp"`
	Seq       int64     `json:"seq"`
}

// Consent records that a user approved a client for some scopes on a resource. A remembered approval spares the
// user the consent page next time; one not remembered only tells the next consent page which scopes are new.
type Consent struct {
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	Scope     string    `json:"scope"`
	Resource  string    `json:"resource"`
	GrantedAt time.Time `json:"granted_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// NotRemembered: the user did not ask to be spared the page (records from before this field are remembered).
	NotRemembered bool `json:"not_remembered,omitempty"`
}

// SigningKey is one key of the signing key set. PrivatePEM is a PKCS#8 PEM block. A key is published from
// PublishedAt, signs from ActiveAt (after caches have seen it) and is dropped after RetireAt (when the last token it
// signed has expired).
type SigningKey struct {
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	PrivatePEM  string    `json:"private_pem"`
	PublishedAt time.Time `json:"published_at"`
	ActiveAt    time.Time `json:"active_at"`
	RetireAt    time.Time `json:"retire_at,omitzero"` // zero: in service
}

// DeviceGrant is a device authorization (RFC 8628) from the device's request until it collects its tokens, stored
// under its user code. The device code the client polls with is the user code plus a secret; only the secret's
// hash is kept. Short-lived.
type DeviceGrant struct {
	UserCode   string        `json:"user_code"` // normalized: upper case, no separator
	SecretHash string        `json:"secret_hash"`
	ClientID   string        `json:"client_id"`
	Scope      string        `json:"scope"`
	Resource   string        `json:"resource"`
	Interval   time.Duration `json:"interval"` // least time between two polls; grows by 5 s on each too-early poll
	LastPoll   time.Time     `json:"last_poll,omitzero"`
	Status     string        `json:"status"`         // DevicePending, DeviceApproved or DeviceDenied
	User       *User         `json:"user,omitempty"` // who decided
	FamilyID   string        `json:"family_id,omitempty"`
	ExpiresAt  time.Time     `json:"expires_at"`
}

// LoginPin records the GitHub account (numeric id) a login belonged to when it was first let in by name: GitHub
// logins change hands (a renamed or deleted account frees its login for anyone), ids never do.
type LoginPin struct {
	Login    string    `json:"login"` // lower case
	UserID   string    `json:"user_id"`
	PinnedAt time.Time `json:"pinned_at"`
}

// Device grant states.
const (
	DevicePending  = "pending"
	DeviceApproved = "approved"
	DeviceDenied   = "denied"
)

// SlowDownStep is what RFC 8628 §3.5 adds to the polling interval after each too-early poll.
const SlowDownStep = 5 * time.Second

// Poll applies one poll at now to g: it reports whether the poll came before the interval had passed since the
// previous one (the client must slow down), in which case the interval grows by SlowDownStep; and it records the
// poll. Both backends call it, so the rule lives in one place.
func (g *DeviceGrant) Poll(now time.Time) (tooEarly bool) {
	tooEarly = !g.LastPoll.IsZero() && now.Sub(g.LastPoll) < g.Interval
	if tooEarly {
		g.Interval += SlowDownStep
	}
	g.LastPoll = now
	return tooEarly
}

// Store is the authorization server's whole state. Every method is safe for concurrent use. Records carry their
// own expiry; a backend never returns an expired record (it answers ErrNotFound) and removes them on its own.
type Store interface {
	// Clients.
	CreateClient(ctx context.Context, c *Client) error // ErrAlreadyExists if the id is taken
	GetClient(ctx context.Context, id string) (*Client, error)
	UpdateClient(ctx context.Context, c *Client) error // ErrNotFound if absent
	DeleteClient(ctx context.Context, id string) error // ErrNotFound if absent
	ListClients(ctx context.Context) ([]*Client, error)
	// TouchClient records a use of a client: it sets LastUsedAt to usedAt and ExpiresAt to expiresAt (zero: never
	// expires) and leaves every other field as it is, atomically, so a concurrent RFC 7592 update is not undone.
	// ErrNotFound if the client is absent or expired.
	TouchClient(ctx context.Context, id string, usedAt, expiresAt time.Time) error

	// Authorization requests in flight.
	PutAuthRequest(ctx context.Context, r *AuthRequest) error // create or replace
	GetAuthRequest(ctx context.Context, id string) (*AuthRequest, error)
	DeleteAuthRequest(ctx context.Context, id string) error // absent: not an error
	// PendingCount is how many authorization requests and device grants of a client are in flight (stored, not yet
	// deleted or collected, not expired), so the server can cap what one client id costs the store.
	PendingCount(ctx context.Context, clientID string) (int, error)

	// Authorization codes. RedeemCode consumes the code atomically: the first call returns it; every later call
	// returns the same record with ErrReused (until its expiry), and a code never issued gives ErrNotFound.
	CreateCode(ctx context.Context, c *AuthCode) error // ErrAlreadyExists if the hash is taken
	RedeemCode(ctx context.Context, hash string) (*AuthCode, error)

	// Refresh tokens. RotateRefresh atomically marks oldHash used and stores next (same family), recording the
	// rotation on the old token (Rotation: at next.IssuedAt, to next.Hash, with sealed.Data until sealed.ExpiresAt).
	// If oldHash was already used it stores nothing and returns the old record, with its Rotation, and ErrReused;
	// unknown or expired: ErrNotFound. On success it returns the record it consumed. next must be in the old
	// token's family. GetRefresh of a used token likewise returns the record with its Rotation and ErrReused.
	CreateRefresh(ctx context.Context, t *RefreshToken) error // ErrAlreadyExists if the hash is taken
	GetRefresh(ctx context.Context, hash string) (*RefreshToken, error)
	RotateRefresh(ctx context.Context, oldHash string, next *RefreshToken, sealed Sealed) (*RefreshToken, error)

	// Access tokens issued (by jti), so that revoking their family, client or user publishes them. Introspection
	// reads the token itself and the feed.
	RecordAccess(ctx context.Context, t *AccessToken) error // ErrAlreadyExists if the jti is taken
	// GetAccess reads an issued access token's record (ErrNotFound once it expired): token exchange binds the token
	// it issues to the subject token's grant family.
	GetAccess(ctx context.Context, jti string) (*AccessToken, error)

	// RevokeFamily deletes every refresh token of the family and publishes every live access token of it to the
	// revocation feed. RevokeClient and RevokeUser do the same for every family of a client or of a user. They
	// return how many families had something left to revoke (so a second call returns 0). Revoking twice is not an
	// error and publishes nothing twice. A revoked family stays marked for a day: tokens stored into it afterwards
	// (a code redeemed twice at once, the loser revoking while the winner still issues) are born revoked — a refresh
	// token is not kept, an access token's jti goes straight to the feed.
	RevokeFamily(ctx context.Context, familyID string) error
	RevokeClient(ctx context.Context, clientID string) (int, error)
	RevokeUser(ctx context.Context, userID string) (int, error)
	// UserGrants lists a user's live grant families, newest use first.
	UserGrants(ctx context.Context, userID string) ([]Grant, error)
	// RevokeAccess publishes one access token's jti to the feed (it stays listed until exp).
	RevokeAccess(ctx context.Context, jti string, exp time.Time) error
	IsRevoked(ctx context.Context, jti string) (bool, error)
	// RevokedPage lists feed entries with Seq > since, oldest first, at most limit of them (limit <= 0: no bound),
	// so that no answer of the feed grows with the feed. Entries whose token has expired are left out. When entries
	// remain after the page, more is true and the cursor is the Seq of the page's last entry (pass it as since to
	// read on); otherwise the cursor is the highest Seq in the feed (the feed's counter, to pass next time).
	RevokedPage(ctx context.Context, since int64, limit int) (entries []Revocation, cursor int64, more bool, err error)

	// Device authorization grants (RFC 8628), by user code. DecideDeviceGrant records the user's answer (and, when
	// approved, who approved and the grant family its tokens will belong to) on a pending grant: ErrNotFound if it
	// is absent or expired, ErrReused if it was already decided. PollDeviceGrant applies DeviceGrant.Poll atomically
	// and returns the grant as it is after the poll; a decided grant is removed by the poll that returns it, so its
	// tokens are collected once.
	CreateDeviceGrant(ctx context.Context, g *DeviceGrant) error // ErrAlreadyExists if the user code is taken
	GetDeviceGrant(ctx context.Context, userCode string) (*DeviceGrant, error)
	DecideDeviceGrant(ctx context.Context, userCode string, approved bool, user User, familyID string) error
	PollDeviceGrant(ctx context.Context, userCode string, now time.Time) (g *DeviceGrant, tooEarly bool, err error)

	// UseJTI remembers a single-use identifier (a client assertion's jti, RFC 7523 §3) until exp: the first call
	// returns nil, every later call before exp returns ErrReused. key is the caller's (it names the issuer and the
	// jti); exp must be set (ErrNoExpiry), and an exp already past is not remembered.
	UseJTI(ctx context.Context, key string, exp time.Time) error

	// PinLogin pins login (compared case-insensitively) to the account userID the first time it is called for that
	// login, and returns the account the login is pinned to: userID then, the first one ever after. Pins do not
	// expire.
	PinLogin(ctx context.Context, login, userID string) (pinned string, err error)

	// Consents.
	PutConsent(ctx context.Context, c *Consent) error
	GetConsent(ctx context.Context, userID, clientID string) (*Consent, error)

	// Connected accounts, one per user and upstream. ListConnections lists a user's ("": every user's).
	// SwapConnection replaces the connection only while its Sealed still equals prev (what the caller read), so a
	// refresh or a re-encryption never overwrites a newer token; next nil deletes it. ErrNotFound if absent,
	// ErrConflict if it changed.
	PutConnection(ctx context.Context, c *Connection) error // create or replace
	GetConnection(ctx context.Context, userID, upstream string) (*Connection, error)
	ListConnections(ctx context.Context, userID string) ([]*Connection, error)
	SwapConnection(ctx context.Context, userID, upstream string, prev []byte, next *Connection) error
	DeleteConnection(ctx context.Context, userID, upstream string) error // ErrNotFound if absent

	// Signing keys: the whole set, read and replaced together (it is small and rarely changes).
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// CompareAndSetSigningKeys replaces the set only if it still equals prev (by KIDs and times), so two nodes
	// starting at once cannot both create a first key. It reports whether it replaced the set.
	CompareAndSetSigningKeys(ctx context.Context, prev, next []SigningKey) (bool, error)

	// Ping reports whether the backend is reachable (readiness).
	Ping(ctx context.Context) error
	// PurgeExpired removes expired records that the backend does not expire on its own; it returns how many.
	PurgeExpired(ctx context.Context) (int, error)
	Close() error
}

// AddToGrants folds a token of a family into grants (by family): the newest token's scope and time stand for it.
// Both backends build UserGrants with it.
func AddToGrants(grants map[string]*Grant, familyID, clientID, scope, resource string, issued time.Time) {
	g, ok := grants[familyID]
	if !ok {
		grants[familyID] = &Grant{FamilyID: familyID, ClientID: clientID, Scope: scope, Resource: resource, LastIssuedAt: issued}
		return
	}
	if issued.After(g.LastIssuedAt) {
		g.Scope, g.LastIssuedAt = scope, issued
	}
}

// SortedGrants lists grants newest use first.
func SortedGrants(grants map[string]*Grant) []Grant {
	out := make([]Grant, 0, len(grants))
	for _, g := range grants {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Grant) int {
		return cmp.Or(b.LastIssuedAt.Compare(a.LastIssuedAt), cmp.Compare(a.FamilyID, b.FamilyID))
	})
	return out
}

// SameSigningKeys reports whether two key sets are the same for CompareAndSetSigningKeys: the same keys (by KID and
// algorithm) in the same order with the same times. nil and empty are the same.
func SameSigningKeys(a, b []SigningKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].KID != b[i].KID || a[i].Alg != b[i].Alg || !a[i].PublishedAt.Equal(b[i].PublishedAt) ||
			!a[i].ActiveAt.Equal(b[i].ActiveAt) || !a[i].RetireAt.Equal(b[i].RetireAt) {
			return false
		}
	}
	return true
}

// ErrNoExpiry is returned when a short-lived record (authorization request, code, refresh or access token) comes
// without an expiry: every such record must end, and a backend relies on it to expire the record.
var ErrNoExpiry = errors.New("store: record has no expiry")

// RequireExpiry returns ErrNoExpiry, naming what, if exp is zero.
func RequireExpiry(what string, exp time.Time) error {
	if exp.IsZero() {
		return fmt.Errorf("%s: %w", what, ErrNoExpiry)
	}
	return nil
}

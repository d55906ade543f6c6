// Package connections keeps users' connected accounts: the tokens an upstream OAuth provider (GitLab, Linear, a
// company API) issued to the gateway for a user, so that the user's MCP server processes can act as that user there.
//
// Tokens are sealed at rest (AES-256-GCM, Keyring) with the user and upstream as associated data; the store only ever
// sees ciphertext. Token hands a user's current access token to the broker endpoint, refreshing it first when it
// expires soon: once per connection at a time, across processes and nodes, so a rotating refresh token is never spent
// twice. A connection starts with a connect link (Ticket) that is bound to one user and upstream, short-lived and
// single use.
package connections

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
)

// Errors of the service.
var (
	ErrUnknownUpstream = errors.New("connections: no such upstream is configured")
	// ErrNotConnected: the user has no connection to the upstream (never made, disconnected, or the upstream no
	// longer accepts its refresh token).
	ErrNotConnected = errors.New("connections: the user has not connected this upstream")
	// ErrUpstreamUnavailable: the upstream could not be reached or failed otherwise than by refusing the token.
	ErrUpstreamUnavailable = errors.New("connections: the upstream is unavailable")
	// ErrBadTicket: a connect link that is malformed, expired, for another upstream, or used.
	ErrBadTicket = errors.New("connections: the connect link is invalid, expired or already used")
)

// Timings of the contract with streamproxy.
const (
	// RefreshAhead: a token that expires sooner than this is refreshed before it is handed out.
	RefreshAhead = 60 * time.Second
	// TicketLifetime is how long a connect link is valid.
	TicketLifetime = 10 * time.Minute
	// refreshLease is how long one process holds a connection's refresh before another may try: longer than the
	// refresh's HTTP timeout (15 s), so a slow refresh is not made twice, and after a failed one it spaces the
	// attempts. waitForRefresh is how long another caller waits for the holder's new token before it answers
	// ErrUpstreamUnavailable (an expired token cannot be handed out meanwhile).
	refreshLease   = 20 * time.Second
	waitForRefresh = 5 * time.Second
)

// Store is the part of store.Store the service needs.
type Store interface {
	PutConnection(ctx context.Context, c *store.Connection) error
	GetConnection(ctx context.Context, userID, upstream string) (*store.Connection, error)
	ListConnections(ctx context.Context, userID string) ([]*store.Connection, error)
	SwapConnection(ctx context.Context, userID, upstream string, prev []byte, next *store.Connection) error
	DeleteConnection(ctx context.Context, userID, upstream string) error
	UseJTI(ctx context.Context, key string, exp time.Time) error
}

// Config is what the service is built from.
type Config struct {
	Issuer     string // the authserver's public URL: connect links and callbacks live under it
	Keys       *Keyring
	Upstreams  []Upstream
	HTTPClient *http.Client     // towards the upstreams (nil: a client with a 15 s timeout)
	Now        func() time.Time // nil: time.Now
	Log        *slog.Logger
	Audit      *audit.Logger // records the connections the service ends itself (nil: none recorded)
}

// eventDeleted is the audit event of a connection that ends (docs/observability.md).
const eventDeleted = "connection.deleted"

// Service is safe for concurrent use.
type Service struct {
	cfg       Config
	store     Store
	upstreams map[string]*upstream
	order     []string
	flight    singleflight.Group
}

// New checks the upstreams and returns the service.
func New(cfg Config, st Store) (*Service, error) {
	if cfg.Keys == nil {
		return nil, errors.New("connections: no encryption key (--connections-key or --connections-key-file)")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, store: st, upstreams: map[string]*upstream{}}
	for _, u := range cfg.Upstreams {
		if err := u.Check(); err != nil {
			return nil, err
		}
		if _, dup := s.upstreams[u.Name]; dup {
			return nil, fmt.Errorf("upstream %s is configured twice", u.Name)
		}
		if u.DisplayName == "" {
			u.DisplayName = u.Name
		}
		s.upstreams[u.Name] = &upstream{Upstream: u, redirect: CallbackURL(cfg.Issuer, u.Name), client: cfg.HTTPClient}
		s.order = append(s.order, u.Name)
	}
	return s, nil
}

// CallbackURL is where upstream name returns the browser: register it with the upstream's OAuth app.
func CallbackURL(issuer, name string) string { return issuer + "/connect/" + name + "/callback" }

func (s *Service) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// Upstream returns the configured upstream of that name.
func (s *Service) Upstream(name string) (Upstream, bool) {
	u, ok := s.upstreams[name]
	if !ok {
		return Upstream{}, false
	}
	return u.Upstream, true
}

// Upstreams lists the configured upstreams in their configured order.
func (s *Service) Upstreams() []Upstream {
	out := make([]Upstream, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.upstreams[n].Upstream)
	}
	return out
}

// secrets is what a connection seals.
type secrets struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	TokenType    string `json:"token_type,omitempty"`
}

// Token is a user's current access token at an upstream.
type Token struct {
	AccessToken string
	TokenType   string
	ExpiresAt   time.Time // zero: unknown
}

func (s *Service) sealed(userID, upstreamName string, sec secrets) (keyID string, data []byte) {
	plain, _ := json.Marshal(sec) // strings only: never fails
	return s.cfg.Keys.seal(plain, associated("connection", userID, upstreamName))
}

func (s *Service) open(c *store.Connection) (secrets, error) {
	plain, err := s.cfg.Keys.open(c.KeyID, c.Sealed, associated("connection", c.UserID, c.Upstream))
	if err != nil {
		return secrets{}, fmt.Errorf("connection of user %s to %s: %w", c.UserID, c.Upstream, err)
	}
	var sec secrets
	if err := json.Unmarshal(plain, &sec); err != nil {
		return secrets{}, fmt.Errorf("connection of user %s to %s: %w", c.UserID, c.Upstream, err)
	}
	return sec, nil
}

// record builds the connection record of a token the upstream issued.
func (s *Service) record(userID, upstreamName string, t *oauth2.Token, created time.Time) *store.Connection {
	keyID, data := s.sealed(userID, upstreamName, secrets{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken, TokenType: t.TokenType})
	c := &store.Connection{UserID: userID, Upstream: upstreamName, KeyID: keyID, Sealed: data, CreatedAt: created.UTC()}
	if !t.Expiry.IsZero() {
		c.TokenExpiresAt = t.Expiry.UTC()
	}
	if scope, ok := t.Extra("scope").(string); ok {
		c.Scope = scope
	} else {
		c.Scope = strings.Join(s.upstreams[upstreamName].Scopes, " ")
	}
	return c
}

// ---- connect links

type ticket struct {
	User     string `json:"u"`
	Upstream string `json:"up"`
	Expires  int64  `json:"exp"`
	Nonce    string `json:"n"`
}

// ConnectURL is a link that lets userID connect upstream name: bound to both, valid TicketLifetime, used once.
func (s *Service) ConnectURL(userID, name string) string {
	t, _ := json.Marshal(ticket{User: userID, Upstream: name, Expires: s.now().Add(TicketLifetime).Unix(), Nonce: random(16)})
	keyID, data := s.cfg.Keys.seal(t, associated("ticket", "", ""))
	v := url.Values{"ticket": {keyID + "." + base64.RawURLEncoding.EncodeToString(data)}}
	return s.cfg.Issuer + "/connect/" + name + "?" + v.Encode()
}

// ReadTicket returns the user a connect link for upstream name was made for. It does not use the link up (UseTicket).
func (s *Service) ReadTicket(raw, name string) (userID string, err error) {
	t, err := s.readTicket(raw)
	if err != nil {
		return "", err
	}
	if t.Upstream != name {
		return "", fmt.Errorf("%w: it is for another upstream", ErrBadTicket)
	}
	return t.User, nil
}

func (s *Service) readTicket(raw string) (*ticket, error) {
	keyID, b64, ok := strings.Cut(raw, ".")
	data, err := base64.RawURLEncoding.DecodeString(b64)
	if !ok || err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrBadTicket)
	}
	plain, err := s.cfg.Keys.open(keyID, data, associated("ticket", "", ""))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	var t ticket
	if err := json.Unmarshal(plain, &t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTicket, err)
	}
	if !s.now().Before(time.Unix(t.Expires, 0)) {
		return nil, fmt.Errorf("%w: expired", ErrBadTicket)
	}
	return &t, nil
}

// UseTicket uses a connect link up: the first call succeeds, every later one gets ErrBadTicket.
func (s *Service) UseTicket(ctx context.Context, raw string) error {
	t, err := s.readTicket(raw)
	if err != nil {
		return err
	}
	err = s.store.UseJTI(ctx, store.HashSecret("connect-ticket\x00"+t.Nonce), time.Unix(t.Expires, 0))
	if errors.Is(err, store.ErrReused) {
		return fmt.Errorf("%w: already used", ErrBadTicket)
	}
	return err
}

// ---- the round trip to the upstream

// AuthCodeURL is where the browser goes to authorize the gateway at upstream name, with state and the PKCE verifier
// (sent as its S256 challenge).
func (s *Service) AuthCodeURL(ctx context.Context, name, state, verifier string) (string, error) {
	u, ok := s.upstreams[name]
	if !ok {
		return "", ErrUnknownUpstream
	}
	cfg, err := u.config(ctx)
	if err != nil {
		return "", err
	}
	return cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), nil
}

// Finish redeems the code the upstream sent back and stores userID's connection (replacing an earlier one).
func (s *Service) Finish(ctx context.Context, name, userID, code, verifier string) error {
	u, ok := s.upstreams[name]
	if !ok {
		return ErrUnknownUpstream
	}
	cfg, err := u.config(ctx)
	if err != nil {
		return err
	}
	t, err := cfg.Exchange(u.withClient(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("%w: code exchange: %w", ErrUpstreamUnavailable, err)
	}
	return s.Keep(ctx, name, userID, t)
}

// Keep stores t, which upstream name issued for userID, as the user's connection (replacing an earlier one).
func (s *Service) Keep(ctx context.Context, name, userID string, t *oauth2.Token) error {
	if _, ok := s.upstreams[name]; !ok {
		return ErrUnknownUpstream
	}
	if err := s.store.PutConnection(ctx, s.record(userID, name, t, s.now())); err != nil {
		return fmt.Errorf("store the connection: %w", err)
	}
	s.cfg.Log.InfoContext(ctx, "account connected", "user", userID, "upstream", name)
	return nil
}

// ---- tokens for the broker

// Token returns userID's current access token at upstream name, refreshed first when it expires within
// RefreshAhead. ErrNotConnected when there is no connection, or the upstream refused its refresh token (the
// connection is then deleted).
func (s *Service) Token(ctx context.Context, userID, name string) (*Token, error) {
	if _, ok := s.upstreams[name]; !ok {
		return nil, ErrUnknownUpstream
	}
	c, err := s.store.GetConnection(ctx, userID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotConnected
	}
	if err != nil {
		return nil, err
	}
	if s.fresh(c) {
		sec, err := s.open(c)
		if err != nil {
			return nil, err
		}
		return token(c, sec), nil
	}
	// One refresh per connection in this process; refreshOnce makes it one across processes.
	v, err, _ := s.flight.Do(userID+"\x00"+name, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), waitForRefresh+5*time.Second)
		defer cancel()
		return s.refreshOnce(ctx, c)
	})
	if err != nil {
		return nil, err
	}
	return v.(*Token), nil
}

func (s *Service) fresh(c *store.Connection) bool {
	return c.TokenExpiresAt.IsZero() || s.now().Add(RefreshAhead).Before(c.TokenExpiresAt)
}

func token(c *store.Connection, sec secrets) *Token {
	typ := sec.TokenType
	if typ == "" || strings.EqualFold(typ, "bearer") {
		typ = "Bearer" // as the broker's contract spells it, whatever case the upstream used (RFC 6749 §7.1)
	}
	return &Token{AccessToken: sec.AccessToken, TokenType: typ, ExpiresAt: c.TokenExpiresAt}
}

// refreshOnce refreshes the connection c (as read) unless someone else has: it takes a lease on this version of the
// record in the store (a single-use mark, so one process of all wins), refreshes at the upstream and swaps the new
// record in only while the old one is still stored. A process that does not get the lease waits for the record to
// change and reads the new token. So a rotating refresh token is presented to the upstream once.
func (s *Service) refreshOnce(ctx context.Context, c *store.Connection) (*Token, error) {
	// Another caller of this process may have refreshed it while this one waited for the flight.
	if cur, err := s.store.GetConnection(ctx, c.UserID, c.Upstream); err == nil && !bytes.Equal(cur.Sealed, c.Sealed) {
		c = cur
		if s.fresh(c) {
			sec, err := s.open(c)
			if err != nil {
				return nil, err
			}
			return token(c, sec), nil
		}
	} else if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotConnected
	}
	sec, err := s.open(c)
	if err != nil {
		return nil, err
	}
	lease := store.HashSecret("connection-refresh\x00" + string(c.Sealed))
	if err := s.store.UseJTI(ctx, lease, s.now().Add(refreshLease)); errors.Is(err, store.ErrReused) {
		if s.now().Before(c.TokenExpiresAt) {
			return token(c, sec), nil // still valid: no need to wait for the other node's refresh
		}
		return s.awaitRefresh(ctx, c)
	} else if err != nil {
		return nil, err
	}
	if sec.RefreshToken == "" {
		if c.TokenExpiresAt.After(s.now()) {
			return token(c, sec), nil // nothing to refresh with: the token serves until it expires
		}
		if s.store.SwapConnection(ctx, c.UserID, c.Upstream, c.Sealed, nil) == nil {
			s.ended(ctx, c, "its token expired and the upstream gave no refresh token")
		}
		return nil, ErrNotConnected
	}
	u := s.upstreams[c.Upstream]
	cfg, err := u.config(ctx)
	if err != nil {
		return nil, err
	}
	t, err := cfg.TokenSource(u.withClient(ctx), &oauth2.Token{RefreshToken: sec.RefreshToken}).Token()
	if revoked(err) {
		switch err := s.store.SwapConnection(ctx, c.UserID, c.Upstream, c.Sealed, nil); {
		case err == nil:
			s.ended(ctx, c, "the upstream refused its refresh token")
		case !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
		return nil, ErrNotConnected
	}
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "refresh at the upstream failed", "user", c.UserID, "upstream", c.Upstream, "err", err)
		if s.now().Before(c.TokenExpiresAt) {
			return token(c, sec), nil // it serves until it expires; the next call tries again
		}
		return nil, fmt.Errorf("%w: refresh: %w", ErrUpstreamUnavailable, err)
	}
	if t.RefreshToken == "" {
		t.RefreshToken = sec.RefreshToken // the upstream keeps the refresh token (no rotation)
	}
	next := s.record(c.UserID, c.Upstream, t, c.CreatedAt)
	next.RefreshedAt = s.now().UTC()
	if _, ok := t.Extra("scope").(string); !ok {
		next.Scope = c.Scope
	}
	err = s.store.SwapConnection(ctx, c.UserID, c.Upstream, c.Sealed, next)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		// Replaced meanwhile (a reconnect) or disconnected: what is stored now is the truth.
		return s.current(ctx, c.UserID, c.Upstream)
	}
	if err != nil {
		return nil, err
	}
	return token(next, secrets{AccessToken: t.AccessToken, TokenType: t.TokenType}), nil
}

// ended logs and records a connection the service deleted itself, and why.
func (s *Service) ended(ctx context.Context, c *store.Connection, why string) {
	s.cfg.Log.InfoContext(ctx, "connection ended: "+why, "user", c.UserID, "upstream", c.Upstream)
	s.cfg.Audit.Record(ctx, audit.Event{Name: eventDeleted, Outcome: audit.OutcomeSuccess, UserID: c.UserID, Upstream: c.Upstream, Reason: why})
}

// awaitRefresh waits for another process's refresh of c to land.
func (s *Service) awaitRefresh(ctx context.Context, c *store.Connection) (*Token, error) {
	deadline := s.now().Add(waitForRefresh)
	for {
		cur, err := s.store.GetConnection(ctx, c.UserID, c.Upstream)
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrNotConnected
		}
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(cur.Sealed, c.Sealed) {
			sec, err := s.open(cur)
			if err != nil {
				return nil, err
			}
			return token(cur, sec), nil
		}
		if !s.now().Before(deadline) {
			return nil, fmt.Errorf("%w: another node's refresh did not finish", ErrUpstreamUnavailable)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Service) current(ctx context.Context, userID, name string) (*Token, error) {
	c, err := s.store.GetConnection(ctx, userID, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotConnected
	}
	if err != nil {
		return nil, err
	}
	sec, err := s.open(c)
	if err != nil {
		return nil, err
	}
	return token(c, sec), nil
}

// ---- listing, disconnecting, keys

// List returns userID's connections ("": everyone's). The records hold the tokens sealed only.
func (s *Service) List(ctx context.Context, userID string) ([]*store.Connection, error) {
	return s.store.ListConnections(ctx, userID)
}

// Disconnect deletes userID's connection to upstream name, so that the next request for its token finds none, and
// then asks the upstream to revoke its tokens (RFC 7009), when the upstream has a revocation endpoint. The
// connection is gone here whatever the upstream answers; a revocation that fails is logged, not returned.
func (s *Service) Disconnect(ctx context.Context, userID, name string) error {
	c, err := s.store.GetConnection(ctx, userID, name)
	if err == nil {
		err = s.store.DeleteConnection(ctx, userID, name)
	}
	if errors.Is(err, store.ErrNotFound) {
		return ErrNotConnected
	}
	if err != nil {
		return err
	}
	s.cfg.Log.InfoContext(ctx, "account disconnected", "user", userID, "upstream", name)
	s.revokeAtUpstream(context.WithoutCancel(ctx), c)
	return nil
}

// revokeAtUpstream revokes a deleted connection's tokens at its upstream: the refresh token first (revoking it ends
// the grant's access tokens too at most servers, RFC 7009 §2.1), then the access token, which may outlive it.
func (s *Service) revokeAtUpstream(ctx context.Context, c *store.Connection) {
	u := s.upstreams[c.Upstream]
	if u == nil { // no longer configured: nowhere to revoke
		return
	}
	sec, err := s.open(c)
	if err != nil {
		s.cfg.Log.WarnContext(ctx, "disconnected account's tokens not revoked at the upstream: they do not open", "user", c.UserID, "upstream", c.Upstream, "err", err)
		return
	}
	tokens := [][2]string{{sec.RefreshToken, "refresh_token"}, {sec.AccessToken, "access_token"}}
	for _, t := range tokens {
		if t[0] == "" {
			continue
		}
		asked, err := u.revokeToken(ctx, t[0], t[1])
		switch {
		case err != nil:
			s.cfg.Log.WarnContext(ctx, "the upstream did not revoke a disconnected account's token: it stays valid there until it expires or the user revokes the app there",
				"user", c.UserID, "upstream", c.Upstream, "token", t[1], "err", err)
		case !asked:
			s.cfg.Log.InfoContext(ctx, "the upstream has no revocation endpoint: a disconnected account's tokens stay valid there until they expire",
				"user", c.UserID, "upstream", c.Upstream)
			return
		}
	}
}

// CheckKeys opens every stored connection and seals again under the current key each one sealed under another, so
// that an old key can then be dropped. A connection that does not open under the configured keys is an error: the
// server must not start with a wrong key and serve nothing, or garbage. It returns how many it sealed again.
func (s *Service) CheckKeys(ctx context.Context) (int, error) {
	all, err := s.store.ListConnections(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range all {
		sec, err := s.open(c)
		if err != nil {
			return n, fmt.Errorf("%w: check --connections-key (the key that sealed it must be among the keys, under the same id)", err)
		}
		if c.KeyID == s.cfg.Keys.Current() {
			continue
		}
		next := *c
		next.KeyID, next.Sealed = s.sealed(c.UserID, c.Upstream, sec)
		switch err := s.store.SwapConnection(ctx, c.UserID, c.Upstream, c.Sealed, &next); {
		case err == nil:
			n++
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// Refreshed or removed meanwhile: the new record is sealed under a current key already.
		default:
			return n, err
		}
	}
	return n, nil
}

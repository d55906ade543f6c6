// Package storetrace makes each call to a store.Store a span (named "store.<Method>"), so that a trace of an
// endpoint shows where its time went: in the handler, or waiting for Redis or the embedded store's file.
package storetrace

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/internal/tracing"
)

// Store is a store.Store whose calls are spans.
type Store struct {
	next   store.Store
	tracer trace.Tracer
	system attribute.KeyValue
}

var _ store.Store = (*Store)(nil)

// Wrap returns st with its calls traced; system names the backend for the spans' db.system.name (redis,
// embedded). The tracer is the global one: with tracing off, the spans cost a context look-up.
func Wrap(st store.Store, system string) *Store {
	return &Store{next: st, tracer: tracing.Tracer("authserver/store"), system: attribute.String("db.system.name", system)}
}

func (s *Store) start(ctx context.Context, method string) (context.Context, trace.Span) {
	return s.tracer.Start(ctx, "store."+method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(s.system, attribute.String("db.operation.name", method)))
}

// end ends a call's span; the answers that are part of the contract (absent, used already, taken, changed) are not
// errors.
func end(span trace.Span, err error) {
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrReused) &&
		!errors.Is(err, store.ErrAlreadyExists) && !errors.Is(err, store.ErrConflict) {
		span.RecordError(err)
		span.SetStatus(codes.Error, "store call failed")
	}
	span.End()
}

// Close closes the store; it is not a span.
func (s *Store) Close() error { return s.next.Close() }

// Code below is one span per store call, each method the same three lines; keep it in step with store.Store (the
// compiler checks it does: Store implements store.Store).

func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	ctx, span := s.start(ctx, "CreateClient")
	err := s.next.CreateClient(ctx, c)
	end(span, err)
	return err
}

func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	ctx, span := s.start(ctx, "GetClient")
	r0, err := s.next.GetClient(ctx, id)
	end(span, err)
	return r0, err
}

func (s *Store) UpdateClient(ctx context.Context, c *store.Client) error {
	ctx, span := s.start(ctx, "UpdateClient")
	err := s.next.UpdateClient(ctx, c)
	end(span, err)
	return err
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	ctx, span := s.start(ctx, "DeleteClient")
	err := s.next.DeleteClient(ctx, id)
	end(span, err)
	return err
}

func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	ctx, span := s.start(ctx, "ListClients")
	r0, err := s.next.ListClients(ctx)
	end(span, err)
	return r0, err
}

func (s *Store) TouchClient(ctx context.Context, id string, usedAt, expiresAt time.Time) error {
	ctx, span := s.start(ctx, "TouchClient")
	err := s.next.TouchClient(ctx, id, usedAt, expiresAt)
	end(span, err)
	return err
}

func (s *Store) PutAuthRequest(ctx context.Context, r *store.AuthRequest) error {
	ctx, span := s.start(ctx, "PutAuthRequest")
	err := s.next.PutAuthRequest(ctx, r)
	end(span, err)
	return err
}

func (s *Store) GetAuthRequest(ctx context.Context, id string) (*store.AuthRequest, error) {
	ctx, span := s.start(ctx, "GetAuthRequest")
	r0, err := s.next.GetAuthRequest(ctx, id)
	end(span, err)
	return r0, err
}

func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	ctx, span := s.start(ctx, "DeleteAuthRequest")
	err := s.next.DeleteAuthRequest(ctx, id)
	end(span, err)
	return err
}

func (s *Store) PendingCount(ctx context.Context, clientID string) (int, error) {
	ctx, span := s.start(ctx, "PendingCount")
	r0, err := s.next.PendingCount(ctx, clientID)
	end(span, err)
	return r0, err
}

func (s *Store) CreateCode(ctx context.Context, c *store.AuthCode) error {
	ctx, span := s.start(ctx, "CreateCode")
	err := s.next.CreateCode(ctx, c)
	end(span, err)
	return err
}

func (s *Store) RedeemCode(ctx context.Context, hash string) (*store.AuthCode, error) {
	ctx, span := s.start(ctx, "RedeemCode")
	r0, err := s.next.RedeemCode(ctx, hash)
	end(span, err)
	return r0, err
}

func (s *Store) CreateRefresh(ctx context.Context, t *store.RefreshToken) error {
	ctx, span := s.start(ctx, "CreateRefresh")
	err := s.next.CreateRefresh(ctx, t)
	end(span, err)
	return err
}

func (s *Store) GetRefresh(ctx context.Context, hash string) (*store.RefreshToken, error) {
	ctx, span := s.start(ctx, "GetRefresh")
	r0, err := s.next.GetRefresh(ctx, hash)
	end(span, err)
	return r0, err
}

func (s *Store) RotateRefresh(ctx context.Context, oldHash string, next *store.RefreshToken, sealed store.Sealed) (*store.RefreshToken, error) {
	ctx, span := s.start(ctx, "RotateRefresh")
	r0, err := s.next.RotateRefresh(ctx, oldHash, next, sealed)
	end(span, err)
	return r0, err
}

func (s *Store) RecordAccess(ctx context.Context, t *store.AccessToken) error {
	ctx, span := s.start(ctx, "RecordAccess")
	err := s.next.RecordAccess(ctx, t)
	end(span, err)
	return err
}

func (s *Store) RevokeFamily(ctx context.Context, familyID string) error {
	ctx, span := s.start(ctx, "RevokeFamily")
	err := s.next.RevokeFamily(ctx, familyID)
	end(span, err)
	return err
}

func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	ctx, span := s.start(ctx, "RevokeClient")
	r0, err := s.next.RevokeClient(ctx, clientID)
	end(span, err)
	return r0, err
}

func (s *Store) RevokeUser(ctx context.Context, userID string) (int, error) {
	ctx, span := s.start(ctx, "RevokeUser")
	r0, err := s.next.RevokeUser(ctx, userID)
	end(span, err)
	return r0, err
}

func (s *Store) GetAccess(ctx context.Context, jti string) (*store.AccessToken, error) {
	ctx, span := s.start(ctx, "GetAccess")
	r0, err := s.next.GetAccess(ctx, jti)
	end(span, err)
	return r0, err
}

func (s *Store) UserGrants(ctx context.Context, userID string) ([]store.Grant, error) {
	ctx, span := s.start(ctx, "UserGrants")
	r0, err := s.next.UserGrants(ctx, userID)
	end(span, err)
	return r0, err
}

func (s *Store) RevokeAccess(ctx context.Context, jti string, exp time.Time) error {
	ctx, span := s.start(ctx, "RevokeAccess")
	err := s.next.RevokeAccess(ctx, jti, exp)
	end(span, err)
	return err
}

func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	ctx, span := s.start(ctx, "IsRevoked")
	r0, err := s.next.IsRevoked(ctx, jti)
	end(span, err)
	return r0, err
}

func (s *Store) RevokedPage(ctx context.Context, since int64, limit int) (entries []store.Revocation, cursor int64, more bool, err error) {
	ctx, span := s.start(ctx, "RevokedPage")
	entries, cursor, more, err = s.next.RevokedPage(ctx, since, limit)
	end(span, err)
	return
}

func (s *Store) CreateDeviceGrant(ctx context.Context, g *store.DeviceGrant) error {
	ctx, span := s.start(ctx, "CreateDeviceGrant")
	err := s.next.CreateDeviceGrant(ctx, g)
	end(span, err)
	return err
}

func (s *Store) GetDeviceGrant(ctx context.Context, userCode string) (*store.DeviceGrant, error) {
	ctx, span := s.start(ctx, "GetDeviceGrant")
	r0, err := s.next.GetDeviceGrant(ctx, userCode)
	end(span, err)
	return r0, err
}

func (s *Store) DecideDeviceGrant(ctx context.Context, userCode string, approved bool, user store.User, familyID string) error {
	ctx, span := s.start(ctx, "DecideDeviceGrant")
	err := s.next.DecideDeviceGrant(ctx, userCode, approved, user, familyID)
	end(span, err)
	return err
}

func (s *Store) PollDeviceGrant(ctx context.Context, userCode string, now time.Time) (g *store.DeviceGrant, tooEarly bool, err error) {
	ctx, span := s.start(ctx, "PollDeviceGrant")
	g, tooEarly, err = s.next.PollDeviceGrant(ctx, userCode, now)
	end(span, err)
	return
}

func (s *Store) UseJTI(ctx context.Context, key string, exp time.Time) error {
	ctx, span := s.start(ctx, "UseJTI")
	err := s.next.UseJTI(ctx, key, exp)
	end(span, err)
	return err
}

func (s *Store) PinLogin(ctx context.Context, login, userID string) (pinned string, err error) {
	ctx, span := s.start(ctx, "PinLogin")
	pinned, err = s.next.PinLogin(ctx, login, userID)
	end(span, err)
	return
}

func (s *Store) PutConnection(ctx context.Context, c *store.Connection) error {
	ctx, span := s.start(ctx, "PutConnection")
	err := s.next.PutConnection(ctx, c)
	end(span, err)
	return err
}

func (s *Store) GetConnection(ctx context.Context, userID, upstream string) (*store.Connection, error) {
	ctx, span := s.start(ctx, "GetConnection")
	r0, err := s.next.GetConnection(ctx, userID, upstream)
	end(span, err)
	return r0, err
}

func (s *Store) ListConnections(ctx context.Context, userID string) ([]*store.Connection, error) {
	ctx, span := s.start(ctx, "ListConnections")
	r0, err := s.next.ListConnections(ctx, userID)
	end(span, err)
	return r0, err
}

func (s *Store) SwapConnection(ctx context.Context, userID, upstream string, prev []byte, next *store.Connection) error {
	ctx, span := s.start(ctx, "SwapConnection")
	err := s.next.SwapConnection(ctx, userID, upstream, prev, next)
	end(span, err)
	return err
}

func (s *Store) DeleteConnection(ctx context.Context, userID, upstream string) error {
	ctx, span := s.start(ctx, "DeleteConnection")
	err := s.next.DeleteConnection(ctx, userID, upstream)
	end(span, err)
	return err
}

func (s *Store) PutConsent(ctx context.Context, c *store.Consent) error {
	ctx, span := s.start(ctx, "PutConsent")
	err := s.next.PutConsent(ctx, c)
	end(span, err)
	return err
}

func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*store.Consent, error) {
	ctx, span := s.start(ctx, "GetConsent")
	r0, err := s.next.GetConsent(ctx, userID, clientID)
	end(span, err)
	return r0, err
}

func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	ctx, span := s.start(ctx, "SigningKeys")
	r0, err := s.next.SigningKeys(ctx)
	end(span, err)
	return r0, err
}

func (s *Store) CompareAndSetSigningKeys(ctx context.Context, prev, next []store.SigningKey) (bool, error) {
	ctx, span := s.start(ctx, "CompareAndSetSigningKeys")
	r0, err := s.next.CompareAndSetSigningKeys(ctx, prev, next)
	end(span, err)
	return r0, err
}

func (s *Store) Ping(ctx context.Context) error {
	ctx, span := s.start(ctx, "Ping")
	err := s.next.Ping(ctx)
	end(span, err)
	return err
}

func (s *Store) PurgeExpired(ctx context.Context) (int, error) {
	ctx, span := s.start(ctx, "PurgeExpired")
	r0, err := s.next.PurgeExpired(ctx)
	end(span, err)
	return r0, err
}

// Package redisstore keeps the authorization server's state in Redis, so several authserver nodes can share it.
//
// It talks through go-redis' UniversalClient: a single server, Sentinel or Cluster. Every key starts with the
// prefix, which is also a hash tag ("{mcpgw}:" by default), so all keys of one store share one hash slot: the Lua
// scripts that make code redemption, refresh rotation and revocation atomic touch several keys at once, and under
// Cluster that is only allowed within one slot. The state is small (clients, live tokens, a feed of revoked jtis),
// so one slot is not a limit in practice.
//
// Every record carries a TTL equal to its own expiry; indexes live as long as their longest-lived member. A few
// keys have no TTL: clients registered without expiry, the index of client ids (pruned by ListClients and
// PurgeExpired), the signing key set, and the feed's sequence counter (a reset counter would make every feed reader
// start over).
package redisstore

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "mcpgw:"

// familyTombTTL: how long a revoked family stays marked, covering the moment between a code's redemption and the
// storing of the tokens issued for it.
const familyTombTTL = 24 * time.Hour

// Options says how to reach Redis. Either URL, or Addrs (and the fields next to it).
type Options struct {
	// URL is redis://[user:password@]host:port/db or rediss://... for TLS, as go-redis' ParseURL reads it (query
	// parameters such as dial_timeout work too). With master_name=<name> in the query it names Sentinels
	// (ParseFailoverURL); with Cluster set it names cluster nodes (ParseClusterURL).
	URL     string
	Cluster bool

	// Addrs is one host:port (single server), several (Cluster), or the Sentinels when MasterName is set.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	TLS        bool
	DB         int

	// TLSConfig, if set, is used for TLS (with URL: for rediss://; with Addrs: instead of the default), e.g. to trust
	// a private CA. Its ServerName defaults to the host being dialled.
	TLSConfig *tls.Config

	// Prefix starts every key; default DefaultPrefix. Without a {hash tag} it is wrapped in one ("a:" -> "{a}:").
	Prefix string
	Logger *slog.Logger
}

// Store is the Redis backend.
type Store struct {
	rdb    redis.UniversalClient
	p      string // key prefix with hash tag
	logger *slog.Logger
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open connects and checks that Redis answers.
func Open(ctx context.Context, o Options) (*Store, error) {
	rdb, err := newClient(o)
	if err != nil {
		return nil, err
	}
	s := &Store{rdb: rdb, p: hashTagPrefix(o.Prefix), logger: cmp.Or(o.Logger, slog.Default())}
	if err := s.Ping(ctx); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return s, nil
}

func newClient(o Options) (redis.UniversalClient, error) {
	if o.URL != "" {
		switch {
		case strings.Contains(o.URL, "master_name="):
			fo, err := redis.ParseFailoverURL(o.URL)
			if err != nil {
				return nil, fmt.Errorf("redis: bad Sentinel URL: %w", err)
			}
			fo.TLSConfig = withTLS(fo.TLSConfig, o.TLSConfig)
			return redis.NewFailoverClient(fo), nil
		case o.Cluster:
			co, err := redis.ParseClusterURL(o.URL)
			if err != nil {
				return nil, fmt.Errorf("redis: bad cluster URL: %w", err)
			}
			co.TLSConfig = withTLS(co.TLSConfig, o.TLSConfig)
			return redis.NewClusterClient(co), nil
		default:
			ro, err := redis.ParseURL(o.URL)
			if err != nil {
				return nil, fmt.Errorf("redis: bad URL (want redis://host:port/db or rediss:// for TLS): %w", err)
			}
			ro.TLSConfig = withTLS(ro.TLSConfig, o.TLSConfig)
			return redis.NewClient(ro), nil
		}
	}
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis: neither a URL nor addresses given")
	}
	uo := &redis.UniversalOptions{
		Addrs: o.Addrs, MasterName: o.MasterName, Username: o.Username, Password: o.Password, DB: o.DB,
		IsClusterMode: o.Cluster,
	}
	if o.TLS || o.TLSConfig != nil {
		uo.TLSConfig = withTLS(&tls.Config{MinVersion: tls.VersionTLS12}, o.TLSConfig)
	}
	return redis.NewUniversalClient(uo), nil
}

// withTLS applies a caller's TLS settings where the URL asked for TLS (parsed is nil for redis://).
func withTLS(parsed, custom *tls.Config) *tls.Config {
	if parsed == nil || custom == nil {
		return parsed
	}
	cfg := custom.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = parsed.ServerName
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

func hashTagPrefix(p string) string {
	if p == "" {
		p = DefaultPrefix
	}
	if strings.Contains(p, "{") && strings.Contains(p, "}") {
		return p
	}
	return "{" + strings.TrimSuffix(p, ":") + "}:"
}

// unavailable wraps a backend failure so handlers can answer 503.
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: redis %s: %w", store.ErrUnavailable, op, err)
}

// ttl is the time left until exp in milliseconds; 0 means exp has passed. A zero exp means no expiry (-1).
func ttl(exp time.Time) int64 {
	if exp.IsZero() {
		return -1
	}
	return max(time.Until(exp).Milliseconds(), 0)
}

func nowMS() int64 { return time.Now().UnixMilli() }

func expired(exp time.Time) bool { return !exp.IsZero() && !time.Now().Before(exp) }

// ---- keys

func (s *Store) k(parts ...string) string { return s.p + strings.Join(parts, ":") }

func (s *Store) clientKey(id string) string { return s.k("client", id) }
func (s *Store) clientsKey() string         { return s.k("clients") }
func (s *Store) feedKeys() []string {
	return []string{s.k("feed"), s.k("feed-exp"), s.k("feed-seq")}
}
func (s *Store) consentKey(userID, clientID string) string {
	// The length prefix keeps ("a:b","c") and ("a","b:c") apart.
	return s.k("consent", strconv.Itoa(len(userID)), userID, clientID)
}

// ---- JSON records

func getJSON[T any](ctx context.Context, s *Store, key, what string) (*T, error) {
	b, err := s.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get "+what, err)
	}
	v := new(T)
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("redis: decode %s: %w", what, err)
	}
	return v, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("redisstore: encode %T: %v", v, err)) // store types always encode
	}
	return string(b)
}

// set stores v until exp; nx: only if absent, xx: only if present. It reports whether it stored.
func (s *Store) set(ctx context.Context, key string, v any, exp time.Time, nx, xx bool, what string) (bool, error) {
	t := ttl(exp)
	if t == 0 {
		return false, nil // already expired: nothing to keep
	}
	args := redis.SetArgs{}
	if t > 0 {
		args.TTL = time.Duration(t) * time.Millisecond
	}
	if nx {
		args.Mode = "NX"
	} else if xx {
		args.Mode = "XX"
	}
	err := s.rdb.SetArgs(ctx, key, mustJSON(v), args).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("set "+what, err)
	}
	return true, nil
}

// ---- clients

func (s *Store) CreateClient(ctx context.Context, c *store.Client) error {
	ok, err := s.set(ctx, s.clientKey(c.ID), c, c.ExpiresAt, true, false, "client")
	if err != nil {
		return err
	}
	if !ok {
		if expired(c.ExpiresAt) {
			return nil
		}
		return fmt.Errorf("client %q: %w", c.ID, store.ErrAlreadyExists)
	}
	if err := s.rdb.SAdd(ctx, s.clientsKey(), c.ID).Err(); err != nil {
		return unavailable("index client", err)
	}
	return nil
}

func (s *Store) GetClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := getJSON[store.Client](ctx, s, s.clientKey(id), "client")
	if err != nil {
		return nil, err
	}
	if expired(c.ExpiresAt) {
		return nil, fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	return c, nil
}

func (s *Store) UpdateClient(ctx context.Context, c *store.Client) error {
	if expired(c.ExpiresAt) {
		return s.DeleteClient(ctx, c.ID)
	}
	ok, err := s.set(ctx, s.clientKey(c.ID), c, c.ExpiresAt, false, true, "client")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("client %q: %w", c.ID, store.ErrNotFound)
	}
	return nil
}

func (s *Store) DeleteClient(ctx context.Context, id string) error {
	n, err := s.rdb.Del(ctx, s.clientKey(id)).Result()
	if err != nil {
		return unavailable("delete client", err)
	}
	if err := s.rdb.SRem(ctx, s.clientsKey(), id).Err(); err != nil {
		return unavailable("unindex client", err)
	}
	if n == 0 {
		return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) ListClients(ctx context.Context) ([]*store.Client, error) {
	ids, err := s.rdb.SMembers(ctx, s.clientsKey()).Result()
	if err != nil {
		return nil, unavailable("list clients", err)
	}
	if len(ids) == 0 {
		return []*store.Client{}, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.clientKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, unavailable("list clients", err)
	}
	out := make([]*store.Client, 0, len(ids))
	var gone []any
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			gone = append(gone, ids[i]) // expired: drop it from the index
			continue
		}
		c := new(store.Client)
		if err := json.Unmarshal([]byte(str), c); err != nil {
			return nil, fmt.Errorf("redis: decode client %q: %w", ids[i], err)
		}
		if !expired(c.ExpiresAt) {
			out = append(out, c)
		}
	}
	if len(gone) > 0 {
		if err := s.rdb.SRem(ctx, s.clientsKey(), gone...).Err(); err != nil {
			s.logger.Warn("redis: cannot prune client index", "err", err)
		}
	}
	slices.SortFunc(out, func(a, b *store.Client) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ---- authorization requests

func (s *Store) PutAuthRequest(ctx context.Context, r *store.AuthRequest) error {
	if err := store.RequireExpiry("authorization request", r.ExpiresAt); err != nil {
		return err
	}
	ms := ttl(r.ExpiresAt)
	if ms == 0 {
		return nil
	}
	err := putPending.Run(ctx, s.rdb, []string{s.k("authreq", r.ID), s.pendingKey(r.ClientID)},
		mustJSON(r), ms, "authreq:"+r.ID, r.ExpiresAt.UnixMilli()).Err()
	if err != nil {
		return unavailable("put authorization request", err)
	}
	return nil
}

// pendingKey indexes a client's requests in flight: a sorted set of "authreq:<id>" and "device:<code>" by expiry.
func (s *Store) pendingKey(clientID string) string { return s.k("pending", clientID) }

func (s *Store) PendingCount(ctx context.Context, clientID string) (int, error) {
	n, err := countPending.Run(ctx, s.rdb, []string{s.pendingKey(clientID)}, nowMS()).Int()
	if err != nil {
		return 0, unavailable("count pending requests", err)
	}
	return n, nil
}

func (s *Store) GetAuthRequest(ctx context.Context, id string) (*store.AuthRequest, error) {
	r, err := getJSON[store.AuthRequest](ctx, s, s.k("authreq", id), "authorization request")
	if err != nil {
		return nil, err
	}
	if expired(r.ExpiresAt) {
		return nil, fmt.Errorf("authorization request: %w", store.ErrNotFound)
	}
	return r, nil
}

func (s *Store) DeleteAuthRequest(ctx context.Context, id string) error {
	if err := deleteAuthRequest.Run(ctx, s.rdb, []string{s.k("authreq", id)}, s.p, "authreq:"+id).Err(); err != nil {
		return unavailable("delete authorization request", err)
	}
	return nil
}

// ---- authorization codes

func (s *Store) CreateCode(ctx context.Context, c *store.AuthCode) error {
	if err := store.RequireExpiry("authorization code", c.ExpiresAt); err != nil {
		return err
	}
	ok, err := s.set(ctx, s.k("code", c.Hash), c, c.ExpiresAt, true, false, "authorization code")
	if err != nil {
		return err
	}
	if !ok && !expired(c.ExpiresAt) {
		return fmt.Errorf("authorization code: %w", store.ErrAlreadyExists)
	}
	return nil
}

// scriptResult runs a script that answers {status} or {status, json}.
func (s *Store) scriptResult(ctx context.Context, sc *redis.Script, keys []string, args ...any) (int64, string, error) {
	res, err := sc.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return 0, "", err
	}
	if len(res) == 0 {
		return 0, "", errors.New("empty script reply")
	}
	status, _ := res[0].(int64)
	var payload string
	if len(res) > 1 {
		payload, _ = res[1].(string)
	}
	return status, payload, nil
}

func (s *Store) RedeemCode(ctx context.Context, hash string) (*store.AuthCode, error) {
	status, payload, err := s.scriptResult(ctx, redeemCode, []string{s.k("code", hash), s.k("code-used", hash)})
	if err != nil {
		return nil, unavailable("redeem code", err)
	}
	if status == 0 {
		return nil, fmt.Errorf("authorization code: %w", store.ErrNotFound)
	}
	c := new(store.AuthCode)
	if err := json.Unmarshal([]byte(payload), c); err != nil {
		return nil, fmt.Errorf("redis: decode authorization code: %w", err)
	}
	if expired(c.ExpiresAt) {
		return nil, fmt.Errorf("authorization code: %w", store.ErrNotFound)
	}
	if status == 2 {
		return c, fmt.Errorf("authorization code: %w", store.ErrReused)
	}
	return c, nil
}

// ---- refresh tokens

func (s *Store) CreateRefresh(ctx context.Context, t *store.RefreshToken) error {
	ms := ttl(t.ExpiresAt)
	if ms == 0 {
		return nil
	}
	if ms < 0 {
		return store.RequireExpiry("refresh token", t.ExpiresAt)
	}
	status, err := createRefresh.Run(ctx, s.rdb,
		[]string{s.k("rt", t.Hash), s.k("fam-rt", t.FamilyID), s.k("client-fams", t.ClientID), s.k("user-fams", t.User.ID),
			s.k("fam-revoked", t.FamilyID)},
		mustJSON(t), ms, t.Hash, t.FamilyID).Int64()
	if err != nil {
		return unavailable("create refresh token", err)
	}
	if status == 2 {
		return fmt.Errorf("refresh token: %w", store.ErrAlreadyExists)
	}
	return nil
}

func (s *Store) GetRefresh(ctx context.Context, hash string) (*store.RefreshToken, error) {
	res, err := getRefresh.Run(ctx, s.rdb, []string{s.k("rt", hash), s.k("rt-used", hash), s.k("rt-sealed", hash)}, s.p).Slice()
	if err != nil {
		return nil, unavailable("get refresh token", err)
	}
	status, t, err := refreshReply(res)
	if err != nil {
		return nil, err
	}
	if status == 0 || expired(t.ExpiresAt) {
		return nil, fmt.Errorf("refresh token: %w", store.ErrNotFound)
	}
	if status == 2 {
		return t, fmt.Errorf("refresh token: %w", store.ErrReused)
	}
	return t, nil
}

// refreshReply reads a refresh script's answer: {status}, {status, token json}, or for a used token {2, token json,
// rotation json or "", 1 if the successor is used or gone, sealed response or ""}.
func refreshReply(res []any) (int64, *store.RefreshToken, error) {
	if len(res) == 0 {
		return 0, nil, errors.New("redis: empty script reply")
	}
	status, _ := res[0].(int64)
	if len(res) < 2 {
		return status, nil, nil
	}
	payload, _ := res[1].(string)
	t := new(store.RefreshToken)
	if err := json.Unmarshal([]byte(payload), t); err != nil {
		return 0, nil, fmt.Errorf("redis: decode refresh token: %w", err)
	}
	if len(res) < 5 {
		return status, t, nil
	}
	if raw, _ := res[2].(string); raw != "" {
		rot := new(store.Rotation)
		if err := json.Unmarshal([]byte(raw), rot); err != nil {
			return 0, nil, fmt.Errorf("redis: decode refresh token rotation: %w", err)
		}
		spent, _ := res[3].(int64)
		rot.SuccessorUsed = spent == 1
		if sealed, _ := res[4].(string); sealed != "" {
			rot.Sealed = []byte(sealed)
		}
		t.Rotation = rot
	}
	return status, t, nil
}

func (s *Store) RotateRefresh(ctx context.Context, oldHash string, next *store.RefreshToken, sealed store.Sealed) (*store.RefreshToken, error) {
	if err := store.RequireExpiry("refresh token", next.ExpiresAt); err != nil {
		return nil, err
	}
	// A next token that has already expired is pointless but harmless: keep it 1 ms, the rotation still happens.
	ms := max(ttl(next.ExpiresAt), 1)
	rot := mustJSON(&store.Rotation{At: next.IssuedAt, Successor: next.Hash})
	sealedMS := int64(0)
	if len(sealed.Data) > 0 {
		sealedMS = max(ttl(sealed.ExpiresAt), 0)
	}
	res, err := rotateRefresh.Run(ctx, s.rdb,
		[]string{s.k("rt", oldHash), s.k("rt-used", oldHash), s.k("rt", next.Hash), s.k("fam-rt", next.FamilyID),
			s.k("fam-revoked", next.FamilyID), s.k("client-fams", next.ClientID), s.k("user-fams", next.User.ID),
			s.k("rt-sealed", oldHash)},
		mustJSON(next), ms, next.Hash, next.FamilyID, rot, s.p, string(sealed.Data), sealedMS).Slice()
	if err != nil {
		return nil, unavailable("rotate refresh token", err)
	}
	status, old, err := refreshReply(res)
	if err != nil {
		return nil, err
	}
	switch status {
	case 0:
		return nil, fmt.Errorf("refresh token: %w", store.ErrNotFound)
	case 1:
		return old, nil
	case 2:
		if expired(old.ExpiresAt) {
			return nil, fmt.Errorf("refresh token: %w", store.ErrNotFound)
		}
		return old, fmt.Errorf("refresh token: %w", store.ErrReused)
	case 3:
		return nil, fmt.Errorf("store: rotate refresh token: next token is in family %q, not %q", next.FamilyID, old.FamilyID)
	default:
		return nil, fmt.Errorf("refresh token: %w", store.ErrAlreadyExists)
	}
}

// ---- access tokens and revocation

func (s *Store) RecordAccess(ctx context.Context, t *store.AccessToken) error {
	ms := ttl(t.ExpiresAt)
	if ms == 0 {
		return nil
	}
	if ms < 0 {
		return store.RequireExpiry("access token", t.ExpiresAt)
	}
	keys := append([]string{s.k("at", t.JTI), s.k("fam-at", t.FamilyID), s.k("client-fams", t.ClientID),
		s.k("user-fams", t.UserID), s.k("fam-revoked", t.FamilyID)}, s.feedKeys()...)
	status, err := recordAccess.Run(ctx, s.rdb, keys, mustJSON(t), ms, t.JTI, t.FamilyID, t.ExpiresAt.UnixMilli(), nowMS()).Int64()
	if err != nil {
		return unavailable("record access token", err)
	}
	if status == 2 {
		return fmt.Errorf("access token: %w", store.ErrAlreadyExists)
	}
	return nil
}

func (s *Store) RevokeFamily(ctx context.Context, familyID string) error {
	err := revokeFamily.Run(ctx, s.rdb, s.feedKeys(), s.p, familyID, nowMS(), familyTombTTL.Milliseconds()).Err()
	if err != nil {
		return unavailable("revoke family", err)
	}
	return nil
}

func (s *Store) revokeSet(ctx context.Context, set string) (int, error) {
	keys := append([]string{set}, s.feedKeys()...)
	n, err := revokeFamilies.Run(ctx, s.rdb, keys, s.p, nowMS(), familyTombTTL.Milliseconds()).Int()
	if err != nil {
		return 0, unavailable("revoke families", err)
	}
	return n, nil
}

func (s *Store) RevokeClient(ctx context.Context, clientID string) (int, error) {
	return s.revokeSet(ctx, s.k("client-fams", clientID))
}

func (s *Store) RevokeUser(ctx context.Context, userID string) (int, error) {
	return s.revokeSet(ctx, s.k("user-fams", userID))
}

func (s *Store) RevokeAccess(ctx context.Context, jti string, exp time.Time) error {
	if err := revokeAccess.Run(ctx, s.rdb, s.feedKeys(), jti, exp.UnixMilli(), nowMS()).Err(); err != nil {
		return unavailable("revoke access token", err)
	}
	return nil
}

func (s *Store) IsRevoked(ctx context.Context, jti string) (bool, error) {
	exp, err := s.rdb.HGet(ctx, s.k("feed-exp"), jti).Int64()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("read revocation", err)
	}
	return exp > nowMS(), nil
}

func (s *Store) RevokedPage(ctx context.Context, since int64, limit int) ([]store.Revocation, int64, bool, error) {
	res, err := revokedSince.Run(ctx, s.rdb, s.feedKeys(), since, nowMS(), max(limit, 0)).Slice()
	if err != nil {
		return nil, 0, false, unavailable("read revocation feed", err)
	}
	if len(res) < 2 || (len(res)-2)%3 != 0 {
		return nil, 0, false, fmt.Errorf("redis: malformed revocation feed reply (%d items)", len(res))
	}
	cursor, _ := res[0].(int64)
	more, _ := res[1].(int64)
	out := make([]store.Revocation, 0, (len(res)-2)/3)
	for i := 2; i < len(res); i += 3 {
		jti, _ := res[i].(string)
		exp, err1 := strconv.ParseInt(fmt.Sprint(res[i+1]), 10, 64)
		seq, err2 := strconv.ParseInt(fmt.Sprint(res[i+2]), 10, 64)
		if err1 != nil || err2 != nil {
			return nil, 0, false, fmt.Errorf("redis: malformed revocation feed entry for %q", jti)
		}
		out = append(out, store.Revocation{JTI: jti, ExpiresAt: time.UnixMilli(exp).UTC(), Seq: seq})
	}
	return out, cursor, more == 1, nil
}

// ---- login pins

func (s *Store) PinLogin(ctx context.Context, login, userID string) (string, error) {
	key := s.k("pin", strings.ToLower(login))
	pin := store.LoginPin{Login: strings.ToLower(login), UserID: userID, PinnedAt: time.Now().UTC()}
	// SET NX GET: stores the pin if there is none and returns the one there was, in one step.
	prev, err := s.rdb.SetArgs(ctx, key, mustJSON(pin), redis.SetArgs{Mode: "NX", Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return userID, nil
	}
	if err != nil {
		return "", unavailable("pin login", err)
	}
	var had store.LoginPin
	if err := json.Unmarshal([]byte(prev), &had); err != nil {
		return "", fmt.Errorf("redis: decode login pin: %w", err)
	}
	return had.UserID, nil
}

// ---- consents

func (s *Store) PutConsent(ctx context.Context, c *store.Consent) error {
	_, err := s.set(ctx, s.consentKey(c.UserID, c.ClientID), c, c.ExpiresAt, false, false, "consent")
	return err
}

func (s *Store) GetConsent(ctx context.Context, userID, clientID string) (*store.Consent, error) {
	c, err := getJSON[store.Consent](ctx, s, s.consentKey(userID, clientID), "consent")
	if err != nil {
		return nil, err
	}
	if expired(c.ExpiresAt) {
		return nil, fmt.Errorf("consent: %w", store.ErrNotFound)
	}
	return c, nil
}

// ---- signing keys

func (s *Store) rawKeys(ctx context.Context) (string, []store.SigningKey, error) {
	raw, err := s.rdb.Get(ctx, s.k("keys")).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, unavailable("read signing keys", err)
	}
	var keys []store.SigningKey
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		return "", nil, fmt.Errorf("redis: decode signing keys: %w", err)
	}
	return raw, keys, nil
}

func (s *Store) SigningKeys(ctx context.Context) ([]store.SigningKey, error) {
	_, keys, err := s.rawKeys(ctx)
	return keys, err
}

// CompareAndSetSigningKeys compares in Go (by KIDs and times), then swaps only if the stored bytes are still the
// ones it compared: the script makes the check-and-set one step.
func (s *Store) CompareAndSetSigningKeys(ctx context.Context, prev, next []store.SigningKey) (bool, error) {
	raw, cur, err := s.rawKeys(ctx)
	if err != nil {
		return false, err
	}
	if !store.SameSigningKeys(cur, prev) {
		return false, nil
	}
	if next == nil {
		next = []store.SigningKey{}
	}
	n, err := casKeys.Run(ctx, s.rdb, []string{s.k("keys")}, raw, mustJSON(next)).Int()
	if err != nil {
		return false, unavailable("write signing keys", err)
	}
	return n == 1, nil
}

// ---- upkeep

func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// PurgeExpired removes what Redis does not expire by itself: feed entries past their exp (the feed keys live as
// long as their newest entry) and index entries of expired clients.
func (s *Store) PurgeExpired(ctx context.Context) (int, error) {
	fk := s.feedKeys()
	n, err := purgeFeed.Run(ctx, s.rdb, fk[:2], nowMS()).Int()
	if err != nil {
		return 0, unavailable("purge feed", err)
	}
	ids, err := s.rdb.SMembers(ctx, s.clientsKey()).Result()
	if err != nil {
		return 0, unavailable("purge clients", err)
	}
	for chunk := range slices.Chunk(ids, batch) {
		cmds := make([]*redis.IntCmd, len(chunk))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range chunk {
				cmds[i] = p.Exists(ctx, s.clientKey(id))
			}
			return nil
		}); err != nil {
			return 0, unavailable("purge clients", err)
		}
		var gone []any
		for i, c := range cmds {
			if c.Val() == 0 {
				gone = append(gone, chunk[i])
			}
		}
		if len(gone) > 0 {
			if err := s.rdb.SRem(ctx, s.clientsKey(), gone...).Err(); err != nil {
				return 0, unavailable("purge clients", err)
			}
			n += len(gone)
		}
	}
	return n, nil
}

// Close releases the connections; later calls answer ErrUnavailable.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	return s.rdb.Close()
}

package redisstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/storetest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// go-redis logs every failed dial to stderr; the Redis-down test causes many on purpose.
type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(discardLogger{})
	os.Exit(m.Run())
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openPrefixed opens a store with its own key prefix on a shared server, so subtests never see each other's data.
func openPrefixed(t *testing.T, url string) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(context.Background(), redisstore.Options{URL: url, Prefix: "t-" + rand.Text() + ":", Logger: quiet()})
	require.NoError(t, err)
	return s
}

func TestContract(t *testing.T) {
	r := testenv.StartRedis(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openPrefixed(t, r.URL) })
}

func TestPersistence(t *testing.T) {
	r := testenv.StartRedis(t)
	storetest.RunPersistence(t,
		func(t *testing.T) store.Store { return openPrefixed(t, r.URL) },
		func(t *testing.T, s store.Store) store.Store {
			r.Restart(t)
			return s // the same client reconnects
		})
}

// Every key has a TTL, except the three documented exceptions, and every key carries the hash-tagged prefix.
func TestKeysHaveTTLAndHashTag(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	s, err := redisstore.Open(ctx, redisstore.Options{URL: r.URL, Logger: quiet()})
	require.NoError(t, err)
	defer s.Close()

	exp := time.Now().Add(time.Hour)
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: "forever", IssuedAt: time.Now()}))
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: "c", IssuedAt: time.Now(), ExpiresAt: exp}))
	require.NoError(t, s.PutAuthRequest(ctx, &store.AuthRequest{ID: "r", ExpiresAt: exp}))
	require.NoError(t, s.CreateCode(ctx, &store.AuthCode{Hash: "code", FamilyID: "f", ExpiresAt: exp}))
	_, err = s.RedeemCode(ctx, "code")
	require.NoError(t, err)
	u := store.User{ID: "u"}
	require.NoError(t, s.CreateRefresh(ctx, &store.RefreshToken{Hash: "r1", FamilyID: "f", ClientID: "c", User: u, ExpiresAt: exp}))
	_, err = s.RotateRefresh(ctx, "r1", &store.RefreshToken{Hash: "r2", FamilyID: "f", ClientID: "c", User: u, ExpiresAt: exp},
		store.Sealed{Data: []byte("sealed"), ExpiresAt: time.Now().Add(time.Minute)})
	require.NoError(t, err)
	require.NoError(t, s.RecordAccess(ctx, &store.AccessToken{JTI: "j", FamilyID: "f", ClientID: "c", UserID: "u", ExpiresAt: exp}))
	require.NoError(t, s.RecordAccess(ctx, &store.AccessToken{JTI: "j2", FamilyID: "g", ClientID: "c", UserID: "u", ExpiresAt: exp}))
	require.NoError(t, s.RevokeFamily(ctx, "g"))
	require.NoError(t, s.PutConsent(ctx, &store.Consent{UserID: "u", ClientID: "c", ExpiresAt: exp}))
	_, err = s.CompareAndSetSigningKeys(ctx, nil, []store.SigningKey{{KID: "k"}})
	require.NoError(t, err)

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	keys, err := rdb.Keys(ctx, "*").Result()
	require.NoError(t, err)
	noTTL := map[string]bool{"{mcpgw}:client:forever": true, "{mcpgw}:keys": true, "{mcpgw}:feed-seq": true, "{mcpgw}:clients": true}
	assert.Greater(t, len(keys), 12)
	for _, k := range keys {
		assert.True(t, strings.HasPrefix(k, "{mcpgw}:"), "key %q lacks the hash-tagged prefix", k)
		ttl, err := rdb.PTTL(ctx, k).Result()
		require.NoError(t, err)
		if noTTL[k] {
			continue
		}
		assert.Greater(t, ttl, time.Duration(0), "key %q has no TTL", k)
	}
}

// When Redis is down every call fails with ErrUnavailable (handlers answer 503); when it is back, calls work again.
func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	s := openPrefixed(t, r.URL)
	defer s.Close()
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: "c", IssuedAt: time.Now()}))

	r.Stop()
	exp := time.Now().Add(time.Hour)
	checks := map[string]error{
		"Ping":          s.Ping(ctx),
		"CreateClient":  s.CreateClient(ctx, &store.Client{ID: "d"}),
		"CreateCode":    s.CreateCode(ctx, &store.AuthCode{Hash: "h", ExpiresAt: exp}),
		"RevokeFamily":  s.RevokeFamily(ctx, "f"),
		"RevokeAccess":  s.RevokeAccess(ctx, "j", exp),
		"RecordAccess":  s.RecordAccess(ctx, &store.AccessToken{JTI: "j", ExpiresAt: exp}),
		"CreateRefresh": s.CreateRefresh(ctx, &store.RefreshToken{Hash: "h", FamilyID: "f", ExpiresAt: exp}),
		"PutConsent":    s.PutConsent(ctx, &store.Consent{UserID: "u", ClientID: "c", ExpiresAt: exp}),
	}
	_, checks["GetClient"] = s.GetClient(ctx, "c")
	_, checks["ListClients"] = s.ListClients(ctx)
	_, checks["RedeemCode"] = s.RedeemCode(ctx, "h")
	_, checks["GetRefresh"] = s.GetRefresh(ctx, "h")
	_, checks["RotateRefresh"] = s.RotateRefresh(ctx, "h", &store.RefreshToken{Hash: "h2", FamilyID: "f", ExpiresAt: exp}, store.Sealed{})
	_, checks["IsRevoked"] = s.IsRevoked(ctx, "j")
	_, _, _, checks["RevokedPage"] = s.RevokedPage(ctx, 0, 0)
	_, checks["RevokeClient"] = s.RevokeClient(ctx, "c")
	_, checks["SigningKeys"] = s.SigningKeys(ctx)
	_, checks["CompareAndSetSigningKeys"] = s.CompareAndSetSigningKeys(ctx, nil, nil)
	_, checks["PurgeExpired"] = s.PurgeExpired(ctx)
	for name, err := range checks {
		assert.ErrorIs(t, err, store.ErrUnavailable, name)
		assert.NotErrorIs(t, err, store.ErrNotFound, name)
	}

	r.Restart(t)
	// go-redis holds back new dials for a moment after failed ones; the store recovers on its own once it redials.
	require.Eventually(t, func() bool { return s.Ping(ctx) == nil }, 15*time.Second, 50*time.Millisecond,
		"the store never reconnected after Redis came back")
	got, err := s.GetClient(ctx, "c")
	require.NoError(t, err)
	assert.Equal(t, "c", got.ID)
}

func TestOpenUnreachable(t *testing.T) {
	port := testenv.FreePort(t)
	_, err := redisstore.Open(context.Background(), redisstore.Options{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), Logger: quiet()})
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrUnavailable)
}

func TestOpenBadOptions(t *testing.T) {
	_, err := redisstore.Open(context.Background(), redisstore.Options{URL: "http://localhost:6379"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis://")
	_, err = redisstore.Open(context.Background(), redisstore.Options{})
	require.Error(t, err)
}

// Addrs (the UniversalClient path) reaches the same server, and prefixes keep two stores apart.
func TestAddrsAndPrefix(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	a, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{r.Addr}, Prefix: "a:", Logger: quiet()})
	require.NoError(t, err)
	defer a.Close()
	b, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{r.Addr}, Prefix: "b:", Logger: quiet()})
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, a.CreateClient(ctx, &store.Client{ID: "x", IssuedAt: time.Now()}))
	_, err = b.GetClient(ctx, "x")
	assert.ErrorIs(t, err, store.ErrNotFound)
	_, err = a.GetClient(ctx, "x")
	assert.NoError(t, err)

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	n, err := rdb.Exists(ctx, "{a}:client:x").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "prefix a: becomes the hash tag {a}:")
}

func BenchmarkRedis(b *testing.B) {
	r := testenv.StartRedis(b)
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store {
		s, err := redisstore.Open(context.Background(), redisstore.Options{URL: r.URL, Prefix: "b-" + rand.Text() + ":", Logger: quiet()})
		require.NoError(b, err)
		return s
	})
}

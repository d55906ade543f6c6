package backend_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/backend"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/storetest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// go-redis logs failed dials to stderr; the tests cause some on purpose.
type discardLogger struct{}

func (discardLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(discardLogger{})
	os.Exit(m.Run())
}

func TestEmbeddedByDefault(t *testing.T) {
	ctx := context.Background()
	var logs strings.Builder
	path := filepath.Join(t.TempDir(), "nested", "dir", "state.jsonl")
	s, err := backend.Open(ctx, backend.Config{DataFile: path, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer s.Close()
	assert.IsType(t, &embedded.Store{}, s)
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: "c", IssuedAt: time.Now()}))
	_, err = os.Stat(path)
	assert.NoError(t, err, "the data file and its directories are created")
	assert.Contains(t, logs.String(), "SINGLE NODE")
	assert.Contains(t, logs.String(), "store: embedded")
}

func TestMemoryOnly(t *testing.T) {
	var logs strings.Builder
	s, err := backend.Open(context.Background(), backend.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer s.Close()
	assert.IsType(t, &embedded.Store{}, s)
	assert.Contains(t, logs.String(), "lost on exit")
}

func TestRedisWhenConfigured(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	var logs strings.Builder
	// redis-server has no password; go-redis lets that AUTH pass, which lets us check the password is not logged.
	url := "redis://:secret-in-url@" + r.Addr + "/0"
	s, err := backend.Open(ctx, backend.Config{RedisURL: url, DataFile: filepath.Join(t.TempDir(), "unused.jsonl"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	defer s.Close()
	assert.IsType(t, &redisstore.Store{}, s)
	assert.Contains(t, logs.String(), "store: Redis")
	assert.NotContains(t, logs.String(), "secret-in-url")

	s2, err := backend.Open(ctx, backend.Config{RedisAddrs: []string{r.Addr}, RedisPrefix: "other:"})
	require.NoError(t, err)
	defer s2.Close()
	assert.IsType(t, &redisstore.Store{}, s2)
	require.NoError(t, s2.Ping(ctx))
}

// A configured but unreachable Redis is an error, never a silent fallback to the embedded store.
func TestRedisUnreachableIsAnError(t *testing.T) {
	port := testenv.FreePort(t)
	_, err := backend.Open(context.Background(), backend.Config{RedisAddrs: []string{"127.0.0.1:" + strconv.Itoa(port)},
		DataFile: filepath.Join(t.TempDir(), "state.jsonl"), Logger: slog.New(slog.DiscardHandler)})
	require.Error(t, err)
	assert.ErrorIs(t, err, store.ErrUnavailable)
}

// A dump of either backend restores into the other, so that an operator can move between the embedded store and
// Redis through a backup.
func TestCrossBackendRestore(t *testing.T) {
	r := testenv.StartRedis(t)
	openEmbedded := func(t *testing.T) store.Store {
		s, err := backend.Open(context.Background(), backend.Config{DataFile: filepath.Join(t.TempDir(), "s.jsonl"), Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		return s
	}
	openRedis := func(t *testing.T) store.Store {
		s, err := backend.Open(context.Background(), backend.Config{RedisURL: r.URL, RedisPrefix: "t-" + rand.Text() + ":", Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		return s
	}
	t.Run("EmbeddedToRedis", func(t *testing.T) { storetest.RunCrossRestore(t, openEmbedded, openRedis) })
	t.Run("RedisToEmbedded", func(t *testing.T) { storetest.RunCrossRestore(t, openRedis, openEmbedded) })
}

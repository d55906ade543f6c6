package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// backends opens a fresh store of each kind; the admin commands must behave the same on both.
func backends(t *testing.T) map[string]func(t *testing.T) store.Store {
	return map[string]func(t *testing.T) store.Store{
		"embedded": func(t *testing.T) store.Store {
			s, err := embedded.Open(filepath.Join(t.TempDir(), "state.jsonl"), quiet)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		},
		"redis": func(t *testing.T) store.Store {
			r := testenv.StartRedis(t)
			s, err := redisstore.Open(context.Background(), redisstore.Options{URL: r.URL, Logger: quiet})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// run runs one command against s, as `authserver <args>` would, and returns what it printed.
func run(t *testing.T, s store.Store, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := admin.Run(context.Background(), args, func(context.Context) (store.Store, error) { return nopCloser{s}, nil }, &out)
	return out.String(), err
}

// nopCloser keeps the test's store open across commands (Run closes what open returns).
type nopCloser struct{ store.Store }

func (nopCloser) Close() error { return nil }

func (n nopCloser) Dump(ctx context.Context, w io.Writer) error {
	return n.Store.(store.Backup).Dump(ctx, w)
}

func (n nopCloser) Restore(ctx context.Context, r io.Reader) error {
	return n.Store.(store.Backup).Restore(ctx, r)
}

// seed registers a client with one grant for user 42: a refresh token and a live access token.
func seed(t *testing.T, s store.Store, clientID string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: clientID, Name: "Claude", TokenEndpointAuth: "none",
		RedirectURIs: []string{"http://127.0.0.1/callback"}, GrantTypes: []string{"authorization_code"},
		RegistrationTokenHash: store.HashSecret("rat-" + clientID), IssuedAt: now}))
	fam := "fam-" + clientID
	require.NoError(t, s.CreateRefresh(ctx, &store.RefreshToken{Hash: store.HashSecret("rt-" + clientID), FamilyID: fam,
		ClientID: clientID, User: store.User{ID: "42", Login: "octo"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}))
	require.NoError(t, s.RecordAccess(ctx, &store.AccessToken{JTI: "jti-" + clientID, FamilyID: fam, ClientID: clientID,
		UserID: "42", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}))
}

func TestCommands(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t)
			seed(t, s, "client-a")
			seed(t, s, "client-b")

			out, err := run(t, s, "clients", "list")
			require.NoError(t, err)
			assert.Contains(t, out, "client-a")
			assert.Contains(t, out, "http://127.0.0.1/callback")
			assert.NotContains(t, out, store.HashSecret("rat-client-a"), "hashes are never shown")

			out, err = run(t, s, "clients", "list", "--json")
			require.NoError(t, err)
			var listed []map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &listed))
			assert.Len(t, listed, 2)

			out, err = run(t, s, "clients", "show", "client-a", "--json")
			require.NoError(t, err)
			assert.Contains(t, out, `"client_name": "Claude"`)

			_, err = run(t, s, "clients", "show", "nope")
			assert.ErrorContains(t, err, `no client with id "nope"`)

			// Destructive commands need --yes, and without it change nothing.
			_, err = run(t, s, "clients", "delete", "client-a")
			require.ErrorIs(t, err, admin.ErrNotConfirmed)
			_, err = s.GetClient(ctx, "client-a")
			require.NoError(t, err)

			out, err = run(t, s, "clients", "delete", "client-a", "--yes")
			require.NoError(t, err)
			assert.Contains(t, out, "revoked 1 grant")
			_, err = s.GetClient(ctx, "client-a")
			require.ErrorIs(t, err, store.ErrNotFound)
			revoked, err := s.IsRevoked(ctx, "jti-client-a")
			require.NoError(t, err)
			assert.True(t, revoked, "deleting a client publishes its live access tokens to the revocation feed")
			_, err = s.GetRefresh(ctx, store.HashSecret("rt-client-a"))
			assert.Error(t, err, "deleting a client removes its refresh tokens")

			out, err = run(t, s, "tokens", "list", "--user", "42")
			require.NoError(t, err)
			assert.Contains(t, out, "fam-client-b")
			assert.Contains(t, out, "octo (42)")
			assert.NotContains(t, out, "fam-client-a", "a deleted client's grant is gone")
			assert.NotContains(t, out, store.HashSecret("rt-client-b"), "token hashes are never shown")
			out, err = run(t, s, "tokens", "list", "--client", "client-b", "--json")
			require.NoError(t, err)
			var grants []map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &grants))
			require.Len(t, grants, 1)
			assert.Equal(t, "fam-client-b", grants[0]["grant"])
			assert.Equal(t, 1.0, grants[0]["live_access_tokens"])
			out, err = run(t, s, "tokens", "list", "--user", "7", "--json")
			require.NoError(t, err)
			assert.JSONEq(t, `[]`, out)

			_, err = run(t, s, "tokens", "revoke", "--user", "42")
			require.ErrorIs(t, err, admin.ErrNotConfirmed)
			_, err = run(t, s, "tokens", "revoke", "--user", "octo", "--yes")
			assert.ErrorContains(t, err, "not a GitHub numeric user id")
			out, err = run(t, s, "tokens", "revoke", "--user", "42", "--yes", "--json")
			require.NoError(t, err)
			assert.JSONEq(t, `{"user_id":"42","revoked_grants":1}`, out)
			revoked, err = s.IsRevoked(ctx, "jti-client-b")
			require.NoError(t, err)
			assert.True(t, revoked)
			out, err = run(t, s, "tokens", "list", "--user", "42", "--json")
			require.NoError(t, err)
			assert.JSONEq(t, `[]`, out, "a revoked grant is not listed")

			_, err = run(t, s, "purge")
			require.NoError(t, err)
			_, err = run(t, s, "frobnicate")
			assert.ErrorContains(t, err, "unknown command")
		})
	}
}

// A backup taken from one backend restores into the other.
func TestBackupRestoreAcrossBackends(t *testing.T) {
	b := backends(t)
	from, to := b["embedded"](t), b["redis"](t)
	seed(t, from, "client-a")

	file := filepath.Join(t.TempDir(), "backup.jsonl")
	_, err := run(t, from, "backup", "--out", file)
	require.NoError(t, err)
	_, err = run(t, from, "backup", "--out", file)
	assert.Error(t, err, "an existing backup file is never overwritten")

	_, err = run(t, to, "restore", "--in", file)
	require.ErrorIs(t, err, admin.ErrNotConfirmed)
	_, err = to.GetClient(context.Background(), "client-a")
	require.ErrorIs(t, err, store.ErrNotFound, "an unconfirmed restore changes nothing")

	_, err = run(t, to, "restore", "--in", file, "--yes")
	require.NoError(t, err)
	c, err := to.GetClient(context.Background(), "client-a")
	require.NoError(t, err)
	assert.Equal(t, "Claude", c.Name)
	rt, err := to.GetRefresh(context.Background(), store.HashSecret("rt-client-a"))
	require.NoError(t, err)
	assert.Equal(t, "42", rt.User.ID)
}

func TestGenerateSecrets(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, admin.Run(context.Background(), []string{"generate-secrets", "--json"}, nil, &out))
	var a, b map[string]string
	require.NoError(t, json.Unmarshal(out.Bytes(), &a))
	out.Reset()
	require.NoError(t, admin.Run(context.Background(), []string{"generate-secrets", "--json"}, nil, &out))
	require.NoError(t, json.Unmarshal(out.Bytes(), &b))
	assert.Len(t, a["REDIS_PASSWORD"], 43, "32 random bytes, base64url")
	assert.NotEqual(t, a["REDIS_PASSWORD"], b["REDIS_PASSWORD"])
}

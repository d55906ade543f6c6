package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/socket"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/connections"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// target is a store and where the commands run on it.
type target struct {
	store store.Store
	run   admin.Runner
}

// backends opens a fresh store of each kind; the admin commands must behave the same on each, and the same when
// they reach an embedded store through the admin socket of the server that holds it.
func backends(t *testing.T) map[string]func(t *testing.T) target {
	return map[string]func(t *testing.T) target{
		"embedded": func(t *testing.T) target {
			s, err := embedded.Open(filepath.Join(t.TempDir(), "state.jsonl"), quiet)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return target{s, local(s)}
		},
		"redis": func(t *testing.T) target {
			r := testenv.StartRedis(t)
			s, err := redisstore.Open(context.Background(), redisstore.Options{URL: r.URL, Logger: quiet})
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return target{s, local(s)}
		},
		"embedded, server running": func(t *testing.T) target {
			path := filepath.Join(t.TempDir(), "state.jsonl")
			s, err := embedded.Open(path, quiet)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			km := &keys.Manager{Store: s, MaxTokenLifetime: time.Hour}
			c, _ := serveSocket(t, socket.PathFor(path), service.New(s, km, service.Options{InServer: true}))
			return target{s, c}
		},
	}
}

func local(s store.Store) admin.Runner {
	return admin.Local(service.New(s, &keys.Manager{Store: s, MaxTokenLifetime: time.Hour}, service.Options{}))
}

// serveSocket plays a running server: its own service, on which it runs the command lines sent to the admin socket
// at path until stop is called or the test ends. It returns a client of that socket.
func serveSocket(t *testing.T, path string, inServer *service.Service) (c admin.Runner, stop func()) {
	t.Helper()
	ln, err := socket.Listen(path, quiet)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- socket.Serve(ctx, ln, socket.Runner(admin.Local(inServer)), quiet) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			require.NoError(t, <-served)
		})
	}
	t.Cleanup(stop)
	client, err := socket.Dial(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { client.Close() })
	return client.Run, stop
}

// run runs one command line with r, as `authserver <args>` would, and returns what it printed.
func run(t *testing.T, r admin.Runner, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := admin.Run(context.Background(), args, func(context.Context) (admin.Runner, func() error, error) {
		return r, func() error { return nil }, nil
	}, &out, io.Discard)
	return out.String(), err
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
			tg := open(t)
			s, runner := tg.store, tg.run
			seed(t, s, "client-a")
			seed(t, s, "client-b")

			out, err := run(t, runner, "clients", "list")
			require.NoError(t, err)
			assert.Contains(t, out, "client-a")
			assert.Contains(t, out, "http://127.0.0.1/callback")
			assert.NotContains(t, out, store.HashSecret("rat-client-a"), "hashes are never shown")

			out, err = run(t, runner, "clients", "list", "--json")
			require.NoError(t, err)
			var listed []map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &listed))
			assert.Len(t, listed, 2)

			out, err = run(t, runner, "clients", "show", "client-a", "--json")
			require.NoError(t, err)
			assert.Contains(t, out, `"client_name": "Claude"`)

			_, err = run(t, runner, "clients", "show", "nope")
			assert.ErrorContains(t, err, `no client with id "nope"`)
			assert.ErrorIs(t, err, service.ErrNotFound)

			// Destructive commands need --yes, and without it change nothing.
			_, err = run(t, runner, "clients", "delete", "client-a")
			require.ErrorIs(t, err, service.ErrNotConfirmed)
			_, err = s.GetClient(ctx, "client-a")
			require.NoError(t, err)

			out, err = run(t, runner, "clients", "delete", "client-a", "--yes")
			require.NoError(t, err)
			assert.Contains(t, out, "revoked 1 grant")
			_, err = s.GetClient(ctx, "client-a")
			require.ErrorIs(t, err, store.ErrNotFound)
			revoked, err := s.IsRevoked(ctx, "jti-client-a")
			require.NoError(t, err)
			assert.True(t, revoked, "deleting a client publishes its live access tokens to the revocation feed")
			feed, _, _, err := s.RevokedPage(ctx, 0, 0)
			require.NoError(t, err)
			require.Len(t, feed, 1, "the feed the edge polls has the revocation at once")
			assert.Equal(t, "jti-client-a", feed[0].JTI)
			_, err = s.GetRefresh(ctx, store.HashSecret("rt-client-a"))
			assert.Error(t, err, "deleting a client removes its refresh tokens")

			out, err = run(t, runner, "tokens", "list", "--user", "42")
			require.NoError(t, err)
			assert.Contains(t, out, "fam-client-b")
			assert.Contains(t, out, "octo (42)")
			assert.NotContains(t, out, "fam-client-a", "a deleted client's grant is gone")
			assert.NotContains(t, out, store.HashSecret("rt-client-b"), "token hashes are never shown")
			out, err = run(t, runner, "tokens", "list", "--client", "client-b", "--json")
			require.NoError(t, err)
			var grants []map[string]any
			require.NoError(t, json.Unmarshal([]byte(out), &grants))
			require.Len(t, grants, 1)
			assert.Equal(t, "fam-client-b", grants[0]["grant"])
			assert.Equal(t, 1.0, grants[0]["live_access_tokens"])
			out, err = run(t, runner, "tokens", "list", "--user", "7", "--json")
			require.NoError(t, err)
			assert.JSONEq(t, `[]`, out)

			_, err = run(t, runner, "tokens", "revoke", "--user", "42")
			require.ErrorIs(t, err, service.ErrNotConfirmed)
			_, err = run(t, runner, "tokens", "revoke", "--user", "octo", "--yes")
			assert.ErrorContains(t, err, "is not a user id (the token's sub, X-User-Id): a GitHub numeric user id, or <provider>:<sub>")
			assert.ErrorIs(t, err, service.ErrInvalid)
			out, err = run(t, runner, "tokens", "revoke", "--user", "google:110248495921238986420", "--yes", "--json")
			require.NoError(t, err, "an OpenID provider's user")
			assert.JSONEq(t, `{"user_id":"google:110248495921238986420","revoked_grants":0}`, out)
			out, err = run(t, runner, "tokens", "revoke", "--user", "42", "--yes", "--json")
			require.NoError(t, err)
			assert.JSONEq(t, `{"user_id":"42","revoked_grants":1}`, out)
			revoked, err = s.IsRevoked(ctx, "jti-client-b")
			require.NoError(t, err)
			assert.True(t, revoked)
			out, err = run(t, runner, "tokens", "list", "--user", "42", "--json")
			require.NoError(t, err)
			assert.JSONEq(t, `[]`, out, "a revoked grant is not listed")

			_, err = run(t, runner, "purge")
			require.NoError(t, err)
			_, err = run(t, runner, "frobnicate")
			assert.ErrorContains(t, err, "unknown command")
		})
	}
}

// A backup taken from one backend restores into the other.
func TestBackupRestoreAcrossBackends(t *testing.T) {
	b := backends(t)
	from, to := b["embedded"](t), b["redis"](t)
	seed(t, from.store, "client-a")

	file := filepath.Join(t.TempDir(), "backup.jsonl")
	_, err := run(t, from.run, "backup", "--out", file)
	require.NoError(t, err)
	_, err = run(t, from.run, "backup", "--out", file)
	assert.Error(t, err, "an existing backup file is never overwritten")

	_, err = run(t, to.run, "restore", "--in", file)
	require.ErrorIs(t, err, service.ErrNotConfirmed)
	_, err = to.store.GetClient(context.Background(), "client-a")
	require.ErrorIs(t, err, store.ErrNotFound, "an unconfirmed restore changes nothing")

	_, err = run(t, to.run, "restore", "--in", file, "--yes")
	require.NoError(t, err)
	c, err := to.store.GetClient(context.Background(), "client-a")
	require.NoError(t, err)
	assert.Equal(t, "Claude", c.Name)
	rt, err := to.store.GetRefresh(context.Background(), store.HashSecret("rt-client-a"))
	require.NoError(t, err)
	assert.Equal(t, "42", rt.User.ID)
}

func TestGenerateSecrets(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, admin.Run(context.Background(), []string{"generate-secrets", "--json"}, nil, &out, io.Discard))
	var a, b map[string]string
	require.NoError(t, json.Unmarshal(out.Bytes(), &a))
	out.Reset()
	require.NoError(t, admin.Run(context.Background(), []string{"generate-secrets", "--json"}, nil, &out, io.Discard))
	require.NoError(t, json.Unmarshal(out.Bytes(), &b))
	assert.Len(t, a["REDIS_PASSWORD"], 43, "32 random bytes, base64url")
	assert.NotEqual(t, a["REDIS_PASSWORD"], b["REDIS_PASSWORD"])
	assert.Len(t, a["STREAMPROXY_SECRET"], 43)
	assert.NotEqual(t, a["REDIS_PASSWORD"], a["STREAMPROXY_SECRET"])
	assert.Len(t, a["BROKER_SECRET"], 43)
	_, err := connections.ParseKeys(a["CONNECTIONS_KEY"])
	assert.NoError(t, err, "a key --connections-key takes")
}

// The files a command line names are opened by the command line's process, wherever the command runs: a backup
// that fails half-way leaves no file behind, and a restore's file is the command's input.
func TestFilesAreTheOperators(t *testing.T) {
	file := filepath.Join(t.TempDir(), "backup.jsonl")
	failing := func(_ context.Context, _ []string, stdin io.Reader, stdout, _ io.Writer) error {
		assert.Nil(t, stdin, "a backup reads no input")
		_, _ = io.WriteString(stdout, "half a dump\n")
		return errors.New("disk on fire")
	}
	_, err := run(t, failing, "backup", "--out", file)
	require.ErrorContains(t, err, "disk on fire")
	_, err = os.Stat(file)
	assert.ErrorIs(t, err, os.ErrNotExist, "a partial backup does not pass for a whole one")

	require.NoError(t, os.WriteFile(file, []byte("a dump\n"), 0o600))
	var got []byte
	reading := func(_ context.Context, _ []string, stdin io.Reader, _, _ io.Writer) error {
		got, err = io.ReadAll(stdin)
		return err
	}
	_, err = run(t, reading, "restore", "--in", file, "--yes")
	require.NoError(t, err)
	assert.Equal(t, "a dump\n", string(got))
}

// Where a command runs (the server, for a command sent to its admin socket) it never opens a file the command line
// names: the server's files and working directory are not the operator's.
func TestRunnerOpensNoFile(t *testing.T) {
	s, err := embedded.Open("", quiet)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	seed(t, s, "client-a")
	file := filepath.Join(t.TempDir(), "backup.jsonl")
	var out bytes.Buffer
	require.NoError(t, local(s)(context.Background(), []string{"backup", "--out", file}, nil, &out, io.Discard))
	assert.Contains(t, out.String(), `"client_id":"client-a"`, "the backup went to the command's output")
	_, err = os.Stat(file)
	assert.ErrorIs(t, err, os.ErrNotExist, "and no file was created")

	require.NoError(t, os.WriteFile(file, out.Bytes(), 0o600))
	err = local(s)(context.Background(), []string{"restore", "--in", file, "--yes"}, nil, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "no input", "a restore reads its input, not the file it names")
}

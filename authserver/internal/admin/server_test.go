package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/socket"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/backend"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// runningServer opens an embedded store as the server does (holding its file) and serves the admin socket next
// to it, with the server's own key manager.
func runningServer(t *testing.T) (path string, s *embedded.Store, km *keys.Manager, c admin.Runner, stop func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "authserver.jsonl")
	s, err := embedded.Open(path, quiet)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	km = &keys.Manager{Store: s, MaxTokenLifetime: time.Hour}
	require.NoError(t, km.Ensure(context.Background()))
	c, stop = serveSocket(t, socket.PathFor(path), service.New(s, km, service.Options{InServer: true}))
	return path, s, km, c, stop
}

// The commands find their way by themselves: the store's file when no server holds it, the running server's admin
// socket when one does, and the file again once it has stopped.
func TestConnect(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "authserver.jsonl")
	var logged bytes.Buffer
	target := admin.Target{Store: backend.Config{DataFile: path, Logger: quiet}, MaxTokenLifetime: time.Hour,
		Logger: slog.New(slog.NewTextHandler(&logged, nil))}

	_, done, err := admin.Connect(ctx, target)
	require.NoError(t, err)
	_, err = embedded.Open(path, quiet)
	assert.ErrorIs(t, err, embedded.ErrInUse, "no server: the command opens the file")
	require.NoError(t, done())
	assert.Empty(t, logged.String())

	// A server holds the file.
	s, err := embedded.Open(path, quiet)
	require.NoError(t, err)
	seed(t, s, "client-a")
	_, _, err = admin.Connect(ctx, target)
	require.ErrorIs(t, err, embedded.ErrInUse, "held, and no socket: the store's own error...")
	assert.ErrorContains(t, err, "no authserver answers on its admin socket", "...saying what was tried")

	km := &keys.Manager{Store: s, MaxTokenLifetime: time.Hour}
	_, stop := serveSocket(t, socket.PathFor(path), service.New(s, km, service.Options{InServer: true}))
	runner, done, err := admin.Connect(ctx, target)
	require.NoError(t, err)
	assert.Contains(t, logged.String(), "the command runs there, through its admin socket",
		"the server holds the file: the command goes through its socket")
	out, err := run(t, runner, "clients", "revoke", "client-a", "--yes")
	require.NoError(t, err)
	assert.Equal(t, "revoked 1 grant(s) of client client-a\n", out)
	revoked, err := s.IsRevoked(ctx, "jti-client-a")
	require.NoError(t, err)
	assert.True(t, revoked, "the server's store has the revocation at once")
	require.NoError(t, done())

	stop()
	_, err = os.Stat(socket.PathFor(path))
	assert.ErrorIs(t, err, os.ErrNotExist, "the server removes its socket when it stops")
	require.NoError(t, s.Close())
	logged.Reset()
	runner, done, err = admin.Connect(ctx, target)
	require.NoError(t, err)
	assert.Empty(t, logged.String(), "the server stopped: the file again")
	defer done()
	out, err = run(t, runner, "tokens", "list", "--client", "client-a", "--json")
	require.NoError(t, err)
	assert.JSONEq(t, `[]`, out, "the revocation made through the server was kept in the file")
	out, err = run(t, runner, "clients", "list", "--json")
	require.NoError(t, err)
	var clients []service.Client
	require.NoError(t, json.Unmarshal([]byte(out), &clients))
	require.Len(t, clients, 1)
	assert.Equal(t, "client-a", clients[0].ID)
}

// On Redis nothing changes: the commands open Redis, whether servers run or not.
func TestConnectRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	var logged bytes.Buffer
	runner, done, err := admin.Connect(context.Background(), admin.Target{
		Store: backend.Config{RedisURL: r.URL, Logger: quiet}, MaxTokenLifetime: time.Hour, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	require.NoError(t, err)
	defer done()
	out, err := run(t, runner, "clients", "list", "--json")
	require.NoError(t, err)
	assert.JSONEq(t, `[]`, out)
	assert.Empty(t, logged.String(), "no admin socket on Redis")
}

// A backup taken through the running server is one instant of its state, even while the server keeps writing:
// a grant being revoked (its refresh token removed and its access token published to the feed, in one change) is
// never half revoked in it.
func TestBackupFromRunningServerIsConsistent(t *testing.T) {
	_, s, _, c, _ := runningServer(t)
	ctx := context.Background()
	const grants = 300
	fam := func(i int) string { return fmt.Sprintf("fam-%d", i) }
	now := time.Now()
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: "c", TokenEndpointAuth: "none", IssuedAt: now,
		RedirectURIs: []string{"http://127.0.0.1/cb"}, RegistrationTokenHash: store.HashSecret("rat")}))
	for i := range grants {
		require.NoError(t, s.CreateRefresh(ctx, &store.RefreshToken{Hash: store.HashSecret(fam(i)), FamilyID: fam(i),
			ClientID: "c", User: store.User{ID: "42"}, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}))
		require.NoError(t, s.RecordAccess(ctx, &store.AccessToken{JTI: "jti-" + fam(i), FamilyID: fam(i), ClientID: "c",
			UserID: "42", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}))
	}

	revoking := make(chan error, 1)
	go func() {
		for i := range grants {
			if err := s.RevokeFamily(ctx, fam(i)); err != nil {
				revoking <- err
				return
			}
			if i%10 == 9 {
				time.Sleep(time.Millisecond) // keep revoking while several backups are taken
			}
		}
		revoking <- nil
	}()
	var backups []*bytes.Buffer
	for done := false; !done; {
		select {
		case err := <-revoking:
			require.NoError(t, err)
			done = true
		default:
		}
		out, err := run(t, c, "backup")
		require.NoError(t, err)
		backups = append(backups, bytes.NewBufferString(out))
	}

	mixed := 0
	for n, b := range backups {
		live, published := map[string]bool{}, map[string]bool{}
		require.NoError(t, store.ReadDump(b, func(r store.DumpRecord) error {
			switch r.Kind {
			case store.DumpRefresh:
				live[r.Refresh.FamilyID] = true
			case store.DumpRevocation:
				published[r.Revocation.JTI] = true
			}
			return nil
		}), "backup %d is a whole dump", n)
		for i := range grants {
			require.NotEqual(t, live[fam(i)], published["jti-"+fam(i)], "backup %d holds grant %d half revoked", n, i)
		}
		if len(live) > 0 && len(published) > 0 {
			mixed++
		}
	}
	t.Logf("%d backups, %d taken while revocations went on", len(backups), mixed)
	assert.Positive(t, mixed, "at least one backup was taken while revocations went on")
}

// The backup through the socket is exactly the store's dump; a restore is refused while the server runs, changes
// nothing, and says what to do.
func TestBackupAndRestoreWithServerRunning(t *testing.T) {
	_, s, _, c, _ := runningServer(t)
	ctx := context.Background()
	seed(t, s, "client-a")

	file := filepath.Join(t.TempDir(), "backup.jsonl")
	_, err := run(t, c, "backup", "--out", file)
	require.NoError(t, err)
	info, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "a backup holds the signing keys: owner only")
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	var direct bytes.Buffer
	require.NoError(t, s.Dump(ctx, &direct))
	assert.Equal(t, withoutHeader(t, direct.Bytes()), withoutHeader(t, got), "the server's snapshot, record for record")

	// A backup of another state, holding a client this one lacks.
	other, err := embedded.Open("", quiet)
	require.NoError(t, err)
	seed(t, other, "client-x")
	otherFile := filepath.Join(t.TempDir(), "other.jsonl")
	var dump bytes.Buffer
	require.NoError(t, other.Dump(ctx, &dump))
	require.NoError(t, os.WriteFile(otherFile, dump.Bytes(), 0o600))

	_, err = run(t, c, "restore", "--in", otherFile, "--yes")
	require.ErrorIs(t, err, service.ErrServerRunning)
	assert.ErrorContains(t, err, "stop it first")
	_, err = s.GetClient(ctx, "client-x")
	assert.ErrorIs(t, err, store.ErrNotFound, "the refused restore changed nothing")
}

func withoutHeader(t *testing.T, dump []byte) []byte {
	t.Helper()
	_, rest, ok := bytes.Cut(dump, []byte("\n"))
	require.True(t, ok)
	return rest
}

// rotate-keys through the socket runs on the server's own key manager: the new key is published at once, not
// after the manager's next re-read of the store.
func TestRotateKeysInRunningServer(t *testing.T) {
	_, _, km, c, _ := runningServer(t)
	ctx := context.Background()
	out, err := run(t, c, "rotate-keys", "--activate-after", "10m", "--json")
	require.NoError(t, err)
	var rot service.KeyRotation
	require.NoError(t, json.Unmarshal([]byte(out), &rot), out)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), rot.ActiveAt, time.Minute)
	jwks, err := km.JWKS(ctx)
	require.NoError(t, err)
	var kids []string
	for _, k := range jwks {
		kids = append(kids, k.Kid)
	}
	assert.Contains(t, kids, rot.KID)
	assert.Len(t, kids, 2, "the old key stays published")

	_, err = run(t, c, "rotate-keys", "--activate-after", "-1m")
	assert.ErrorIs(t, err, service.ErrInvalid)
}

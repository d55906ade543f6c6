package socket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// fake is a service whose answers the tests choose; the embedded unset Service makes any other call panic.
type fake struct {
	service.Service
	clients []service.Client
	backup  func(w io.Writer) error
}

func (f *fake) ListClients(context.Context) ([]service.Client, error) { return f.clients, nil }
func (f *fake) GetClient(_ context.Context, id string) (service.Client, error) {
	return service.Client{}, &service.Error{Kind: service.ErrNotFound, Msg: "no client with id " + id}
}
func (f *fake) Backup(_ context.Context, w io.Writer) error { return f.backup(w) }
func (f *fake) Restore(context.Context, io.Reader) error {
	return &service.Error{Kind: service.ErrServerRunning, Msg: "stop the server first"} // as a running server does
}

// logs collects what the server logged.
type logs struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// serve serves svc on a socket in a fresh directory, with allow deciding who may connect.
func serve(t *testing.T, svc service.Service, allow func(int) bool) (string, *logs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authserver.jsonl.sock")
	l := &logs{}
	log := slog.New(slog.NewTextHandler(l, nil))
	ln, err := listen(path, log, allow)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, svc, log) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return path, l
}

func anyone(int) bool { return true }

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), path)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestOwnerOnly(t *testing.T) {
	f := &fake{clients: []service.Client{{ID: "client-a"}}}
	path, _ := serve(t, f, anyone)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, info.Mode().Type())
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "only the owner can connect")

	clients, err := dial(t, path).ListClients(context.Background())
	require.NoError(t, err)
	assert.Equal(t, f.clients, clients)
}

// A process of another user is refused even if it got a connection (peer credentials, Linux).
func TestOtherUserRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are checked on Linux only")
	}
	var asked []int
	var mu sync.Mutex
	path, l := serve(t, &fake{}, func(uid int) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, uid)
		return false // as if the peer were another user
	})
	_, err := dial(t, path).ListClients(context.Background())
	require.Error(t, err)
	assert.ErrorContains(t, err, "only the user the authserver runs as")
	mu.Lock()
	assert.Contains(t, asked, os.Getuid(), "the peer's real uid was checked")
	mu.Unlock()
	assert.Contains(t, l.String(), "refused a connection from another user")

	path, _ = serve(t, &fake{}, func(uid int) bool { return uid == os.Getuid() })
	_, err = dial(t, path).ListClients(context.Background())
	assert.NoError(t, err, "the owner gets in")
}

func TestErrorsKeepTheirKind(t *testing.T) {
	path, l := serve(t, &fake{}, anyone)
	_, err := dial(t, path).GetClient(context.Background(), "nope")
	require.ErrorIs(t, err, service.ErrNotFound)
	assert.Equal(t, "no client with id nope", err.Error(), "the server's message, as a local store gives it")
	assert.Contains(t, l.String(), "command=clients.show")
	assert.Contains(t, l.String(), "kind=not_found")
}

// The server refuses a restore before the dump is uploaded (Expect: 100-continue).
func TestRestoreRefusedBeforeUpload(t *testing.T) {
	path, _ := serve(t, &fake{}, anyone)
	body := &countingReader{r: bytes.NewReader(make([]byte, 8<<20))}
	err := dial(t, path).Restore(context.Background(), body)
	require.ErrorIs(t, err, service.ErrServerRunning)
	assert.Less(t, body.n, int64(64<<10), "the 8 MiB dump was not sent")
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A backup that fails half-way is an error, never a short file taken for a whole one.
func TestBackupIncomplete(t *testing.T) {
	f := &fake{backup: func(w io.Writer) error {
		_, _ = w.Write(bytes.Repeat([]byte("x"), 100<<10))
		return errors.New("disk on fire")
	}}
	path, _ := serve(t, f, anyone)
	var out bytes.Buffer
	err := dial(t, path).Backup(context.Background(), &out)
	require.Error(t, err)
	assert.ErrorContains(t, err, "disk on fire")

	f.backup = func(w io.Writer) error { return errors.New("store closed") }
	err = dial(t, path).Backup(context.Background(), &out)
	assert.ErrorContains(t, err, "store closed", "a failure before the first byte is an ordinary error")

	f.backup = func(w io.Writer) error { _, err := io.WriteString(w, "whole\n"); return err }
	out.Reset()
	require.NoError(t, dial(t, path).Backup(context.Background(), &out))
	assert.Equal(t, "whole\n", out.String())
}

func TestStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.sock")
	// A socket file nobody answers on (a server that was killed).
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())
	_, err = os.Stat(path)
	require.NoError(t, err)
	ln, err = Listen(path, slog.New(slog.DiscardHandler))
	require.NoError(t, err, "a stale socket is replaced")

	_, err = Listen(path, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "another process serves", "a live one is not")
	require.NoError(t, ln.Close())

	file := filepath.Join(dir, "not-a-socket")
	require.NoError(t, os.WriteFile(file, []byte("data"), 0o600))
	_, err = Listen(file, slog.New(slog.DiscardHandler))
	assert.ErrorContains(t, err, "is not a socket")
	b, _ := os.ReadFile(file)
	assert.Equal(t, "data", string(b), "and left alone")
}

// A server without a command (older than the command line) is named as such.
func TestUnknownCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	_, err = dial(t, path).ListClients(context.Background())
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "does not serve") && strings.Contains(err.Error(), "older"), err.Error())
}

func TestDialNoServer(t *testing.T) {
	_, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock"))
	assert.Error(t, err)
}

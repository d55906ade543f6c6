package socket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// fake is a server's command line: each command does what the test sets; any other is unknown.
type fake map[string]Runner

func (f fake) run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if r, ok := f[strings.Join(args, " ")]; ok {
		return r(ctx, args, stdin, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q", args)
}

// logs collects what the server logged.
type logs struct {
	mu   sync.Mutex
	b    bytes.Buffer
	stop func() // stops the server and waits for the commands in flight
}

func (l *logs) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logs) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// final stops the server and returns its log. A command's line is written after its caller has its exit status, so
// only a stopped server's log is sure to hold every command's.
func (l *logs) final() string { l.stop(); return l.String() }

// serve runs the command lines of f on a socket in a fresh directory, with allow deciding who may connect.
func serve(t *testing.T, f fake, allow func(int) bool) (string, *logs) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "authserver.jsonl.sock")
	l := &logs{}
	log := slog.New(slog.NewTextHandler(l, nil))
	ln, err := listen(path, log, allow)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, f.run, log) }()
	var once sync.Once
	var served error
	l.stop = func() { once.Do(func() { cancel(); served = <-done }) }
	t.Cleanup(func() {
		l.stop()
		require.NoError(t, served)
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

// list is a command that prints a client id.
func list(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
	_, err := io.WriteString(stdout, "client-a\n")
	return err
}

// runOn runs a command line through the socket at path and returns its stdout.
func runOn(t *testing.T, path string, stdin io.Reader, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := dial(t, path).Run(context.Background(), args, stdin, &out, nil)
	return out.String(), err
}

func TestOwnerOnly(t *testing.T) {
	path, _ := serve(t, fake{"clients list": list}, anyone)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, info.Mode().Type())
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "only the owner can connect")

	out, err := runOn(t, path, nil, "clients", "list")
	require.NoError(t, err)
	assert.Equal(t, "client-a\n", out)
}

// A process of another user is refused even if it got a connection (peer credentials, Linux).
func TestOtherUserRefused(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are checked on Linux only")
	}
	var asked []int
	var mu sync.Mutex
	path, l := serve(t, fake{"clients list": list}, func(uid int) bool {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, uid)
		return false // as if the peer were another user
	})
	_, err := runOn(t, path, nil, "clients", "list")
	require.Error(t, err)
	assert.ErrorContains(t, err, "only the user the authserver runs as")
	mu.Lock()
	assert.Contains(t, asked, os.Getuid(), "the peer's real uid was checked")
	mu.Unlock()
	assert.Contains(t, l.String(), "refused a connection from another user")

	path, _ = serve(t, fake{"clients list": list}, func(uid int) bool { return uid == os.Getuid() })
	_, err = runOn(t, path, nil, "clients", "list")
	assert.NoError(t, err, "the owner gets in")
}

func TestErrorsKeepTheirKind(t *testing.T) {
	path, l := serve(t, fake{"clients show nope": func(context.Context, []string, io.Reader, io.Writer, io.Writer) error {
		return &service.Error{Kind: service.ErrNotFound, Msg: "no client with id nope"}
	}}, anyone)
	_, err := runOn(t, path, nil, "clients", "show", "nope")
	require.ErrorIs(t, err, service.ErrNotFound)
	assert.Equal(t, "no client with id nope", err.Error(), "the server's message, as a local store gives it")

	_, err = runOn(t, path, nil, "frobnicate")
	require.Error(t, err)
	assert.Equal(t, `unknown command ["frobnicate"]`, err.Error(), "an error of no known kind keeps its message")

	log := l.final()
	assert.Contains(t, log, `command="clients show"`)
	assert.NotContains(t, log, "command=\"clients show nope", "the command is logged, not its arguments")
	assert.Contains(t, log, "kind=not_found")
}

// The server refuses a restore before the dump is uploaded (Expect: 100-continue): a command that fails before it
// reads its input is answered before the upload.
func TestRestoreRefusedBeforeUpload(t *testing.T) {
	path, _ := serve(t, fake{"restore --in f --yes": func(context.Context, []string, io.Reader, io.Writer, io.Writer) error {
		return &service.Error{Kind: service.ErrServerRunning, Msg: "stop the server first"} // as a running server does
	}}, anyone)
	body := &countingReader{r: bytes.NewReader(make([]byte, 8<<20))}
	_, err := runOn(t, path, body, "restore", "--in", "f", "--yes")
	require.ErrorIs(t, err, service.ErrServerRunning)
	assert.Less(t, body.n, int64(64<<10), "the 8 MiB dump was not sent")
}

// A command that reads its input gets all of it, also when it writes before it reads; its stderr comes back apart.
func TestInputAndOutput(t *testing.T) {
	path, _ := serve(t, fake{"count": func(_ context.Context, _ []string, stdin io.Reader, stdout, stderr io.Writer) error {
		if _, err := io.WriteString(stderr, "counting\n"); err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, stdin)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%d bytes\n", n)
		return err
	}}, anyone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a deadlock fails, not hangs
	defer cancel()
	body := &countingReader{r: bytes.NewReader(make([]byte, 8<<20))}
	var out, errOut bytes.Buffer
	require.NoError(t, dial(t, path).Run(ctx, []string{"count"}, body, &out, &errOut))
	assert.Equal(t, "8388608 bytes\n", out.String())
	assert.Equal(t, "counting\n", errOut.String())
}

// A long command's output arrives while it runs, not when it ends.
func TestOutputStreams(t *testing.T) {
	seen := make(chan struct{})
	path, _ := serve(t, fake{"wait": func(ctx context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		if _, err := io.WriteString(stdout, "started\n"); err != nil {
			return err
		}
		select { // ends only once the client has the first line
		case <-seen:
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := io.WriteString(stdout, "done\n")
		return err
	}}, anyone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := dial(t, path).Run(ctx, []string{"wait"}, nil, writerFunc(func(p []byte) (int, error) {
		out.Write(p)
		if strings.Contains(out.String(), "started\n") && !strings.Contains(out.String(), "done") {
			close(seen)
		}
		return len(p), nil
	}), nil)
	require.NoError(t, err, "the first line came before the command ended")
	assert.Equal(t, "started\ndone\n", out.String())
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

// A command that fails half-way is an error, never a short output taken for a whole one.
func TestOutputIncomplete(t *testing.T) {
	f := fake{"backup": func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		_, _ = stdout.Write(bytes.Repeat([]byte("x"), 100<<10))
		return errors.New("disk on fire")
	}}
	path, _ := serve(t, f, anyone)
	out, err := runOn(t, path, nil, "backup")
	require.Error(t, err)
	assert.ErrorContains(t, err, "disk on fire")
	assert.Len(t, out, 100<<10, "what was written came, in frames")

	f["backup"] = func(context.Context, []string, io.Reader, io.Writer, io.Writer) error {
		return errors.New("store closed")
	}
	_, err = runOn(t, path, nil, "backup")
	assert.ErrorContains(t, err, "store closed", "a failure before the first byte is an ordinary error")

	f["backup"] = func(_ context.Context, _ []string, _ io.Reader, stdout, _ io.Writer) error {
		_, err := io.WriteString(stdout, "whole\n")
		return err
	}
	out, err = runOn(t, path, nil, "backup")
	require.NoError(t, err)
	assert.Equal(t, "whole\n", out)
}

// An answer cut before its exit status (the server died half-way) is an error, whatever came before it.
func TestAnswerCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dying.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = writeFrame(w, frameStdout, []byte("half a dump\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	out, err := runOn(t, path, nil, "backup")
	assert.ErrorContains(t, err, "the answer ended before the command's exit status: its output is incomplete")
	assert.Equal(t, "half a dump\n", out)
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
	_, err = runOn(t, path, nil, "clients", "list")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "does not run command lines") && strings.Contains(err.Error(), "older"), err.Error())
}

func TestDialNoServer(t *testing.T) {
	_, err := Dial(context.Background(), filepath.Join(t.TempDir(), "none.sock"))
	assert.Error(t, err)
}

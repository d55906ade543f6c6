package embedded_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/storetest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestContractMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := embedded.Open("", quiet())
		require.NoError(t, err)
		return s
	})
}

func TestContractFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := embedded.Open(filepath.Join(t.TempDir(), "state.jsonl"), quiet())
		require.NoError(t, err)
		return s
	})
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	storetest.RunPersistence(t,
		func(t *testing.T) store.Store {
			s, err := embedded.Open(path, quiet())
			require.NoError(t, err)
			return s
		},
		func(t *testing.T, s store.Store) store.Store {
			require.NoError(t, s.Close())
			s2, err := embedded.Open(path, quiet())
			require.NoError(t, err)
			return s2
		})
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "the state holds signing keys: owner only")
}

func client(id string) *store.Client {
	return &store.Client{ID: id, RegistrationTokenHash: "h", IssuedAt: time.Now().UTC()}
}

// A crash in the middle of a write leaves a torn last line: it is dropped with a warning, the rest is kept.
func TestTornLastLine(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.jsonl")
	s, err := embedded.Open(path, quiet())
	require.NoError(t, err)
	require.NoError(t, s.CreateClient(ctx, client("kept")))
	require.NoError(t, s.CreateClient(ctx, client("torn")))
	require.NoError(t, s.Close())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b[:len(b)-20], 0o600))

	var logs strings.Builder
	s, err = embedded.Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer s.Close()
	_, err = s.GetClient(ctx, "kept")
	assert.NoError(t, err)
	_, err = s.GetClient(ctx, "torn")
	assert.ErrorIs(t, err, store.ErrNotFound)
	assert.Contains(t, logs.String(), "incomplete last journal line")

	// The file was rewritten without the torn line: new writes follow a clean line.
	require.NoError(t, s.CreateClient(ctx, client("after")))
	require.NoError(t, s.Close())
	s, err = embedded.Open(path, quiet())
	require.NoError(t, err)
	defer s.Close()
	_, err = s.GetClient(ctx, "after")
	assert.NoError(t, err)
}

// A server restarted on a full disk (after a crash, say) starts: the journal's rewrite at start has no room, so it
// serves from the journal as it is; writes fail with ErrUnavailable until space returns, and nothing is lost.
func TestOpenOnAFullDisk(t *testing.T) {
	ctx := context.Background()
	dir := testenv.SmallDisk(t, 1<<20)
	path := filepath.Join(dir, "state.jsonl")
	s, err := embedded.Open(path, quiet())
	require.NoError(t, err)
	var ids []string
	for i := range 40 {
		c := client(fmt.Sprintf("c%d", i))
		c.Metadata = map[string]any{"pad": strings.Repeat("x", 1000)}
		require.NoError(t, s.CreateClient(ctx, c))
		ids = append(ids, c.ID)
	}
	require.NoError(t, s.Close())
	// A crash mid-write left a torn last line behind.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"v":1,"ops":[{"k":"client","id":"torn"`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	filler := fillDisk(t, dir)

	var logs strings.Builder
	s, err = embedded.Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err, "a full disk does not keep the store from opening")
	assert.Contains(t, logs.String(), "cannot rewrite the journal at start")
	for _, id := range ids {
		_, err := s.GetClient(ctx, id)
		require.NoError(t, err, id)
	}
	// The journal's last page may hold a few more lines; then writes fail, and change nothing.
	for i := 0; ; i++ {
		require.Less(t, i, 100, "writes kept succeeding on a full disk")
		c := client(fmt.Sprintf("while-full%d", i))
		c.Metadata = map[string]any{"pad": strings.Repeat("x", 1000)}
		if err = s.CreateClient(ctx, c); err != nil {
			break
		}
		ids = append(ids, c.ID)
	}
	require.ErrorIs(t, err, store.ErrUnavailable)
	assert.Contains(t, err.Error(), "no space left on device")
	failed := fmt.Sprintf("while-full%d", len(ids)-40)

	require.NoError(t, os.Remove(filler))
	require.NoError(t, s.CreateClient(ctx, client("after")), "space is back: writes succeed without a restart")
	require.NoError(t, s.Close())

	logs.Reset()
	s, err = embedded.Open(path, slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	defer s.Close()
	for _, id := range append(ids, "after") {
		_, err := s.GetClient(ctx, id)
		require.NoError(t, err, id)
	}
	_, err = s.GetClient(ctx, failed)
	assert.ErrorIs(t, err, store.ErrNotFound, "a write that failed left nothing")
	assert.NotContains(t, logs.String(), "incomplete last journal line", "the torn line was cut off before appending")
}

// fillDisk writes a file in dir until the filesystem is full, and returns its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			return path
		}
	}
}

// Damage before the last line is not a crash artefact: Open refuses, naming the line.
func TestCorruptMiddleLine(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.jsonl")
	s, err := embedded.Open(path, quiet())
	require.NoError(t, err)
	for _, id := range []string{"a", "b", "c"} {
		require.NoError(t, s.CreateClient(ctx, client(id)))
	}
	require.NoError(t, s.Close())

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.SplitAfter(string(b), "\n")
	require.GreaterOrEqual(t, len(lines), 3)
	lines[1] = "{not json\n"
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600))

	_, err = embedded.Open(path, quiet())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2")
	assert.Contains(t, err.Error(), path)
}

// The journal is compacted: rewriting one record many times does not grow the file without bound.
func TestCompaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.jsonl")
	s, err := embedded.Open(path, quiet())
	require.NoError(t, err)
	c := client("busy")
	c.Metadata = map[string]any{"pad": strings.Repeat("x", 1000)}
	require.NoError(t, s.CreateClient(ctx, c))
	for i := range 2000 { // about 2 MB of journal for one live record
		c.Name = "n" + string(rune('a'+i%26))
		require.NoError(t, s.UpdateClient(ctx, c))
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(1<<20), "the journal was compacted")
	require.NoError(t, s.Close())

	s, err = embedded.Open(path, quiet())
	require.NoError(t, err)
	defer s.Close()
	got, err := s.GetClient(ctx, "busy")
	require.NoError(t, err)
	assert.Equal(t, c.Name, got.Name)
	fi, err = os.Stat(path)
	require.NoError(t, err)
	assert.Less(t, fi.Size(), int64(4096), "Open compacts to the live state")
}

// A journal from a future version is refused rather than misread.
func TestUnknownVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(`{"v":99,"ops":[]}`+"\n"+`{"v":1,"ops":[]}`+"\n"), 0o600))
	_, err := embedded.Open(path, quiet())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "version 99")
}

// Two processes (or two Opens) on one file would interleave their writes: the second Open is refused.
func TestSecondOpenRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	s, err := embedded.Open(path, quiet())
	require.NoError(t, err)
	_, err = embedded.Open(path, quiet())
	require.ErrorIs(t, err, embedded.ErrInUse, "callers can tell a held store from a broken one")
	assert.Contains(t, err.Error(), "in use by another process")
	require.NoError(t, s.Close())
	s, err = embedded.Open(path, quiet())
	require.NoError(t, err, "the lock is released on Close")
	require.NoError(t, s.Close())
}

// A backup started while the server was down holds the file: the server, started meanwhile, waits for it to end
// instead of failing (a supervisor would see a failed start).
func TestServerWaitsForACommand(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.jsonl")
	command, err := embedded.Open(path, quiet())
	require.NoError(t, err)
	require.NoError(t, command.CreateClient(ctx, client("by-the-command")))

	var logs testenv.SyncBuffer
	type opened struct {
		s   *embedded.Store
		err error
	}
	done := make(chan opened, 1)
	go func() {
		s, err := embedded.OpenServer(path, slog.New(slog.NewTextHandler(&logs, nil)))
		done <- opened{s, err}
	}()
	select {
	case o := <-done:
		t.Fatalf("the server did not wait for the command: %v", o.err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, command.Close())
	o := <-done
	require.NoError(t, o.err)
	defer o.s.Close()
	_, err = o.s.GetClient(ctx, "by-the-command")
	require.NoError(t, err, "the server reads what the command wrote")
	assert.Contains(t, logs.String(), "waiting for the process holding it to end")
	assert.Contains(t, logs.String(), "an operator's command (pid")
}

// A server holding the file is never waited for: a second server, or a command, is refused at once and told who
// holds it (commands then go through the server's admin socket).
func TestServerHoldingIsRefusedAtOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	s, err := embedded.OpenServer(path, quiet())
	require.NoError(t, err)
	defer s.Close()
	for name, open := range map[string]func(string, *slog.Logger) (*embedded.Store, error){
		"server": embedded.OpenServer, "command": embedded.Open,
	} {
		_, err := open(path, quiet())
		require.ErrorIs(t, err, embedded.ErrInUse, name)
		assert.Contains(t, err.Error(), fmt.Sprintf("the authserver (pid %d)", os.Getpid()), name)
	}
}

func BenchmarkFile(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store {
		s, err := embedded.Open(filepath.Join(b.TempDir(), "state.jsonl"), quiet())
		require.NoError(b, err)
		return s
	})
}

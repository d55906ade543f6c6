package embedded_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/storetest"
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

func BenchmarkFile(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store {
		s, err := embedded.Open(filepath.Join(b.TempDir(), "state.jsonl"), quiet())
		require.NoError(b, err)
		return s
	})
}

package broker_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker/brokertest"
)

const secret = "broker-secret-for-tests"

func injector(t *testing.T, b *brokertest.Broker, log *bytes.Buffer, env ...string) *broker.Injector {
	t.Helper()
	var logger *slog.Logger
	if log != nil {
		logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	in, err := broker.NewInjector(env, "", &broker.Client{URL: b.URL, Secret: secret}, filepath.Join(t.TempDir(), "tokens"), logger)
	require.NoError(t, err)
	require.NotNil(t, in)
	return in
}

func value(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

func TestPlaceholders(t *testing.T) {
	tokens, files, err := broker.Placeholders([]string{"A=Bearer {token:gitlab}", "B={token_file:linear}:{token:gitlab}", "C={user}"}, "/data/{user}")
	require.NoError(t, err)
	assert.Equal(t, []string{"gitlab"}, tokens)
	assert.Equal(t, []string{"linear"}, files)

	for _, bad := range []struct{ env, dir, want string }{
		{"A={token:GitLab}", "", "not an upstream name"},
		{"A={token:}", "", "not an upstream name"},
		{"A={token:../x}", "", "not an upstream name"},
		{"A={token:gitlab", "", "{token:<upstream>}"},
		{"A={token gitlab}", "", "{token:<upstream>}"},
		{"A=x", "/data/{token:gitlab}", "--workdir"},
	} {
		_, _, err := broker.Placeholders([]string{bad.env}, bad.dir)
		require.Error(t, err, bad.env)
		assert.Contains(t, err.Error(), bad.want)
	}

	in, err := broker.NewInjector([]string{"A={user}"}, "", nil, "", nil)
	require.NoError(t, err)
	assert.Nil(t, in, "no token placeholder: no injector")
	_, err = broker.NewInjector([]string{"A={token:gitlab}"}, "", &broker.Client{}, "", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--broker-url")
}

// The token files' directory is this account's alone: one another account could enter, or a link, stops the start.
func TestTokenDirMustBePrivate(t *testing.T) {
	c := &broker.Client{URL: "http://127.0.0.1:1"}
	env := []string{"F={token_file:gitlab}"}
	fresh := filepath.Join(t.TempDir(), "tokens")
	_, err := broker.NewInjector(env, "", c, fresh, nil)
	require.NoError(t, err)
	info, err := os.Stat(fresh)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), "created 0700")

	open := t.TempDir()
	require.NoError(t, os.Chmod(open, 0o755))
	_, err = broker.NewInjector(env, "", c, open, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "0700")

	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(fresh, link))
	_, err = broker.NewInjector(env, "", c, link, nil)
	require.Error(t, err)

	_, err = broker.NewInjector(env, "", c, "relative/dir", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "absolute")
}

// Each process gets its own user's token, and nothing of another user's.
func TestEachUserGetsTheirOwnToken(t *testing.T) {
	b := brokertest.New(t, secret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	b.Connect("bob", "gitlab", "glpat-bob", time.Time{})
	in := injector(t, b, nil, "GITLAB_TOKEN={token:gitlab}", "AUTH=Bearer {token:gitlab}", "OTHER=plain")

	// INHERITED stands for a variable of the proxy's own environment: no --env value names its upstream.
	base := []string{"PATH=/usr/bin", "INHERITED={token:linear}", "GITLAB_TOKEN={token:gitlab}", "AUTH=Bearer {token:gitlab}", "OTHER=plain"}
	aliceEnv, pa, err := in.Start(context.Background(), "alice", base)
	require.NoError(t, err)
	defer pa.Close()
	bobEnv, pb, err := in.Start(context.Background(), "bob", base)
	require.NoError(t, err)
	defer pb.Close()

	assert.Equal(t, "glpat-alice", value(aliceEnv, "GITLAB_TOKEN"))
	assert.Equal(t, "Bearer glpat-alice", value(aliceEnv, "AUTH"))
	assert.Equal(t, "plain", value(aliceEnv, "OTHER"))
	assert.Equal(t, "{token:linear}", value(aliceEnv, "INHERITED"))
	assert.Equal(t, "glpat-bob", value(bobEnv, "GITLAB_TOKEN"))
	assert.NotContains(t, strings.Join(aliceEnv, "\n"), "glpat-bob")
	assert.NotContains(t, strings.Join(bobEnv, "\n"), "glpat-alice")
	assert.Equal(t, "{token:gitlab}", value(base, "GITLAB_TOKEN"), "the configured environment is left as it was")
}

func TestNotConnected(t *testing.T) {
	b := brokertest.New(t, secret, "gitlab", "linear")
	b.Connect("alice", "linear", "lin-alice", time.Time{})
	in := injector(t, b, nil, "G={token:gitlab}", "L={token_file:linear}")
	_, p, err := in.Start(context.Background(), "alice", []string{"G={token:gitlab}", "L={token_file:linear}"})
	var cr *broker.ConnectRequired
	require.ErrorAs(t, err, &cr)
	assert.Nil(t, p)
	require.Len(t, cr.Connects, 1)
	assert.Equal(t, broker.Connect{Upstream: "gitlab", DisplayName: "The gitlab", URL: brokertest.ConnectURL("alice", "gitlab")}, cr.Connects[0])
	entries, _ := os.ReadDir(in.Dir)
	assert.Empty(t, entries, "no token file is left for a process that does not start")
}

func TestBrokerErrors(t *testing.T) {
	b := brokertest.New(t, secret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	wrong := &broker.Client{URL: b.URL, Secret: "wrong"}
	_, err := wrong.Token(context.Background(), "alice", "gitlab")
	require.ErrorIs(t, err, broker.ErrBroker)
	assert.Contains(t, err.Error(), "invalid_client")

	right := &broker.Client{URL: b.URL, Secret: secret}
	_, err = right.Token(context.Background(), "alice", "jira")
	require.ErrorIs(t, err, broker.ErrBroker)
	assert.Contains(t, err.Error(), "unknown_upstream")

	off := &broker.Client{URL: b.URL + "/off", Secret: secret}
	_, err = off.Token(context.Background(), "alice", "gitlab")
	require.ErrorIs(t, err, broker.ErrBroker)
	assert.Contains(t, err.Error(), "--broker-secret")

	tok, err := right.Token(context.Background(), "alice", "gitlab")
	require.NoError(t, err)
	assert.Equal(t, "glpat-alice", tok.AccessToken)
}

// A token file is the user's token, 0600 in a 0700 directory of the process's own; it is replaced when the token
// changes, removed when the user's connection goes (and the process told), and removed when the process ends.
func TestTokenFile(t *testing.T) {
	b := brokertest.New(t, secret, "gitlab")
	var log bytes.Buffer
	in := injector(t, b, &log, "GITLAB_TOKEN_FILE={token_file:gitlab}")
	in.Lead = time.Hour // every token "expires" within the hour: refreshed at the shortest interval, a few seconds
	b.Connect("alice", "gitlab", "glpat-alice-1", time.Now().Add(time.Hour+time.Second))

	env, p, err := in.Start(context.Background(), "alice", []string{"GITLAB_TOKEN_FILE={token_file:gitlab}"})
	require.NoError(t, err)
	path := value(env, "GITLAB_TOKEN_FILE")
	require.True(t, strings.HasPrefix(path, in.Dir+"/alice/"), path)
	assert.Equal(t, "gitlab", filepath.Base(path))
	read := func() string { b, _ := os.ReadFile(path); return string(b) }
	assert.Equal(t, "glpat-alice-1", read())
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	for _, dir := range []string{filepath.Dir(path), filepath.Dir(filepath.Dir(path))} {
		info, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), info.Mode().Perm(), dir)
	}

	b.Connect("alice", "gitlab", "glpat-alice-2", time.Now().Add(time.Hour+time.Second))
	require.Eventually(t, func() bool { return read() == "glpat-alice-2" }, 20*time.Second, 50*time.Millisecond, "the file follows the token")
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "no temporary file is left beside the token file")

	b.Disconnect("alice", "gitlab")
	select {
	case <-p.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("the process was not told that the connection is gone")
	}
	_, err = os.Stat(path)
	assert.True(t, errors.Is(err, os.ErrNotExist), "the withdrawn token's file is removed")

	p.Close()
	_, err = os.Stat(filepath.Dir(path))
	assert.True(t, errors.Is(err, os.ErrNotExist), "the process's token directory is removed when it ends")
	assert.NotContains(t, log.String(), "glpat-alice", "no token in the log")
}

// Two processes of one user have files of their own: one ending does not take the other's file.
func TestTokenFilesPerProcess(t *testing.T) {
	b := brokertest.New(t, secret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	in := injector(t, b, nil, "F={token_file:gitlab}")
	env1, p1, err := in.Start(context.Background(), "alice", []string{"F={token_file:gitlab}"})
	require.NoError(t, err)
	env2, p2, err := in.Start(context.Background(), "alice", []string{"F={token_file:gitlab}"})
	require.NoError(t, err)
	defer p2.Close()
	require.NotEqual(t, value(env1, "F"), value(env2, "F"))
	p1.Close()
	_, err = os.Stat(value(env1, "F"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
	got, err := os.ReadFile(value(env2, "F"))
	require.NoError(t, err)
	assert.Equal(t, "glpat-alice", string(got))
}

// A process whose token is in its environment cannot be given a new one, but its user's disconnect still reaches it:
// the broker is asked again, and Gone is closed.
func TestDisconnectReachesAnEnvironmentToken(t *testing.T) {
	b := brokertest.New(t, secret, "gitlab")
	b.Connect("alice", "gitlab", "glpat-alice", time.Time{})
	in := injector(t, b, nil, "T={token:gitlab}")
	in.Poll = 50 * time.Millisecond // the token's expiry is unknown: asked again at every poll
	_, p, err := in.Start(context.Background(), "alice", []string{"T={token:gitlab}"})
	require.NoError(t, err)
	defer p.Close()
	require.Eventually(t, func() bool { return b.Asked("alice", "gitlab") > 1 }, 10*time.Second, 10*time.Millisecond)
	select {
	case <-p.Gone():
		t.Fatal("gone while connected")
	default:
	}
	b.Disconnect("alice", "gitlab")
	select {
	case <-p.Gone():
	case <-time.After(10 * time.Second):
		t.Fatal("the process was not told that the connection is gone")
	}
}

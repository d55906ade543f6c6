package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
)

func connectionsKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// The settings of connected accounts that cannot work stop the start, naming the flag; so does a key that does not
// open the stored connections, rather than the server handing out garbage.
func TestConnectionSettingsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "s.jsonl")
	st, err := embedded.Open(data, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	// A connection sealed under key "k1", by a key other than the one given below.
	require.NoError(t, st.PutConnection(context.Background(), &store.Connection{UserID: "1001", Upstream: "gitlab", KeyID: "k1",
		Sealed: []byte("0123456789abcdefghijklmnopqrstuvwxyz"), CreatedAt: time.Now()}))
	require.NoError(t, st.Close())

	base := []string{"--issuer", "http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--data-file", data,
		"--github-client-id", "id", "--github-client-secret", "secret", "--allowed-github-users", "octo"}
	gitlab := []string{"--upstreams", "gitlab", "--upstream-gitlab-client-id", "gw", "--upstream-gitlab-issuer", "https://gitlab.example.com"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--upstreams", "Git Lab"}, "--upstreams: upstream name"},
		{gitlab, "--upstreams: connected accounts' tokens are stored encrypted: give --connections-key"},
		{append(gitlab, "--connections-key", "k1:short"), "--connections-key: key \"k1\": want the base64 of exactly 32 random bytes"},
		{[]string{"--upstreams", "gitlab", "--upstream-gitlab-client-id", "gw", "--connections-key", "k1:" + connectionsKey()},
			"upstream gitlab: give either its issuer"},
		{append(gitlab, "--connections-key", "k1:"+connectionsKey(), "--broker-secret", "0123456789012345678901234567890123"),
			"--broker-secret: the broker endpoint is served on the internal listener only: set --feed-listen"},
		{append(gitlab, "--connections-key", "k1:"+connectionsKey()), "does not open under its key"},
		{append(gitlab, "--connections-key", "k2:"+connectionsKey()), `sealed under key "k1", which the configured keys do not include`},
	} {
		err := run(append(append([]string{}, base...), c.args...), io.Discard, io.Discard)
		assert.ErrorContains(t, err, c.want, c.args)
	}
}

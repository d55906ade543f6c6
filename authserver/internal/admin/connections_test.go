package admin_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// `authserver connections list|revoke`: on every backend and through a running server's socket, the connections are
// listed without their tokens, and revoked per upstream or all of a user's, confirmed.
func TestConnectionsCommands(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			tg := open(t)
			ctx := context.Background()
			for _, c := range []struct{ user, upstream string }{{"42", "gitlab"}, {"42", "linear"}, {"43", "gitlab"}} {
				require.NoError(t, tg.store.PutConnection(ctx, &store.Connection{UserID: c.user, Upstream: c.upstream, KeyID: "k1",
					Sealed: []byte("sealed-bytes-of-" + c.user), Scope: "api", CreatedAt: time.Now()}))
			}
			out, err := run(t, tg.run, "connections", "list")
			require.NoError(t, err)
			assert.Contains(t, out, "USER")
			assert.Contains(t, out, "linear")
			assert.NotContains(t, out, "sealed-bytes", "never the tokens, not even sealed")
			out, err = run(t, tg.run, "connections", "list", "--user", "42", "--json")
			require.NoError(t, err)
			var views []service.Connection
			require.NoError(t, json.Unmarshal([]byte(out), &views))
			assert.Len(t, views, 2)

			_, err = run(t, tg.run, "connections", "revoke", "--user", "42", "--upstream", "gitlab")
			require.ErrorIs(t, err, service.ErrNotConfirmed)
			_, err = run(t, tg.run, "connections", "revoke", "--user", "42", "--upstream", "gitlab", "--yes")
			require.NoError(t, err)
			_, err = tg.store.GetConnection(ctx, "42", "gitlab")
			require.ErrorIs(t, err, store.ErrNotFound)
			_, err = run(t, tg.run, "connections", "revoke", "--user", "42", "--upstream", "gitlab", "--yes")
			require.ErrorContains(t, err, "has no connection to gitlab")

			out, err = run(t, tg.run, "connections", "revoke", "--user", "42", "--yes")
			require.NoError(t, err)
			assert.Contains(t, out, "deleted 1 connection(s)")
			left, err := tg.store.ListConnections(ctx, "")
			require.NoError(t, err)
			require.Len(t, left, 1)
			assert.Equal(t, "43", left[0].UserID)
			_, err = run(t, tg.run, "connections", "revoke", "--user", "not a user", "--yes")
			require.ErrorContains(t, err, "is not a user id")
		})
	}
}

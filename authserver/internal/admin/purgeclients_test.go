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

// `clients purge` removes registrations nobody uses (the pile Claude.ai's one-client-per-connection DCR leaves),
// keeps every client in use, and refuses to act unconfirmed; the same on each backend and through the socket.
func TestClientsPurge(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			tg := open(t)
			s, runner := tg.store, tg.run
			now := time.Now()
			add := func(id string, issued, lastUsed time.Time, expires time.Time) {
				require.NoError(t, s.CreateClient(ctx, &store.Client{ID: id, Name: id, TokenEndpointAuth: "none",
					RedirectURIs: []string{"https://claude.ai/api/mcp/auth_callback"}, GrantTypes: []string{"authorization_code"},
					RegistrationTokenHash: store.HashSecret("rat-" + id), IssuedAt: issued, LastUsedAt: lastUsed, ExpiresAt: expires}))
			}
			soon := now.Add(24 * time.Hour)
			add("abandoned", now.Add(-48*time.Hour), time.Time{}, soon)    // registered two days ago, never used
			add("just-registered", now.Add(-time.Hour), time.Time{}, soon) // the user may be logging in right now
			add("idle", now.Add(-200*24*time.Hour), now.Add(-100*24*time.Hour), soon)
			add("active", now.Add(-200*24*time.Hour), now.Add(-time.Hour), soon)
			add("operator", now.Add(-300*24*time.Hour), time.Time{}, time.Time{}) // registered to never expire
			seed(t, s, "legacy")                                                  // an older registration: no recorded use, but a live grant
			legacy, err := s.GetClient(ctx, "legacy")
			require.NoError(t, err)
			legacy.IssuedAt, legacy.ExpiresAt = now.Add(-30*24*time.Hour), soon
			require.NoError(t, s.UpdateClient(ctx, legacy))

			_, err = run(t, runner, "clients", "purge")
			assert.ErrorIs(t, err, service.ErrNotConfirmed)

			out, err := run(t, runner, "clients", "purge", "--dry-run", "--json")
			require.NoError(t, err)
			var res struct {
				Clients []struct {
					ID string `json:"client_id"`
				} `json:"clients"`
				Kept   int  `json:"kept_with_grants"`
				DryRun bool `json:"dry_run"`
			}
			require.NoError(t, json.Unmarshal([]byte(out), &res))
			ids := func() []string {
				var out []string
				for _, c := range res.Clients {
					out = append(out, c.ID)
				}
				return out
			}
			assert.ElementsMatch(t, []string{"abandoned", "idle"}, ids())
			assert.Equal(t, 1, res.Kept, "the legacy client holds a live grant")
			assert.True(t, res.DryRun)
			list, err := s.ListClients(ctx)
			require.NoError(t, err)
			assert.Len(t, list, 6, "a dry run removes nothing")

			out, err = run(t, runner, "clients", "purge", "--yes")
			require.NoError(t, err)
			assert.Contains(t, out, "abandoned")
			assert.Contains(t, out, "removed 2 unused client(s); kept 1 that still hold live grants")
			for _, id := range []string{"abandoned", "idle"} {
				_, err := s.GetClient(ctx, id)
				assert.ErrorIs(t, err, store.ErrNotFound, id)
			}
			for _, id := range []string{"just-registered", "active", "operator", "legacy"} {
				_, err := s.GetClient(ctx, id)
				assert.NoError(t, err, id)
			}

			// Stricter rules on demand; a rule set to 0 is off.
			out, err = run(t, runner, "clients", "purge", "--unused-for", "30m", "--idle-for", "0", "--yes", "--json")
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal([]byte(out), &res))
			assert.ElementsMatch(t, []string{"just-registered"}, ids())
			_, err = run(t, runner, "clients", "purge", "--unused-for", "0", "--idle-for", "0", "--yes")
			assert.ErrorContains(t, err, "positive duration")

			out, err = run(t, runner, "clients", "show", "active", "--json")
			require.NoError(t, err)
			assert.Contains(t, out, `"last_used_at"`)
		})
	}
}

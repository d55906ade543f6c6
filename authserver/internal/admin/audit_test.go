package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/socket"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/keys"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/embedded"
	"github.com/mcp-oauth-gateway/gateway/internal/audit"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Every command line is recorded with how it came (the server's socket, or a process of its own) and how it ended,
// and what the destructive ones changed: grants revoked, a client deleted, a key rotated.
func TestCommandsAreAudited(t *testing.T) {
	for _, inServer := range []bool{false, true} {
		via := map[bool]string{false: "cli", true: "socket"}[inServer]
		t.Run(via, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.jsonl")
			s, err := embedded.Open(path, quiet)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			var out testenv.SyncBuffer
			trail := audit.New(&out, nil, audit.Options{Service: "authserver", Log: quiet})
			km := &keys.Manager{Store: s, MaxTokenLifetime: time.Hour}
			require.NoError(t, km.Ensure(context.Background()))
			svc := service.New(s, km, service.Options{InServer: inServer, Audit: trail})
			r, stop := admin.Local(svc), func() {}
			if inServer {
				r, stop = serveSocket(t, socket.PathFor(path), svc)
			}
			seed(t, s, "c1")
			seed(t, s, "c2")
			_, err = run(t, r, "tokens", "revoke", "--user", "42", "--yes")
			require.NoError(t, err)
			_, err = run(t, r, "clients", "delete", "c1", "--yes")
			require.NoError(t, err)
			_, err = run(t, r, "clients", "show", "nope")
			require.Error(t, err)
			_, err = run(t, r, "rotate-keys", "--activate-after", "1m")
			require.NoError(t, err)
			stop()
			require.NoError(t, trail.Close())

			var evs []audit.Event
			sc := bufio.NewScanner(strings.NewReader(out.String()))
			for sc.Scan() {
				var e audit.Event
				require.NoError(t, json.Unmarshal(sc.Bytes(), &e), sc.Text())
				assert.Equal(t, via, e.Via, "%s", sc.Text())
				evs = append(evs, e)
			}
			type seen struct{ name, outcome, command, target string }
			var got []seen
			for _, e := range evs {
				got = append(got, seen{e.Name, e.Outcome, e.Command, e.Target})
			}
			assert.Equal(t, []seen{
				{"grant.revoked", "success", "", ""},
				{"admin.command", "success", "tokens revoke", "42"},
				{"grant.revoked", "success", "", ""},
				{"client.deleted", "success", "", ""},
				{"admin.command", "success", "clients delete", "c1"},
				{"admin.command", "failure", "clients show", "nope"},
				{"key.rotated", "success", "", ""},
				{"admin.command", "success", "rotate-keys", ""},
			}, got)
			if len(evs) == 8 {
				assert.Equal(t, "42", evs[0].UserID)
				assert.Equal(t, 2, evs[0].Count, "user 42 held a grant with each client")
				assert.Equal(t, "c1", evs[3].ClientID)
				assert.NotEmpty(t, evs[5].Reason)
				assert.NotEmpty(t, evs[6].KeyID)
			}
		})
	}
}

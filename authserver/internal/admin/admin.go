// Package admin holds the operator's commands on the authorization server's state: list, show and delete clients,
// revoke a user's or a client's tokens, purge expired records, back up and restore the store, and generate the
// secrets a deployment's .env needs. Each works on any store backend, prints a table for people or JSON for scripts,
// and refuses destructive actions unless confirmed.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// ErrNotConfirmed is returned by a destructive command run without confirmation (--yes).
var ErrNotConfirmed = errors.New("refusing a destructive action without --yes")

// Admin runs commands against one store.
type Admin struct {
	Store store.Store
	Out   io.Writer
	JSON  bool // print JSON instead of tables
}

// clientView is what the commands show of a client: never its secret or registration token hashes.
type clientView struct {
	ID           string    `json:"client_id"`
	Name         string    `json:"client_name,omitempty"`
	AuthMethod   string    `json:"token_endpoint_auth_method"`
	RedirectURIs []string  `json:"redirect_uris"`
	GrantTypes   []string  `json:"grant_types,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	IssuedAt     time.Time `json:"issued_at"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
}

func viewOf(c *store.Client) clientView {
	return clientView{ID: c.ID, Name: c.Name, AuthMethod: c.TokenEndpointAuth, RedirectURIs: c.RedirectURIs,
		GrantTypes: c.GrantTypes, Scope: c.Scope, IssuedAt: c.IssuedAt, ExpiresAt: c.ExpiresAt}
}

// ListClients prints every registered client, oldest first.
func (a *Admin) ListClients(ctx context.Context) error {
	clients, err := a.Store.ListClients(ctx)
	if err != nil {
		return fmt.Errorf("list clients: %w", err)
	}
	slices.SortFunc(clients, func(x, y *store.Client) int { return x.IssuedAt.Compare(y.IssuedAt) })
	views := make([]clientView, 0, len(clients))
	for _, c := range clients {
		views = append(views, viewOf(c))
	}
	if a.JSON {
		return a.printJSON(views)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tNAME\tAUTH\tREGISTERED\tEXPIRES\tREDIRECT URIS")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.ID, orDash(v.Name), v.AuthMethod, day(v.IssuedAt), day(v.ExpiresAt),
			strings.Join(v.RedirectURIs, " "))
	}
	return tw.Flush()
}

// ShowClient prints one client in full.
func (a *Admin) ShowClient(ctx context.Context, id string) error {
	c, err := a.getClient(ctx, id)
	if err != nil {
		return err
	}
	v := viewOf(c)
	if a.JSON {
		return a.printJSON(v)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "client_id\t%s\n", v.ID)
	fmt.Fprintf(tw, "client_name\t%s\n", orDash(v.Name))
	fmt.Fprintf(tw, "token_endpoint_auth_method\t%s\n", v.AuthMethod)
	fmt.Fprintf(tw, "redirect_uris\t%s\n", strings.Join(v.RedirectURIs, " "))
	fmt.Fprintf(tw, "grant_types\t%s\n", strings.Join(v.GrantTypes, " "))
	fmt.Fprintf(tw, "scope\t%s\n", orDash(v.Scope))
	fmt.Fprintf(tw, "registered\t%s\n", v.IssuedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(tw, "expires\t%s\n", stamp(v.ExpiresAt))
	return tw.Flush()
}

// DeleteClient revokes every token the client holds, then deletes it (what RFC 7592 DELETE does).
func (a *Admin) DeleteClient(ctx context.Context, id string, yes bool) error {
	if _, err := a.getClient(ctx, id); err != nil {
		return err
	}
	if !yes {
		return fmt.Errorf("delete client %s and revoke its tokens: %w", id, ErrNotConfirmed)
	}
	n, err := a.Store.RevokeClient(ctx, id)
	if err != nil {
		return fmt.Errorf("revoke tokens of client %s: %w", id, err)
	}
	if err := a.Store.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	return a.result(map[string]any{"deleted_client": id, "revoked_grants": n},
		fmt.Sprintf("deleted client %s; revoked %d grant(s)", id, n))
}

// RevokeClientTokens revokes every grant (refresh and access tokens) a client holds and keeps the client.
func (a *Admin) RevokeClientTokens(ctx context.Context, id string, yes bool) error {
	if _, err := a.getClient(ctx, id); err != nil {
		return err
	}
	if !yes {
		return fmt.Errorf("revoke every token of client %s: %w", id, ErrNotConfirmed)
	}
	n, err := a.Store.RevokeClient(ctx, id)
	if err != nil {
		return fmt.Errorf("revoke tokens of client %s: %w", id, err)
	}
	return a.result(map[string]any{"client_id": id, "revoked_grants": n},
		fmt.Sprintf("revoked %d grant(s) of client %s", n, id))
}

// RevokeUserTokens revokes every grant a user holds, across all clients. userID is the GitHub numeric user id.
func (a *Admin) RevokeUserTokens(ctx context.Context, userID string, yes bool) error {
	if strings.TrimSpace(userID) == "" || strings.Trim(userID, "0123456789") != "" {
		return fmt.Errorf("revoke user tokens: %q is not a GitHub numeric user id (the token's sub, X-User-Id)", userID)
	}
	if !yes {
		return fmt.Errorf("revoke every token of user %s: %w", userID, ErrNotConfirmed)
	}
	n, err := a.Store.RevokeUser(ctx, userID)
	if err != nil {
		return fmt.Errorf("revoke tokens of user %s: %w", userID, err)
	}
	return a.result(map[string]any{"user_id": userID, "revoked_grants": n},
		fmt.Sprintf("revoked %d grant(s) of user %s", n, userID))
}

// Purge removes expired records now, rather than waiting for the server's periodic purge.
func (a *Admin) Purge(ctx context.Context) error {
	n, err := a.Store.PurgeExpired(ctx)
	if err != nil {
		return fmt.Errorf("purge expired records: %w", err)
	}
	return a.result(map[string]any{"purged": n}, fmt.Sprintf("purged %d expired record(s)", n))
}

// Backup writes the whole store to w as versioned JSON lines.
func (a *Admin) Backup(ctx context.Context, w io.Writer) error {
	b, ok := a.Store.(store.Backup)
	if !ok {
		return fmt.Errorf("backup: this store backend cannot dump its state")
	}
	if err := b.Dump(ctx, w); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// Restore reads a backup made by Backup, from either backend, into the store.
func (a *Admin) Restore(ctx context.Context, r io.Reader, yes bool) error {
	b, ok := a.Store.(store.Backup)
	if !ok {
		return fmt.Errorf("restore: this store backend cannot restore a dump")
	}
	if !yes {
		return fmt.Errorf("restore a backup over the current store: %w", ErrNotConfirmed)
	}
	if err := b.Restore(ctx, r); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return a.result(map[string]any{"restored": true}, "restored the backup")
}

// GenerateSecrets prints random values for the secrets a .env needs, as KEY=value lines (or JSON).
func (a *Admin) GenerateSecrets() error {
	redis, err := randomSecret()
	if err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(map[string]string{"REDIS_PASSWORD": redis})
	}
	_, err = fmt.Fprintf(a.Out, "# Generated %s; paste into .env\nREDIS_PASSWORD=%s\n", time.Now().UTC().Format(time.RFC3339), redis)
	return err
}

func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (a *Admin) getClient(ctx context.Context, id string) (*store.Client, error) {
	c, err := a.Store.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no client with id %q (list them with `authserver clients list`)", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read client %s: %w", id, err)
	}
	return c, nil
}

func (a *Admin) result(v any, text string) error {
	if a.JSON {
		return a.printJSON(v)
	}
	_, err := fmt.Fprintln(a.Out, text)
	return err
}

func (a *Admin) printJSON(v any) error {
	enc := json.NewEncoder(a.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func day(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

// Package admin holds the operator's commands on the authorization server's state: list, show and delete clients,
// revoke a user's or a client's tokens, purge expired records, back up and restore the store, rotate the signing
// keys, and generate the secrets a deployment's .env needs. Each works on any store backend, prints a table for
// people or JSON for scripts, and refuses destructive actions unless confirmed.
//
// This package is the command line: arguments in, tables or JSON out (cli.go). What a command does to the store is
// package service. A command line runs where Connect finds the store: in this process, or, when a running server
// holds the embedded store's file, in that server, which is sent the command line through its admin socket
// (package socket) and runs it with this same code. A new command is a change of this package only.
package admin

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// Admin runs the commands on the service and prints their results.
type Admin struct {
	Service *service.Service
	Out     io.Writer
	JSON    bool // print JSON instead of tables
}

// ListClients prints every registered client, oldest first.
func (a *Admin) ListClients(ctx context.Context) error {
	views, err := a.Service.ListClients(ctx)
	if err != nil {
		return err
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
	v, err := a.Service.GetClient(ctx, id)
	if err != nil {
		return err
	}
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
	fmt.Fprintf(tw, "last used\t%s\n", stamp(v.LastUsedAt))
	return tw.Flush()
}

// DeleteClient revokes every token the client holds, then deletes it (what RFC 7592 DELETE does).
func (a *Admin) DeleteClient(ctx context.Context, id string, yes bool) error {
	if err := a.confirmClient(ctx, id, yes, "delete client "+id+" and revoke its tokens"); err != nil {
		return err
	}
	n, err := a.Service.DeleteClient(ctx, id)
	if err != nil {
		return err
	}
	return a.result(map[string]any{"deleted_client": id, "revoked_grants": n},
		fmt.Sprintf("deleted client %s; revoked %d grant(s)", id, n))
}

// RevokeClientTokens revokes every grant (refresh and access tokens) a client holds and keeps the client.
func (a *Admin) RevokeClientTokens(ctx context.Context, id string, yes bool) error {
	if err := a.confirmClient(ctx, id, yes, "revoke every token of client "+id); err != nil {
		return err
	}
	n, err := a.Service.RevokeClient(ctx, id)
	if err != nil {
		return err
	}
	return a.result(map[string]any{"client_id": id, "revoked_grants": n},
		fmt.Sprintf("revoked %d grant(s) of client %s", n, id))
}

// confirmClient refuses an unconfirmed action on a client; an unknown client is named as such first.
func (a *Admin) confirmClient(ctx context.Context, id string, yes bool, what string) error {
	if yes {
		return nil
	}
	if _, err := a.Service.GetClient(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("%s: %w", what, service.ErrNotConfirmed)
}

// RevokeUserTokens revokes every grant a user holds, across all clients. userID is the tokens' sub (a GitHub numeric id, or <provider>:<sub>).
func (a *Admin) RevokeUserTokens(ctx context.Context, userID string, yes bool) error {
	if !yes {
		return fmt.Errorf("revoke every token of user %s: %w", userID, service.ErrNotConfirmed)
	}
	n, err := a.Service.RevokeUser(ctx, userID)
	if err != nil {
		return err
	}
	return a.result(map[string]any{"user_id": userID, "revoked_grants": n},
		fmt.Sprintf("revoked %d grant(s) of user %s", n, userID))
}

// Purge removes expired records now, rather than waiting for the server's periodic purge.
func (a *Admin) Purge(ctx context.Context) error {
	n, err := a.Service.Purge(ctx)
	if err != nil {
		return err
	}
	return a.result(map[string]any{"purged": n}, fmt.Sprintf("purged %d expired record(s)", n))
}

// Backup writes the whole store to w as versioned JSON lines.
func (a *Admin) Backup(ctx context.Context, w io.Writer) error {
	return a.Service.Backup(ctx, w)
}

// Restore reads a backup made by Backup, from either backend, into the store.
func (a *Admin) Restore(ctx context.Context, r io.Reader, yes bool) error {
	if !yes {
		return fmt.Errorf("restore a backup over the current store: %w", service.ErrNotConfirmed)
	}
	if err := a.Service.Restore(ctx, r); err != nil {
		return err
	}
	return a.result(map[string]any{"restored": true}, "restored the backup")
}

// RotateKeys publishes a new signing key that signs after activateAfter; the current one keeps signing until then.
func (a *Admin) RotateKeys(ctx context.Context, activateAfter time.Duration) error {
	rot, err := a.Service.RotateKeys(ctx, activateAfter)
	if err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(rot)
	}
	_, err = fmt.Fprintf(a.Out, "published signing key %s; it signs from %s\n", rot.KID, rot.ActiveAt.UTC().Format(time.RFC3339))
	return err
}

// GenerateSecrets prints random values for the secrets a .env needs, as KEY=value lines (or JSON).
func (a *Admin) GenerateSecrets() error {
	now := time.Now().UTC()
	secrets := map[string]string{}
	for _, name := range []string{"REDIS_PASSWORD", "STREAMPROXY_SECRET", "BROKER_SECRET"} {
		secrets[name] = randomSecret()
	}
	// The key of connected accounts' tokens (--connections-key), named by its day so a rotation adds a new name.
	secrets["CONNECTIONS_KEY"] = now.Format("20060102") + ":" + randomSecret()
	if a.JSON {
		return a.printJSON(secrets)
	}
	_, err := fmt.Fprintf(a.Out, "# Generated %s; paste into .env\nREDIS_PASSWORD=%s\nSTREAMPROXY_SECRET=%s\nBROKER_SECRET=%s\nCONNECTIONS_KEY=%s\n",
		now.Format(time.RFC3339), secrets["REDIS_PASSWORD"], secrets["STREAMPROXY_SECRET"], secrets["BROKER_SECRET"], secrets["CONNECTIONS_KEY"])
	return err
}

// randomSecret is 256 random bits, base64url. crypto/rand.Read does not return errors since Go 1.24 (a failure
// ends the program).
func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
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

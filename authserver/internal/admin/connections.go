package admin

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// ListConnections prints the connected accounts of a user, or everyone's (userID "").
func (a *Admin) ListConnections(ctx context.Context, userID string) error {
	views, err := a.Service.ListConnections(ctx, userID)
	if err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(views)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tUPSTREAM\tSCOPE\tCONNECTED\tREFRESHED\tTOKEN EXPIRES\tKEY")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.UserID, v.Upstream, orDash(v.Scope), stamp(v.CreatedAt),
			stamp(v.RefreshedAt), stamp(v.TokenExpiresAt), v.KeyID)
	}
	return tw.Flush()
}

// RevokeConnections deletes a user's connection to upstream, or every connection of the user (upstream "").
func (a *Admin) RevokeConnections(ctx context.Context, userID, upstream string, yes bool) error {
	what := "delete every connected account of user " + userID
	if upstream != "" {
		what = "delete the connection of user " + userID + " to " + upstream
	}
	if !yes {
		return fmt.Errorf("%s: %w", what, service.ErrNotConfirmed)
	}
	n, err := a.Service.RevokeConnections(ctx, userID, upstream)
	if err != nil {
		return err
	}
	return a.result(map[string]any{"user_id": userID, "upstream": upstream, "deleted_connections": n},
		fmt.Sprintf("deleted %d connection(s) of user %s", n, userID))
}

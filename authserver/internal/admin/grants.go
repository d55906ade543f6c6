package admin

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// ListGrants prints the live grants of a user (the tokens' sub: a GitHub numeric id, or <provider>:<sub>) or of a client.
func (a *Admin) ListGrants(ctx context.Context, userID, clientID string) error {
	views, err := a.Service.ListGrants(ctx, service.GrantFilter{UserID: userID, ClientID: clientID})
	if err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(views)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GRANT\tCLIENT ID\tUSER\tRESOURCE\tSCOPE\tLAST REFRESH\tREFRESH EXPIRES\tLIVE ACCESS TOKENS")
	for _, v := range views {
		user := v.UserID
		if v.Login != "" {
			user = v.Login + " (" + v.UserID + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", v.Family, v.ClientID, orDash(user),
			orDash(v.Resource), orDash(v.Scope), stamp(v.IssuedAt), stamp(v.ExpiresAt), v.AccessTokens)
	}
	return tw.Flush()
}

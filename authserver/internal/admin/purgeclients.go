package admin

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// PurgeClients removes registered clients nobody uses (see service.PurgeClients) and prints them. It needs --yes,
// unless it is a --dry-run, which only lists them.
func (a *Admin) PurgeClients(ctx context.Context, o service.PurgeClientsOptions, yes bool) error {
	if !yes && !o.DryRun {
		return fmt.Errorf("delete unused registered clients (see --dry-run first): %w", service.ErrNotConfirmed)
	}
	res, err := a.Service.PurgeClients(ctx, o)
	if err != nil {
		return err
	}
	if a.JSON {
		return a.printJSON(res)
	}
	verb := "removed"
	if res.DryRun {
		verb = "would remove"
	}
	if len(res.Clients) > 0 {
		tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLIENT ID\tNAME\tREGISTERED\tLAST USED")
		for _, c := range res.Clients {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, orDash(c.Name), day(c.IssuedAt), day(c.LastUsedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(a.Out, "%s %d unused client(s); kept %d that still hold live grants\n", verb, len(res.Clients), res.KeptWithGrants)
	return err
}

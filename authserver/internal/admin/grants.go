package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// grantView is one live grant (the chain of tokens from one authorization): never a token or a hash.
type grantView struct {
	Family       string    `json:"grant"`
	ClientID     string    `json:"client_id"`
	UserID       string    `json:"user_id"`
	Login        string    `json:"login"`
	Resource     string    `json:"resource"`
	Scope        string    `json:"scope"`
	IssuedAt     time.Time `json:"refreshed_at"`
	ExpiresAt    time.Time `json:"refresh_expires_at"`
	AccessTokens int       `json:"live_access_tokens"`
}

// ListGrants prints the live grants of a user (GitHub numeric id) or of a client. It reads the store through its
// backup stream, so it works the same on every backend without an index of its own.
func (a *Admin) ListGrants(ctx context.Context, userID, clientID string) error {
	b, ok := a.Store.(store.Backup)
	if !ok {
		return errors.New("tokens list: this store backend cannot list its records")
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(b.Dump(ctx, pw)) }()
	grants := map[string]*grantView{}
	var access []*store.AccessToken
	revoked := map[string]bool{}
	now := time.Now()
	match := func(uid, cid string) bool {
		return (userID != "" && uid == userID) || (clientID != "" && cid == clientID)
	}
	err := store.ReadDump(pr, func(r store.DumpRecord) error {
		switch {
		case r.Kind == store.DumpRefresh && !r.Used && r.Refresh.ExpiresAt.After(now) && match(r.Refresh.User.ID, r.Refresh.ClientID):
			t := r.Refresh
			grants[t.FamilyID] = &grantView{Family: t.FamilyID, ClientID: t.ClientID, UserID: t.User.ID, Login: t.User.Login,
				Resource: t.Resource, Scope: t.Scope, IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt}
		case r.Kind == store.DumpAccess && r.Access.ExpiresAt.After(now) && match(r.Access.UserID, r.Access.ClientID):
			access = append(access, r.Access)
		case r.Kind == store.DumpRevocation:
			revoked[r.Revocation.JTI] = true
		}
		return nil
	})
	_ = pr.Close()
	if err != nil {
		return fmt.Errorf("tokens list: %w", err)
	}
	// Access tokens count toward their grant unless revoked; a grant with only those (no refresh token) is listed too.
	for _, t := range access {
		if revoked[t.JTI] {
			continue
		}
		g := grants[t.FamilyID]
		if g == nil {
			g = &grantView{Family: t.FamilyID, ClientID: t.ClientID, UserID: t.UserID, Resource: t.Resource, Scope: t.Scope}
			grants[t.FamilyID] = g
		}
		g.AccessTokens++
	}
	views := make([]grantView, 0, len(grants))
	for _, g := range grants {
		views = append(views, *g)
	}
	slices.SortFunc(views, func(x, y grantView) int { return y.IssuedAt.Compare(x.IssuedAt) })
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

// Command fakegithub runs the fake GitHub of internal/fakegithub for the local development stack: point the
// authserver's GitHub web URL at http://127.0.0.1:9099/ and its API URL at http://127.0.0.1:9099/api/v3/.
//
// It logs one configured user in without a password, so it refuses to listen on anything but a loopback address.
// Every flag also reads from an environment variable (FAKEGITHUB_ plus the flag name in upper case, "-" as "_").
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/fakegithub"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakegithub:", err)
		os.Exit(1)
	}
}

type options struct {
	listen, callbackURL, clientID, clientSecret string
	login, name, email, orgs, teams             string
	userID                                      int64
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("fakegithub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9099", "listen address; loopback only")
	fs.StringVar(&o.clientID, "client-id", "fake-github-client-id", "client id of the one OAuth app")
	fs.StringVar(&o.clientSecret, "client-secret", "fake-github-client-secret", "client secret of the OAuth app")
	fs.StringVar(&o.callbackURL, "callback-url", "", "the app's callback URL (redirect_uri must be at or below it); empty: any loopback URL")
	fs.StringVar(&o.login, "login", "dev-user", "login of the user who is logged in")
	fs.Int64Var(&o.userID, "user-id", 1000001, "numeric GitHub id of that user")
	fs.StringVar(&o.name, "name", "Dev User", "display name of that user")
	fs.StringVar(&o.email, "email", "dev-user@example.test", "primary, verified e-mail of that user (empty: none)")
	fs.StringVar(&o.orgs, "orgs", "dev-org", "comma list of the user's organizations")
	fs.StringVar(&o.teams, "teams", "dev-org/dev-team", "comma list of the user's teams (org/team-slug)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "fakegithub: a DEVELOPMENT fake of GitHub that logs a configured user in without a password.\n\nFlags (each also read from FAKEGITHUB_<FLAG>):")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := flagenv.Apply(fs, "FAKEGITHUB", nil); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

func (o options) config(logger *slog.Logger) fakegithub.Config {
	u := fakegithub.User{ID: o.userID, Login: o.login, Name: o.name, Orgs: flagenv.Split(o.orgs), Teams: flagenv.Split(o.teams)}
	if o.email != "" {
		u.Emails = []fakegithub.Email{{Email: o.email, Primary: true, Verified: true}}
	}
	return fakegithub.Config{
		Users:  []fakegithub.User{u},
		Apps:   []fakegithub.App{{ClientID: o.clientID, ClientSecret: o.clientSecret, CallbackURL: o.callbackURL}},
		Logger: logger,
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := fakegithub.CheckLoopback(o.listen); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := fakegithub.New(o.config(logger))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv.URL = "http://" + ln.Addr().String()
	fmt.Fprintf(stderr, "\n"+
		"!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"+
		"!!  THIS IS A DEVELOPMENT FAKE OF GITHUB. It logs ANYONE in as %q WITHOUT A PASSWORD.\n"+
		"!!  Never use it outside a developer machine or a test.\n"+
		"!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n", o.login)
	logger.Info("fake GitHub listening", "web_url", srv.WebURL(), "api_url", srv.APIURL(), "client_id", o.clientID)

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return hs.Shutdown(shutdownCtx)
}

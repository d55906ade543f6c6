package admin

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// Commands names the subcommands Run handles, for the authserver's command dispatch and its --help.
var Commands = map[string]string{
	"clients":          "clients list | show ID | delete ID --yes | revoke ID --yes | purge [--unused-for D] [--idle-for D] [--dry-run] --yes: registered clients",
	"tokens":           "tokens list --user ID | --client ID; tokens revoke --user ID | --client ID --yes: a user's or a client's grants",
	"purge":            "purge: remove expired records now",
	"backup":           "backup [--out FILE]: write the whole store as versioned JSON lines (stdout by default)",
	"restore":          "restore --in FILE --yes: load a backup (from either backend) into the store",
	"generate-secrets": "generate-secrets: print fresh random secrets for a deployment's .env",
}

// Opener gives the commands their service, and what to call once they are done with it. Connect is the one the
// authserver uses: the store itself, or a running server's admin socket.
type Opener func(ctx context.Context) (svc service.Service, done func() error, err error)

// Run runs one admin command. args[0] is the command name (a key of Commands). open is called only by commands
// that need the store.
func Run(ctx context.Context, args []string, open Opener, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("admin: no command given")
	}
	name, rest := args[0], args[1:]
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	jsonOut := fs.Bool("json", false, "print JSON instead of a table")
	yes := fs.Bool("yes", false, "confirm a destructive action")
	user := fs.String("user", "", "user id, the tokens' sub: a GitHub numeric id, or <provider>:<sub> (tokens list, tokens revoke)")
	client := fs.String("client", "", "client id (tokens revoke)")
	out := fs.String("out", "", "backup file to write (default stdout)")
	in := fs.String("in", "", "backup file to read (restore)")
	unusedFor := fs.Duration("unused-for", 24*time.Hour, "clients purge: remove clients never used and registered longer ago than this (0: off; the server's --client-unused-lifetime default)")
	idleFor := fs.Duration("idle-for", 90*24*time.Hour, "clients purge: remove clients last used longer ago than this (0: off; the server's --client-lifetime default)")
	dryRun := fs.Bool("dry-run", false, "clients purge: list what would be removed, remove nothing")
	fs.Usage = func() { fmt.Fprintf(stdout, "usage: authserver %s\n", Commands[name]); fs.PrintDefaults() }
	// Flags may come before or after positional arguments (`clients delete ID --yes`).
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}

	a := &Admin{Out: stdout, JSON: *jsonOut}
	if name == "generate-secrets" {
		return a.GenerateSecrets()
	}
	if _, ok := Commands[name]; !ok {
		return fmt.Errorf("admin: unknown command %q", name)
	}
	svc, done, err := open(ctx)
	if err != nil {
		return err
	}
	defer done()
	a.Service = svc

	arg := func(i int, what string) (string, error) {
		if len(positional) <= i {
			return "", fmt.Errorf("usage: authserver %s (missing %s)", Commands[name], what)
		}
		return positional[i], nil
	}
	switch name {
	case "clients":
		sub, err := arg(0, "list, show, delete, revoke or purge")
		if err != nil {
			return err
		}
		if sub == "list" {
			return a.ListClients(ctx)
		}
		if sub == "purge" {
			return a.PurgeClients(ctx, service.PurgeClientsOptions{UnusedFor: *unusedFor, IdleFor: *idleFor, DryRun: *dryRun}, *yes)
		}
		id, err := arg(1, "the client id")
		if err != nil {
			return err
		}
		switch sub {
		case "show":
			return a.ShowClient(ctx, id)
		case "delete":
			return a.DeleteClient(ctx, id, *yes)
		case "revoke":
			return a.RevokeClientTokens(ctx, id, *yes)
		}
		return fmt.Errorf("usage: authserver %s (unknown subcommand %q)", Commands[name], sub)
	case "tokens":
		sub, _ := arg(0, "list or revoke")
		if (sub != "list" && sub != "revoke") || (*user == "") == (*client == "") {
			return fmt.Errorf("usage: authserver %s", Commands[name])
		}
		if sub == "list" {
			return a.ListGrants(ctx, *user, *client)
		}
		if *user != "" {
			return a.RevokeUserTokens(ctx, *user, *yes)
		}
		return a.RevokeClientTokens(ctx, *client, *yes)
	case "purge":
		return a.Purge(ctx)
	case "backup":
		if *out == "" {
			return a.Backup(ctx, stdout)
		}
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("backup: %w", err)
		}
		if err := a.Backup(ctx, f); err != nil {
			f.Close()
			os.Remove(*out) // a partial backup must not pass for a whole one
			return err
		}
		return f.Close()
	case "restore":
		if *in == "" {
			return fmt.Errorf("usage: authserver %s", Commands[name])
		}
		f, err := os.Open(*in)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer f.Close()
		return a.Restore(ctx, f, *yes)
	}
	return nil
}

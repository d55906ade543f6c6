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

// Commands names the commands Run handles, for the authserver's command dispatch and its --help.
var Commands = map[string]string{
	"clients":          "clients list | show ID | delete ID --yes | revoke ID --yes | purge [--unused-for D] [--idle-for D] [--dry-run] --yes: registered clients",
	"tokens":           "tokens list --user ID | --client ID; tokens revoke --user ID | --client ID --yes: a user's or a client's grants",
	"connections":      "connections list [--user ID]; connections revoke --user ID [--upstream NAME] --yes: users' connected accounts (tokens never shown)",
	"purge":            "purge: remove expired records now",
	"backup":           "backup [--out FILE]: write the whole store as versioned JSON lines (stdout by default)",
	"restore":          "restore --in FILE --yes: load a backup (from either backend) into the store",
	"rotate-keys":      "rotate-keys [--activate-after D]: publish a new signing key; it signs after D (default 10m)",
	"generate-secrets": "generate-secrets: print fresh random secrets for a deployment's .env",
}

// Runner runs one command line with its streams: in this process (Local), or in the running server that holds the
// embedded store's file (Connect). stdin is the input the command reads (nil when it reads none).
type Runner func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Opener gives the commands where they run, and what to call once they are done. Connect is the one the authserver
// uses: the store itself, or a running server's admin socket.
type Opener func(ctx context.Context) (run Runner, done func() error, err error)

// Run runs one admin command line. args[0] is the command name (a key of Commands). open is called only by
// commands that need the store.
//
// The files a command line names (backup --out, restore --in) are the operator's: this process opens them, and the
// command writes and reads them as its stdout and stdin, wherever it runs.
func Run(ctx context.Context, args []string, open Opener, stdout, stderr io.Writer) error {
	l, err := parse(args, stdout)
	if err != nil {
		return err
	}
	if l.name == "generate-secrets" {
		return l.exec(ctx, nil, nil, stdout)
	}
	run, done, err := open(ctx)
	if err != nil {
		return err
	}
	defer done()
	var stdin io.Reader
	if l.in != "" {
		f, err := os.Open(l.in)
		if err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
		defer f.Close()
		stdin = f
	}
	if l.out == "" {
		return run(ctx, args, stdin, stdout, stderr)
	}
	f, err := os.OpenFile(l.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", l.name, err)
	}
	if err := run(ctx, args, stdin, f, stderr); err != nil {
		f.Close()
		os.Remove(l.out) // a partial output must not pass for a whole one
		return err
	}
	return f.Close()
}

// Local runs command lines on svc, in this process. A running server runs the command lines sent to its admin
// socket this way, on its own service.
func Local(svc *service.Service) Runner {
	return func(ctx context.Context, args []string, stdin io.Reader, stdout, _ io.Writer) error {
		l, err := parse(args, stdout)
		if err != nil {
			return err
		}
		err = l.exec(ctx, svc, stdin, stdout)
		svc.RecordCommand(ctx, l.command(), l.target(), err)
		return err
	}
}

// line is a parsed command line.
type line struct {
	name                              string
	positional                        []string
	json, yes, dryRun                 bool
	user, client, upstream, out, in   string
	unusedFor, idleFor, activateAfter time.Duration
}

// parse reads a command line; usage and --help go to usage.
func parse(args []string, usage io.Writer) (*line, error) {
	if len(args) == 0 {
		return nil, errors.New("admin: no command given")
	}
	l := &line{name: args[0]}
	if _, ok := Commands[l.name]; !ok {
		return nil, fmt.Errorf("admin: unknown command %q", l.name)
	}
	fs := flag.NewFlagSet(l.name, flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.BoolVar(&l.json, "json", false, "print JSON instead of a table")
	fs.BoolVar(&l.yes, "yes", false, "confirm a destructive action")
	fs.StringVar(&l.user, "user", "", "user id, the tokens' sub: a GitHub numeric id, or <provider>:<sub> (tokens list, tokens revoke)")
	fs.StringVar(&l.client, "client", "", "client id (tokens revoke)")
	fs.StringVar(&l.upstream, "upstream", "", "upstream name (connections revoke; empty: every upstream of the user)")
	fs.StringVar(&l.out, "out", "", "backup file to write (default stdout)")
	fs.StringVar(&l.in, "in", "", "backup file to read (restore)")
	fs.DurationVar(&l.unusedFor, "unused-for", 24*time.Hour, "clients purge: remove clients never used and registered longer ago than this (0: off; the server's --client-unused-lifetime default)")
	fs.DurationVar(&l.idleFor, "idle-for", 90*24*time.Hour, "clients purge: remove clients last used longer ago than this (0: off; the server's --client-lifetime default)")
	fs.BoolVar(&l.dryRun, "dry-run", false, "clients purge: list what would be removed, remove nothing")
	fs.DurationVar(&l.activateAfter, "activate-after", 10*time.Minute, "rotate-keys: how long a new key is published before it signs (longer than the plugin's JWKS refresh)")
	fs.Usage = func() { fmt.Fprintf(usage, "usage: authserver %s\n", Commands[l.name]); fs.PrintDefaults() }
	// Flags may come before or after positional arguments (`clients delete ID --yes`).
	rest := args[1:]
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		l.positional = append(l.positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if l.name == "restore" && l.in == "" {
		return nil, l.usage("")
	}
	return l, nil
}

// command names the command line for the audit trail: the command and its subcommand, e.g. "clients delete".
func (l *line) command() string {
	if (l.name == "clients" || l.name == "tokens") && len(l.positional) > 0 {
		return l.name + " " + l.positional[0]
	}
	return l.name
}

// target is what the command line acts on: a client's or a user's id, or "".
func (l *line) target() string {
	switch {
	case l.name == "clients" && len(l.positional) > 1:
		return l.positional[1]
	case l.user != "":
		return l.user
	}
	return l.client
}

func (l *line) usage(missing string) error {
	if missing == "" {
		return fmt.Errorf("usage: authserver %s", Commands[l.name])
	}
	return fmt.Errorf("usage: authserver %s (%s)", Commands[l.name], missing)
}

func (l *line) arg(i int, what string) (string, error) {
	if len(l.positional) <= i {
		return "", l.usage("missing " + what)
	}
	return l.positional[i], nil
}

// exec runs the command on svc. Its input and output are stdin and stdout: Run has opened the files the line names
// as those.
func (l *line) exec(ctx context.Context, svc *service.Service, stdin io.Reader, stdout io.Writer) error {
	a := &Admin{Service: svc, Out: stdout, JSON: l.json}
	switch l.name {
	case "generate-secrets":
		return a.GenerateSecrets()
	case "clients":
		sub, err := l.arg(0, "list, show, delete, revoke or purge")
		if err != nil {
			return err
		}
		if sub == "list" {
			return a.ListClients(ctx)
		}
		if sub == "purge" {
			return a.PurgeClients(ctx, service.PurgeClientsOptions{UnusedFor: l.unusedFor, IdleFor: l.idleFor, DryRun: l.dryRun}, l.yes)
		}
		id, err := l.arg(1, "the client id")
		if err != nil {
			return err
		}
		switch sub {
		case "show":
			return a.ShowClient(ctx, id)
		case "delete":
			return a.DeleteClient(ctx, id, l.yes)
		case "revoke":
			return a.RevokeClientTokens(ctx, id, l.yes)
		}
		return l.usage(fmt.Sprintf("unknown subcommand %q", sub))
	case "tokens":
		sub, _ := l.arg(0, "list or revoke")
		if (sub != "list" && sub != "revoke") || (l.user == "") == (l.client == "") {
			return l.usage("")
		}
		if sub == "list" {
			return a.ListGrants(ctx, l.user, l.client)
		}
		if l.user != "" {
			return a.RevokeUserTokens(ctx, l.user, l.yes)
		}
		return a.RevokeClientTokens(ctx, l.client, l.yes)
	case "connections":
		sub, _ := l.arg(0, "list or revoke")
		switch {
		case sub == "list" && l.upstream == "":
			return a.ListConnections(ctx, l.user)
		case sub == "revoke" && l.user != "":
			return a.RevokeConnections(ctx, l.user, l.upstream, l.yes)
		}
		return l.usage("")
	case "purge":
		return a.Purge(ctx)
	case "backup":
		return a.Backup(ctx, stdout)
	case "restore":
		if stdin == nil {
			return l.usage("no input")
		}
		return a.Restore(ctx, stdin, l.yes)
	case "rotate-keys":
		return a.RotateKeys(ctx, l.activateAfter)
	}
	return fmt.Errorf("admin: unknown command %q", l.name)
}

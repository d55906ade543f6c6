// Command mcp-diagnostic is a small MCP server for checking a gateway deployment: it serves MCP Streamable HTTP with
// the tools echo, whoami (the identity headers the gateway set, never a token) and replayLastEcho (per-session state),
// so a user can see at once that authentication and sessions work end to end.
//
// Every flag can also be set by an environment variable (MCP_DIAGNOSTIC_<FLAG>, e.g. MCP_DIAGNOSTIC_ADDR), as a
// container expects.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/flagenv"
)

type options struct {
	addr         string
	path         string
	allowedHosts string
	sessionIdle  time.Duration
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mcp-diagnostic:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	handler, err := newHandler(opts, logger)
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: opts.addr, Handler: handler, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("mcp-diagnostic listening", "addr", opts.addr, "path", opts.path)
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", opts.addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Open SSE streams never end on their own, so a shutdown that times out is normal: close what is left.
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", err)
	}
	_ = srv.Close()
	logger.Info("mcp-diagnostic stopped")
	return nil
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("mcp-diagnostic", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8090", "listen address (env MCP_DIAGNOSTIC_ADDR)")
	fs.StringVar(&o.path, "path", "/mcp", "path of the MCP endpoint (env MCP_DIAGNOSTIC_PATH)")
	fs.StringVar(&o.allowedHosts, "allowed-hosts", "",
		"comma-separated Host header values accepted, e.g. 'diagnostic.example.com' or '*' for any; empty: the SDK's "+
			"DNS-rebinding protection (on a loopback listener only loopback hosts) (env MCP_DIAGNOSTIC_ALLOWED_HOSTS)")
	idle := "30m"
	fs.Func("session-idle-timeout", "close sessions idle this long, 0 for never (env MCP_DIAGNOSTIC_SESSION_IDLE_TIMEOUT; default 30m)",
		func(s string) error { idle = s; return nil })
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if err := flagenv.Apply(fs, "MCP_DIAGNOSTIC", nil); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	d, err := time.ParseDuration(idle)
	if err != nil || d < 0 {
		return o, fmt.Errorf("session-idle-timeout: %q is not a duration such as 30m", idle)
	}
	o.sessionIdle = d
	if !strings.HasPrefix(o.path, "/") || o.path == "/health" {
		return o, fmt.Errorf("path: %q must start with / and not be /health", o.path)
	}
	return o, nil
}

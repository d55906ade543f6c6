package socket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/admin/service"
)

// Listen creates the admin socket at path, for the user the server runs as (and root) only. A socket file left at
// path by a server that ended without removing it is replaced; a path that is not a socket, or a socket some
// process still answers on, is an error.
func Listen(path string, log *slog.Logger) (net.Listener, error) {
	return listen(path, log, func(uid int) bool { return uid == os.Getuid() || uid == 0 })
}

func listen(path string, log *slog.Logger, allow func(uid int) bool) (net.Listener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		if len(path) > 100 {
			return nil, fmt.Errorf("admin socket: %w (a socket path is limited to about 100 bytes: set --admin-socket to a shorter one)", err)
		}
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// Owner only: connecting needs write permission on the socket file.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("admin socket: restrict %s to its owner: %w", path, err)
	}
	return &ownerOnly{Listener: ln, allow: allow, log: log}, nil
}

// removeStale removes a socket file nobody answers on (its server stopped without removing it).
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin socket: %s exists and is not a socket; remove it or set --admin-socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return fmt.Errorf("admin socket: another process serves %s (a second authserver on the same data file?)", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("admin socket: remove the stale %s: %w", path, err)
	}
	return nil
}

// ownerOnly refuses connections from processes of other users, where the system tells who is at the other end.
type ownerOnly struct {
	net.Listener
	allow func(uid int) bool
	log   *slog.Logger
}

// peerConn is an accepted connection and its peer's user id (-1 where the system cannot tell).
type peerConn struct {
	net.Conn
	uid int
}

func (l *ownerOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		switch {
		case errors.Is(err, errNoPeerCredentials):
			return &peerConn{Conn: c, uid: -1}, nil // the file's mode is the guard here
		case err != nil:
			l.log.Warn("admin socket: refused a connection whose peer is unknown", "err", err)
		case !l.allow(uid):
			l.log.Warn("admin socket: refused a connection from another user", "uid", uid)
		default:
			return &peerConn{Conn: c, uid: uid}, nil
		}
		_ = c.Close()
	}
}

// Serve answers the operator commands on ln with svc until ctx ends, then lets commands in flight (a backup)
// finish for up to 10 s, and returns.
func Serve(ctx context.Context, ln net.Listener, svc service.Service, log *slog.Logger) error {
	hs := &http.Server{
		Handler:           Handler(svc, log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok && pc.uid >= 0 {
				return context.WithValue(ctx, uidKey{}, pc.uid)
			}
			return ctx
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin socket: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil {
		_ = hs.Close()
	}
	<-errc
	return nil
}

type uidKey struct{}

// Handler serves every command of svc: one route per command, each a call of the service.
func Handler(svc service.Service, log *slog.Logger) http.Handler {
	h := &handler{mux: http.NewServeMux(), log: log}
	rpc(h, cmdListClients, func(ctx context.Context, _ struct{}) ([]service.Client, error) { return svc.ListClients(ctx) })
	rpc(h, cmdGetClient, func(ctx context.Context, a idArgs) (service.Client, error) { return svc.GetClient(ctx, a.ID) })
	rpc(h, cmdDeleteClient, func(ctx context.Context, a idArgs) (countOut, error) { return count(svc.DeleteClient(ctx, a.ID)) })
	rpc(h, cmdRevokeClient, func(ctx context.Context, a idArgs) (countOut, error) { return count(svc.RevokeClient(ctx, a.ID)) })
	rpc(h, cmdRevokeUser, func(ctx context.Context, a idArgs) (countOut, error) { return count(svc.RevokeUser(ctx, a.ID)) })
	rpc(h, cmdListGrants, func(ctx context.Context, f service.GrantFilter) ([]service.Grant, error) {
		return svc.ListGrants(ctx, f)
	})
	rpc(h, cmdPurge, func(ctx context.Context, _ struct{}) (countOut, error) { return count(svc.Purge(ctx)) })
	rpc(h, cmdPurgeClients, func(ctx context.Context, o service.PurgeClientsOptions) (service.PurgedClients, error) {
		return svc.PurgeClients(ctx, o)
	})
	rpc(h, cmdRotateKeys, func(ctx context.Context, a rotateArg) (service.KeyRotation, error) {
		return svc.RotateKeys(ctx, a.ActivateAfter)
	})
	h.handle(cmdBackup, func(w *answer, r *http.Request) error {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Trailer", backupStatus)
		if err := svc.Backup(r.Context(), w); err != nil {
			if w.started {
				w.Header().Set(backupStatus, "failed: "+err.Error())
			}
			return err
		}
		w.Header().Set(backupStatus, "ok")
		return nil
	})
	h.handle(cmdRestore, func(w *answer, r *http.Request) error {
		if err := svc.Restore(r.Context(), r.Body); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, struct{}{})
	})
	return h.mux
}

func count(n int, err error) (countOut, error) { return countOut{Count: n}, err }

type handler struct {
	mux *http.ServeMux
	log *slog.Logger
}

// answer is the response of one command; it remembers whether the answer has started.
type answer struct {
	http.ResponseWriter
	started bool
}

func (a *answer) WriteHeader(code int) { a.started = true; a.ResponseWriter.WriteHeader(code) }
func (a *answer) Write(b []byte) (int, error) {
	a.started = true
	return a.ResponseWriter.Write(b)
}

// handle serves one command at POST /v1/<name> and logs it (the command, who, how it went; never a record).
func (h *handler) handle(name string, fn func(w *answer, r *http.Request) error) {
	h.mux.HandleFunc("POST /v1/"+name, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		a := &answer{ResponseWriter: w}
		err := fn(a, r)
		attrs := []any{"command", name, "duration_ms", time.Since(start).Milliseconds()}
		if uid, ok := r.Context().Value(uidKey{}).(int); ok {
			attrs = append(attrs, "uid", uid)
		}
		if err != nil {
			kind, status := kindOf(err)
			if !a.started {
				_ = writeJSON(a, status, wireError{Error: err.Error(), Kind: kind})
			}
			h.log.Info("admin command failed", append(attrs, "kind", kind, "err", err)...)
			return
		}
		h.log.Info("admin command", attrs...)
	})
}

// rpc serves a command whose arguments and result are JSON.
func rpc[In, Out any](h *handler, name string, fn func(context.Context, In) (Out, error)) {
	h.handle(name, func(w *answer, r *http.Request) error {
		var in In
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			return &service.Error{Kind: service.ErrInvalid, Msg: "read the arguments: " + err.Error()}
		}
		if err := json.Unmarshal(body, &in); err != nil {
			return &service.Error{Kind: service.ErrInvalid, Msg: "decode the arguments: " + err.Error()}
		}
		out, err := fn(r.Context(), in)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, out)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

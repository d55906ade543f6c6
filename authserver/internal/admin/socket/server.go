package socket

import (
	"bytes"
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
	"strings"
	"sync"
	"time"
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

// Runner runs one command line with the caller's streams (stdin is empty when the caller sends none) and returns
// how it ended.
type Runner func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error

// Serve runs the command lines sent on ln with run until ctx ends, then lets commands in flight (a backup) finish
// for up to 10 s, and returns.
func Serve(ctx context.Context, ln net.Listener, run Runner, log *slog.Logger) error {
	hs := &http.Server{
		Handler:           Handler(run, log),
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

// Handler runs each command line sent to it with run, and logs it (the command, who, how it went; never an
// argument or a record).
func Handler(run Runner, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+runPath, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		args := r.URL.Query()["arg"]
		rc := http.NewResponseController(w)
		// The command may read its input while it writes its output.
		if err := rc.EnableFullDuplex(); err != nil {
			log.Warn("admin socket: no full duplex; a command reading its input cannot write meanwhile", "err", err)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		a := &answer{w: w, rc: rc}
		in := io.Reader(http.NoBody)
		if r.ContentLength != 0 {
			// The first byte of the answer would tell the client not to send the input (it waits for
			// "100 Continue", which the server sends on the first read of the body): hold the output back until the
			// command reads its input, so that a command refused before it does is answered before the upload.
			a.held = &bytes.Buffer{}
			in = &input{body: r.Body, read: a.release}
		}
		err := run(r.Context(), args, in, a.stream(frameStdout), a.stream(frameStderr))
		status := statusOf(err)
		sent := a.exit(status)
		attrs := []any{"command", commandName(args), "duration_ms", time.Since(start).Milliseconds()}
		if uid, ok := r.Context().Value(uidKey{}).(int); ok {
			attrs = append(attrs, "uid", uid)
		}
		switch {
		case err != nil:
			log.Info("admin command failed", append(attrs, "kind", status.Kind, "err", err)...)
		case sent != nil:
			log.Info("admin command failed", append(attrs, "err", fmt.Errorf("send the exit status: %w", sent))...)
		default:
			log.Info("admin command", attrs...)
		}
	})
	return mux
}

// commandName is what the log calls a command line: its first word and, unless it is a flag, its second
// (`clients show`, `tokens revoke`, `backup`): the arguments come after them and are not logged.
func commandName(args []string) string {
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		return args[0] + " " + args[1]
	}
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

// answer writes a command's output as frames, each sent on at once (a long command's output arrives as it is
// written), and last its exit status.
type answer struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	rc   *http.ResponseController
	held *bytes.Buffer // output not yet sent, until the command reads its input (nil: none held)
}

// stream is the writer of one of the command's output streams.
func (a *answer) stream(id byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for rest := p; len(rest) > 0; {
			n := min(len(rest), maxFrame)
			if err := a.frame(id, rest[:n]); err != nil {
				return len(p) - len(rest), err
			}
			rest = rest[n:]
		}
		return len(p), a.flush()
	})
}

func (a *answer) frame(id byte, p []byte) error {
	if a.held != nil {
		return writeFrame(a.held, id, p)
	}
	return writeFrame(a.w, id, p)
}

func (a *answer) flush() error {
	if a.held != nil {
		return nil
	}
	return a.rc.Flush()
}

// release sends the output held back so far; from now on output is sent as it is written.
func (a *answer) release() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.releaseLocked()
}

func (a *answer) releaseLocked() error {
	if a.held == nil {
		return nil
	}
	held := a.held
	a.held = nil
	if _, err := a.w.Write(held.Bytes()); err != nil {
		return err
	}
	return a.rc.Flush()
}

// exit sends the output still held back and the exit status: the answer is whole.
func (a *answer) exit(s exitStatus) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.releaseLocked(); err != nil {
		return err
	}
	if err := writeFrame(a.w, frameExit, b); err != nil {
		return err
	}
	return a.rc.Flush()
}

// input is the command's input; its first read, which asks the client for the upload, releases the output held back.
type input struct {
	body io.Reader
	read func() error
	once sync.Once
}

func (in *input) Read(p []byte) (int, error) {
	n, err := in.body.Read(p)
	var rerr error
	in.once.Do(func() { rerr = in.read() })
	if rerr != nil {
		return n, rerr
	}
	return n, err
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

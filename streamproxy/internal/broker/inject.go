package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/peruser"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
)

// placeholder matches `{token:<upstream>}` and `{token_file:<upstream>}`; upstream names are the authserver's:
// lower-case letters, digits and "-".
var placeholder = regexp.MustCompile(`\{(token|token_file):([^{}]*)\}`)

var upstreamName = regexp.MustCompile(`^[a-z0-9-]+$`)

// IsUpstreamName reports whether s is a well-formed upstream name.
func IsUpstreamName(s string) bool { return upstreamName.MatchString(s) }

// Injector fills the token placeholders of each process's environment.
type Injector struct {
	Broker *Client
	// Dir holds the token files: <Dir>/<user>/<process>/<upstream>, each directory 0700, each file 0600.
	Dir string
	// Lead is how long before a token's expiry its file is refreshed; Poll how often a file whose token has no
	// known expiry is; Retry how soon a failed refresh is tried again.
	Lead, Poll, Retry time.Duration
	Log               *slog.Logger

	tokens, files []string // upstreams named in each form, sorted
	upstreams     []string // both, sorted, each once
}

// Default intervals of the token files' refresh. The lead is inside the minute before expiry in which the broker
// refreshes a token when asked, so that the answer is a new token rather than the same one again.
const (
	DefaultLead  = 45 * time.Second
	DefaultPoll  = 5 * time.Minute
	DefaultRetry = 30 * time.Second
)

// minWait bounds how often one file is refreshed, whatever the token's lifetime.
const minWait = 5 * time.Second

// Placeholders returns the upstreams the --env values name, in each form, and an error a person can act on for a
// malformed placeholder or one in the working directory (a token has no place in a path).
func Placeholders(env []string, dir string) (tokens, files []string, err error) {
	if placeholder.MatchString(dir) {
		return nil, nil, errors.New("--workdir cannot hold {token:...} or {token_file:...}: name the token in an --env value")
	}
	for _, kv := range env {
		_, value, _ := strings.Cut(kv, "=")
		for _, m := range placeholder.FindAllStringSubmatch(value, -1) {
			if !upstreamName.MatchString(m[2]) {
				return nil, nil, fmt.Errorf("--env %s: upstream %q is not an upstream name (lower-case letters, digits and -)", m[0], m[2])
			}
			if m[1] == "token" {
				tokens = append(tokens, m[2])
			} else {
				files = append(files, m[2])
			}
		}
		if strings.Contains(value, "{token") && !placeholder.MatchString(value) {
			return nil, nil, fmt.Errorf("--env %q: a token placeholder is {token:<upstream>} or {token_file:<upstream>}", kv)
		}
	}
	slices.Sort(tokens)
	slices.Sort(files)
	return slices.Compact(tokens), slices.Compact(files), nil
}

// NewInjector returns the injector for a process environment that names upstreams, or nil when it names none.
func NewInjector(env []string, dir string, broker *Client, tokenDir string, log *slog.Logger) (*Injector, error) {
	tokens, files, err := Placeholders(env, dir)
	if err != nil || len(tokens)+len(files) == 0 {
		return nil, err
	}
	if broker == nil || broker.URL == "" {
		return nil, errors.New("{token:...} and {token_file:...} need the authserver's broker: set --broker-url and --broker-secret")
	}
	if len(files) > 0 {
		if err := privateDir(tokenDir); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Injector{Broker: broker, Dir: tokenDir, Lead: DefaultLead, Poll: DefaultPoll, Retry: DefaultRetry, Log: log,
		tokens: tokens, files: files, upstreams: slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(tokens), files...))))}, nil
}

// privateDir creates the directory of the token files, or checks the one that exists: this account's own, a
// directory rather than a link, and closed to every other account (in a shared /tmp, another account could have made
// it first to read what is written beneath it).
func privateDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("--token-dir %q must be an absolute path", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--token-dir: %w", err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("--token-dir: %w", err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !info.IsDir() || info.Mode().Perm()&0o077 != 0 || (ok && int(st.Uid) != os.Geteuid()) {
		return fmt.Errorf("--token-dir %s must be a directory of this account that no other account can enter (mode 0700); it is %v", dir, info.Mode())
	}
	return nil
}

// Process is one process's credentials: the token files it reads, kept current until Close, and the watch on its
// user's connections.
type Process struct {
	in    *Injector
	user  string
	dir   string // this process's directory of token files; "" when it has none
	stop  chan struct{}
	gone  chan struct{} // closed when the user's connection is gone
	once  sync.Once     // closes gone
	close sync.Once
	ended sync.WaitGroup
}

// Start fetches the user's tokens for a new process and returns its environment with the placeholders filled. A
// user who has not connected an upstream gets a *ConnectRequired naming every such upstream.
func (in *Injector) Start(ctx context.Context, user string, env []string) ([]string, *Process, error) {
	if user == "" {
		return nil, nil, peruser.ErrNoIdentity
	}
	got := map[string]Token{}
	var connect ConnectRequired
	for _, upstream := range in.upstreams {
		t, err := in.Broker.Token(ctx, user, upstream)
		var cr *ConnectRequired
		switch {
		case errors.As(err, &cr):
			connect.Connects = append(connect.Connects, cr.Connects...)
		case err != nil:
			return nil, nil, err
		default:
			got[upstream] = t
		}
	}
	if len(connect.Connects) > 0 {
		return nil, nil, &connect
	}
	p := &Process{in: in, user: user, stop: make(chan struct{}), gone: make(chan struct{})}
	if len(in.files) > 0 {
		id, err := session.RandomID()
		if err != nil {
			return nil, nil, err
		}
		p.dir = filepath.Join(in.Dir, peruser.Segment(user), id[:16])
		if err := os.MkdirAll(p.dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("token files: %w", err)
		}
		for _, upstream := range in.files {
			if err := p.write(upstream, got[upstream].AccessToken); err != nil {
				p.Close()
				return nil, nil, err
			}
		}
	}
	filled := make([]string, len(env))
	for i, kv := range env {
		filled[i] = kv
		key, value, ok := strings.Cut(kv, "=")
		if !ok || !placeholder.MatchString(value) {
			continue
		}
		filled[i] = key + "=" + placeholder.ReplaceAllStringFunc(value, func(m string) string {
			s := placeholder.FindStringSubmatch(m)
			switch {
			case s[1] == "token" && slices.Contains(in.tokens, s[2]):
				return got[s[2]].AccessToken
			case s[1] == "token_file" && slices.Contains(in.files, s[2]):
				return p.path(s[2])
			}
			return m // not one of --env's (a variable passed from the proxy's own environment): left as it is
		})
	}
	for _, upstream := range in.upstreams {
		p.ended.Add(1)
		go p.keepCurrent(upstream, got[upstream].ExpiresAt, slices.Contains(in.files, upstream))
	}
	return filled, p, nil
}

func (p *Process) path(upstream string) string { return filepath.Join(p.dir, upstream) }

// write replaces the upstream's token file at once: a reader sees the old token or the new one, never a part.
func (p *Process) write(upstream, token string) error {
	f, err := os.CreateTemp(p.dir, "."+upstream+".*") // 0600
	if err != nil {
		return fmt.Errorf("token file for %s: %w", upstream, err)
	}
	_, err = f.WriteString(token)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p.path(upstream))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("token file for %s: %w", upstream, err)
	}
	return nil
}

// keepCurrent asks for one upstream's token again before it expires, until the process ends, and writes it to the
// token file when the process has one (an environment cannot change: there the asking only finds out whether the
// connection is still there). When the broker says the user's connection is gone (disconnected, revoked), the file
// is removed and Gone is closed: the process must not carry on with a credential its user withdrew.
func (p *Process) keepCurrent(upstream string, expires time.Time, file bool) {
	defer p.ended.Done()
	for {
		wait := p.in.Poll
		if !expires.IsZero() {
			wait = max(time.Until(expires)-p.in.Lead, minWait)
		}
		select {
		case <-p.stop:
			return
		case <-time.After(wait):
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-p.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		t, err := p.in.Broker.Token(ctx, p.user, upstream)
		cancel()
		var cr *ConnectRequired
		switch {
		case errors.As(err, &cr):
			p.in.Log.Warn("the user's connection is gone: ending the MCP server process that used it", "upstream", upstream)
			if file {
				_ = os.Remove(p.path(upstream))
			}
			p.once.Do(func() { close(p.gone) })
			return
		case err != nil:
			select {
			case <-p.stop:
				return
			default:
			}
			p.in.Log.Warn("cannot ask for a process's token again; it keeps the token it has", "upstream", upstream, "err", err)
			expires = time.Now().Add(p.in.Retry + p.in.Lead)
		default:
			if file {
				if err := p.write(upstream, t.AccessToken); err != nil {
					p.in.Log.Error("cannot write a token file", "upstream", upstream, "err", err)
				}
			}
			expires = t.ExpiresAt
		}
	}
}

// Dir is the directory of the process's token files, "" when it has none: the one place outside its own settings
// that the sandbox must let the process read.
func (p *Process) Dir() string { return p.dir }

// Gone is closed when the broker has said the user's connection to one of the process's upstreams is gone.
func (p *Process) Gone() <-chan struct{} { return p.gone }

// Close stops the refresh and removes the process's token files; call it once the process has ended.
func (p *Process) Close() {
	if p == nil {
		return
	}
	p.close.Do(func() {
		close(p.stop)
		p.ended.Wait()
		if p.dir != "" {
			if err := os.RemoveAll(p.dir); err != nil {
				p.in.Log.Error("cannot remove token files", "err", err)
			}
			_ = os.Remove(filepath.Dir(p.dir)) // the user's directory, once no process of theirs has files in it
		}
	})
}

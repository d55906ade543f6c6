// Package session runs one stdio MCP server per session and routes JSON-RPC messages between it and HTTP requests.
//
// The child's stdout is read by one goroutine. A response goes to the HTTP request that waits for its id; a request
// or notification from the server goes to the request it relates to (by subscription id, by progress token, else the
// oldest request in flight), or, when none is in flight, to the session's standalone stream (the GET SSE stream),
// whose recent events are kept for resumption, or to the Unrouted hook when one is set; a request the Answer hook
// answers goes nowhere else. Ids are the caller's: on the session path a session passes the client's ids through; on
// the stateless path a worker gives each request a key of its own.
package session

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/jsonobj"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/metrics"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/sandbox"
)

// Errors the transport maps to HTTP statuses.
var (
	ErrClosed      = errors.New("session ended")
	ErrDuplicateID = errors.New("a request with this id is already in flight")
	ErrStreamBusy  = errors.New("another stream is already open for this session")
)

// Message is one JSON-RPC message from the child, with the fields routing needs decoded.
type Message struct {
	Raw    []byte
	ID     json.RawMessage // nil for notifications
	Method string          // "" for responses
	// Result and Error are a response's members as the child wrote them, read with the rest of the head so that
	// a response can be passed on re-keyed without decoding it again.
	Result, Error json.RawMessage
}

// IsResponse reports whether the message answers a request.
func (m *Message) IsResponse() bool { return m.Method == "" && m.ID != nil }

// Event is a message on the standalone stream, numbered for Last-Event-ID.
type Event struct {
	Seq uint64
	Raw []byte
}

// Command is what a session runs.
type Command struct {
	Path string
	Args []string
	Env  []string // full environment of the child
	Dir  string
	// Sandbox, when set, starts the child confined: writing only beneath Dir (when set) and UserPaths.
	Sandbox   *sandbox.Sandbox
	UserPaths []string // the paths the user's settings name for them (peruser.Settings.Paths)
}

// Config says how a session's child is supervised and where messages that belong to no request go.
type Config struct {
	Command Command
	UserID  string
	Backlog int // standalone events kept for resumption
	// Unrouted, when set, takes every message that belongs to no request in flight instead of the standalone
	// stream and its backlog (a worker, on the stateless path, has no GET stream).
	Unrouted func(*Message)
	// Answer, when set, sees each request from the child first: a non-nil answer is sent back to the child, and the
	// request goes no further (the proxy answers it in place of any client).
	Answer func(*Message) []byte
	// Shared marks a child that serves several callers (--share): a server request or log message goes to the
	// oldest call in flight only when every call in flight is one owner's (CallFor), for the oldest call could be
	// another caller's; otherwise it is unrouted.
	Shared  bool
	Log     *slog.Logger
	Metrics *metrics.Metrics
}

// Session is one client's MCP session and its child process.
type Session struct {
	ID     string
	UserID string // the identity bound at initialize, "" when none was given

	log    atomic.Pointer[slog.Logger] // replaced once, when a process started ahead is adopted
	stdin  io.Closer
	signal func(syscall.Signal) // nil: the child ends when its stdin closes
	in     *bufio.Writer
	inMu   sync.Mutex

	mu         sync.Mutex
	pending    map[string]*Call // by raw request id
	order      []*Call          // in flight, oldest first
	progress   map[string]*Call // by raw progress token
	stream     chan Event       // the open standalone stream, if any
	backlog    []Event          // recent standalone events for resumption
	backlogCap int
	unrouted   func(*Message)
	answer     func(*Message) []byte
	shared     bool
	seq        uint64
	lastUsed   time.Time
	closed     bool
	closing    bool // Close was called: the child's exit is expected, not a crash
	metrics    *metrics.Metrics
	done       chan struct{} // closed when the session has ended
	exited     chan struct{} // closed when the child has been reaped
}

// Call is one request in flight at the child. Its messages arrive on Messages, the response last; End forgets it.
// Do runs a whole call for callers that need nothing more.
type Call struct {
	key   string
	owner string // who the call is for, on a shared child (Config.Shared)
	s     *Session
	msgs  chan *Message
}

// Messages delivers the call's messages, its response last. When the session ends, the call gets an error response
// if there is room for it; Session.Done tells a reader that stopped reading.
func (c *Call) Messages() <-chan *Message { return c.msgs }

// End forgets the call (answered, or given up on): later messages for it are dropped.
func (c *Call) End() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.s.forgetLocked(c)
	c.s.lastUsed = time.Now()
}

// Start launches the child for a new session: the command in a process group of its own, through the sandbox's
// launcher when it has one, its stderr to the log.
func Start(cfg Config) (*Session, error) {
	cmdSpec := cfg.Command
	path, args, err := cmdSpec.Sandbox.Wrap(cmdSpec.Path, cmdSpec.Args, cmdSpec.Dir, cmdSpec.UserPaths)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = cmdSpec.Env
	cmd.Dir = cmdSpec.Dir
	// Own process group, so ending the session also ends what the server started (npx, uvx and shells fork).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("child stdout: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("child stderr: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start MCP server %q: %w", cmdSpec.Path, err)
	}
	pgid := -cmd.Process.Pid
	s, err := connect(cfg, child{stdin: stdin, stdout: stdout, stderr: stderr, pid: cmd.Process.Pid,
		wait: func() (string, error) {
			err := cmd.Wait()
			return cmd.ProcessState.String(), err
		},
		signal: func(sig syscall.Signal) { _ = syscall.Kill(pgid, sig) },
	})
	if err != nil {
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, err
	}
	return s, nil
}

// child is the MCP server a session talks to, over its stdio: a process (Start), or a server in memory (the
// package's tests, which route messages without a process).
type child struct {
	stdin  io.WriteCloser
	stdout io.Reader
	stderr io.Reader // nil: none
	pid    int       // 0: no process
	// wait reaps the child once its output has ended and says how it exited; nil: there is nothing to reap.
	wait func() (string, error)
	// signal signals the child's process group; nil: it ends when its stdin closes.
	signal func(syscall.Signal)
}

// connect starts a session over a running child: it reads the child's output until it ends.
func connect(cfg Config, c child) (*Session, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	m := cfg.Metrics
	s := &Session{
		ID: id, UserID: cfg.UserID,
		stdin:      c.stdin,
		signal:     c.signal,
		in:         bufio.NewWriterSize(c.stdin, 64<<10),
		pending:    map[string]*Call{},
		progress:   map[string]*Call{},
		backlogCap: cfg.Backlog,
		unrouted:   cfg.Unrouted,
		answer:     cfg.Answer,
		shared:     cfg.Shared,
		metrics:    m,
		lastUsed:   time.Now(),
		done:       make(chan struct{}),
		exited:     make(chan struct{}),
	}
	s.log.Store(cfg.Log.With("session", id[:8]))
	if c.pid != 0 {
		s.log.Load().Info("session started", "pid", c.pid)
	} else {
		s.log.Load().Info("session started")
	}
	m.ChildStarted()
	// Wait must only run once both pipes are drained, or the last lines the server wrote are lost.
	var readers sync.WaitGroup
	if c.stderr != nil {
		readers.Add(1)
		go func() { defer readers.Done(); s.logStderr(c.stderr) }()
	}
	readers.Add(1)
	go func() { defer readers.Done(); s.readLoop(c.stdout) }()
	go func() {
		readers.Wait()
		if c.wait != nil {
			status, err := c.wait()
			s.log.Load().Info("MCP server exited", "status", status, "err", err)
		}
		s.mu.Lock()
		crashed := !s.closing
		s.mu.Unlock()
		m.ChildExited(crashed)
		close(s.exited)
	}()
	return s, nil
}

func newID() (string, error) {
	id, err := RandomID()
	if err != nil {
		return "", fmt.Errorf("session id: %w", err)
	}
	return id, nil
}

// RandomID returns 192 random bits, base64url: unguessable ids for sessions and request state.
func RandomID() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Adopt gives a session started ahead for nobody (package pool) to the user it now serves, with the hook for their
// messages that belong to no request (Config.Unrouted) and the log of what it now is (a worker's says so); the caller
// does so before anyone else can reach the session. What the child sent while it waited is forgotten: it was nobody's.
func (s *Session) Adopt(user string, unrouted func(*Message), log *slog.Logger) {
	s.log.Store(log.With("session", s.ID[:8]))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.UserID = user
	s.unrouted = unrouted
	s.backlog = nil
	s.lastUsed = time.Now()
}

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Touch records activity, for the idle timeout.
func (s *Session) Touch() {
	s.mu.Lock()
	s.lastUsed = time.Now()
	s.mu.Unlock()
}

// IdleSince reports when the session was last used, and whether it is busy (requests in flight or a stream open).
func (s *Session) IdleSince() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastUsed, len(s.order) > 0 || s.stream != nil
}

// oneOwnerLocked reports whether every call in flight is one owner's; s.mu is held.
func (s *Session) oneOwnerLocked() bool {
	for _, c := range s.order[1:] {
		if c.owner != s.order[0].owner {
			return false
		}
	}
	return true
}

// Send writes one message to the child.
func (s *Session) Send(raw []byte) error {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	// One message is one line on stdio: a body with raw newlines between its tokens would reach the child as two.
	// Inside a JSON string a newline is always escaped, so a message without one is a line already and is only
	// checked, not copied (the proxy's own encodings are compact).
	switch {
	case bytes.IndexByte(raw, '\n') >= 0:
		var line bytes.Buffer
		if err := json.Compact(&line, raw); err != nil {
			return fmt.Errorf("message for the MCP server: %w", err)
		}
		raw = line.Bytes()
	case !json.Valid(raw):
		return errors.New("message for the MCP server: not one JSON value")
	}
	if _, err := s.in.Write(raw); err != nil {
		return fmt.Errorf("write to MCP server: %w", err)
	}
	if err := s.in.WriteByte('\n'); err != nil {
		return fmt.Errorf("write to MCP server: %w", err)
	}
	if err := s.in.Flush(); err != nil {
		return fmt.Errorf("write to MCP server: %w", err)
	}
	s.metrics.Message("to_server")
	return nil
}

// Call registers a request by its id (and progress token, if any) and sends it. The caller reads Messages until the
// response and then calls End.
func (s *Session) Call(id json.RawMessage, progressToken json.RawMessage, raw []byte) (*Call, error) {
	return s.CallFor("", id, progressToken, raw)
}

// CallFor is Call on behalf of an owner: on a shared child, the messages that relate to the work in flight reach a
// call only while no other owner's call is in flight.
func (s *Session) CallFor(owner string, id json.RawMessage, progressToken json.RawMessage, raw []byte) (*Call, error) {
	c := &Call{key: string(id), owner: owner, s: s, msgs: make(chan *Message, 64)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := s.pending[c.key]; dup {
		s.mu.Unlock()
		return nil, ErrDuplicateID
	}
	s.pending[c.key] = c
	s.order = append(s.order, c)
	if progressToken != nil {
		s.progress[string(progressToken)] = c
	}
	s.lastUsed = time.Now()
	s.mu.Unlock()
	if err := s.Send(raw); err != nil {
		c.End()
		return nil, err
	}
	return c, nil
}

// Do runs a call: it sends the request, passes every message before the response to each, and returns the
// response, ctx's error when the caller gave up, or ErrClosed when the session ended without answering.
func (s *Session) Do(ctx context.Context, id, progressToken json.RawMessage, raw []byte, each func(*Message)) (*Message, error) {
	c, err := s.Call(id, progressToken, raw)
	if err != nil {
		return nil, err
	}
	defer c.End()
	for {
		select {
		case m := <-c.msgs:
			if m.IsResponse() {
				return m, nil
			}
			each(m)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.done:
			// The session's farewell error response may already wait in the channel.
			select {
			case m := <-c.msgs:
				if m.IsResponse() {
					return m, nil
				}
			default:
			}
			return nil, ErrClosed
		}
	}
}

func (s *Session) forgetLocked(c *Call) {
	if s.pending[c.key] == c {
		delete(s.pending, c.key)
	}
	for i, o := range s.order {
		if o == c {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	for k, o := range s.progress {
		if o == c {
			delete(s.progress, k)
		}
	}
}

// OpenStream opens the standalone stream. Events after lastEventID still in the backlog are replayed first.
func (s *Session) OpenStream(lastEventID uint64, resume bool) (<-chan Event, []Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, ErrClosed
	}
	if s.stream != nil {
		return nil, nil, ErrStreamBusy
	}
	var replay []Event
	if resume {
		for _, e := range s.backlog {
			if e.Seq > lastEventID {
				replay = append(replay, e)
			}
		}
	}
	s.stream = make(chan Event, 256)
	return s.stream, replay, nil
}

// CloseStream closes the standalone stream opened by OpenStream.
func (s *Session) CloseStream(ch <-chan Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != nil && (<-chan Event)(s.stream) == ch {
		s.stream = nil
	}
	s.lastUsed = time.Now()
}

func (s *Session) readLoop(stdout io.Reader) {
	r := bufio.NewReaderSize(stdout, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			s.route(line)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.log.Load().Warn("reading MCP server output", "err", err)
			}
			s.end("MCP server process exited")
			return
		}
	}
}

// route delivers one message from the child.
func (s *Session) route(line []byte) {
	head, err := readHead(line)
	if err != nil {
		s.log.Load().Warn("MCP server wrote a line that is not JSON-RPC; dropped", "bytes", len(line))
		return
	}
	s.metrics.Message("to_client")
	m := &Message{Raw: line, ID: head.id, Method: head.method, Result: head.result, Error: head.error}
	if s.answer != nil && m.ID != nil && m.Method != "" {
		if reply := s.answer(m); reply != nil {
			if err := s.Send(reply); err != nil {
				s.log.Load().Warn("answering the MCP server's request", "method", m.Method, "err", err)
			}
			return
		}
	}
	s.mu.Lock()
	var target *Call
	switch {
	case m.IsResponse():
		// Forget the call now, not when its HTTP request finishes: a message that follows the response must not
		// be routed to a request that will never read it.
		if target = s.pending[string(m.ID)]; target != nil {
			s.forgetLocked(target)
		}
	case head.subscriptionID != nil:
		// 2026-07-28 subscriptions/listen: the notification names the listen request it belongs to.
		target = s.pending[string(head.subscriptionID)]
	case head.progressToken != nil:
		target = s.progress[string(head.progressToken)]
	case m.ID != nil || m.Method == "notifications/message":
		// Server requests (sampling, elicitation, roots) and log messages belong to the work in flight; with
		// several requests in flight the oldest one carries them. Other notifications (list changes, resource
		// updates) go to the standalone stream. On a shared child, only while one owner has calls in flight.
		if len(s.order) > 0 && (!s.shared || s.oneOwnerLocked()) {
			target = s.order[0]
		}
	}
	if target != nil {
		s.mu.Unlock()
		select {
		case target.msgs <- m: // the request is waiting for it: no timer needed
		default:
			select {
			case target.msgs <- m:
			case <-time.After(30 * time.Second):
				// The request's client stopped reading; don't stall the whole session for it.
				s.log.Load().Warn("dropped a message for a request whose client does not read", "method", m.Method)
			}
		}
		return
	}
	if m.IsResponse() {
		s.mu.Unlock()
		s.log.Load().Debug("response for a request no longer waiting; dropped")
		return
	}
	if s.unrouted != nil {
		s.mu.Unlock()
		s.unrouted(m)
		return
	}
	s.seq++
	e := Event{Seq: s.seq, Raw: line}
	if s.backlogCap > 0 {
		if len(s.backlog) == s.backlogCap {
			s.backlog = append(s.backlog[:0], s.backlog[1:]...)
		}
		s.backlog = append(s.backlog, e)
	}
	stream := s.stream
	s.mu.Unlock()
	if stream != nil {
		select {
		case stream <- e:
		default:
			s.log.Load().Warn("standalone stream is not read; the client can resume from its backlog", "seq", e.Seq)
		}
	}
}

// head is what routing reads of a message from the child; every value is a slice of the message's line.
type head struct {
	id, result, error json.RawMessage
	method            string
	progressToken     json.RawMessage // params.progressToken
	subscriptionID    json.RawMessage // params._meta's 2026-07-28 subscription id
}

// readHead reads a message's head, walking its members rather than decoding it: a response's result, often most of
// the line, is passed on as written and never decoded.
func readHead(line []byte) (head, error) {
	var h head
	err := jsonobj.Each(line, func(name, value []byte) error {
		switch string(name) {
		case "id":
			if string(value) != "null" {
				h.id = value
			}
		case "method":
			method, err := jsontext.AppendUnquote(nil, value)
			h.method = string(method)
			return err
		case "result":
			h.result = value
		case "error":
			h.error = value
		case "params":
			if value[0] == '{' {
				return jsonobj.Each(value, h.readParams)
			}
		}
		return nil
	})
	return h, err
}

func (h *head) readParams(name, value []byte) error {
	switch string(name) {
	case "progressToken":
		h.progressToken = value
	case "_meta":
		if value[0] == '{' {
			return jsonobj.Each(value, func(name, value []byte) error {
				if string(name) == "io.modelcontextprotocol/subscriptionId" {
					h.subscriptionID = value
				}
				return nil
			})
		}
	}
	return nil
}

// end marks the session over and fails every request in flight with a JSON-RPC error.
func (s *Session) end(reason string) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	calls := s.order
	s.order, s.pending, s.progress = nil, map[string]*Call{}, map[string]*Call{}
	s.mu.Unlock()
	for _, c := range calls {
		raw, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": json.RawMessage(c.key),
			"error": map[string]any{"code": -32603, "message": reason}})
		select {
		case c.msgs <- &Message{Raw: raw, ID: json.RawMessage(c.key)}:
		default: // its reader stopped reading; it learns of the end from Done
		}
	}
	close(s.done)
	s.log.Load().Info("session ended", "reason", reason)
}

// Close ends the session: stdin is closed so the server can exit on its own; if it has not after a moment, its
// process group gets SIGTERM, and SIGKILL after grace.
func (s *Session) Close(grace time.Duration) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.inMu.Lock()
	_ = s.stdin.Close()
	s.inMu.Unlock()
	s.end("session closed")
	select {
	case <-s.exited:
		return
	case <-time.After(200 * time.Millisecond):
	}
	if s.signal == nil {
		<-s.exited
		return
	}
	s.signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(grace):
		s.signal(syscall.SIGKILL)
		<-s.exited
	}
}

func (s *Session) logStderr(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		s.log.Load().Info("MCP server stderr", "line", sc.Text())
	}
}

// inherited are the variables of the proxy's environment every child gets: what a program needs to find its tools,
// home and locale. Anything else (credentials the proxy holds, say) stays with the proxy unless passed on by name.
var inherited = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR"}

// Env returns a child's environment: the inherited variables and those named in pass, from the proxy's environment,
// then the extra KEY=value pairs.
func Env(pass, extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(inherited, name) || slices.Contains(pass, name) || strings.HasPrefix(name, "LC_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

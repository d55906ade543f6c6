package mcpclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stdioSession drives an MCP server process over its stdin and stdout (newline-delimited JSON-RPC).
type stdioSession struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	stateless bool // protocol version 2026-07-28: no initialize, the request metadata in every request
	next      atomic.Int64
	init      time.Duration // from process start to the initialize (2026-07-28: server/discover) result

	wmu     sync.Mutex // serialises writes to stdin
	mu      sync.Mutex
	pending map[int64]chan *message
	readErr error
	done    chan struct{}
}

// OpenStdio starts cmd (its Stdin and Stdout must be unset) and initializes a session with it.
func OpenStdio(ctx context.Context, cmd *exec.Cmd) (Session, error) {
	return openStdio(ctx, cmd, false)
}

// OpenStdioStateless starts cmd (its Stdin and Stdout must be unset) and speaks protocol version 2026-07-28 to it,
// as an HTTPClient with Stateless does: server/discover (which must list the version), then every request with the
// request metadata in params._meta. These are the messages a 2026-07-28 proxy passes on to a child that speaks it.
func OpenStdioStateless(ctx context.Context, cmd *exec.Cmd) (Session, error) {
	return openStdio(ctx, cmd, true)
}

func openStdio(ctx context.Context, cmd *exec.Cmd, stateless bool) (Session, error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	s := &stdioSession{cmd: cmd, stdin: stdin, stateless: stateless, pending: map[int64]chan *message{}, done: make(chan struct{})}
	go s.read(stdout)
	if stateless {
		err := discover(ctx, s)
		s.init = time.Since(t0)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		return s, nil
	}
	if _, err := s.Call(ctx, "initialize", initializeParams()); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("initialize: %w", err)
	}
	s.init = time.Since(t0)
	if err := s.write(request{JSONRPC: "2.0", Method: "notifications/initialized"}); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	return s, nil
}

// Pid is the server process id.
func Pid(s Session) int {
	if ss, ok := s.(*stdioSession); ok && ss.cmd.Process != nil {
		return ss.cmd.Process.Pid
	}
	return 0
}

func (s *stdioSession) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		m := &message{}
		if json.Unmarshal(sc.Bytes(), m) != nil || m.Method != "" || len(m.ID) == 0 {
			continue // log lines, notifications and server requests are not answers
		}
		id, err := strconv.ParseInt(string(m.ID), 10, 64)
		if err != nil {
			continue
		}
		s.mu.Lock()
		ch := s.pending[id]
		delete(s.pending, id)
		s.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	s.mu.Lock()
	s.readErr = sc.Err()
	if s.readErr == nil {
		s.readErr = errors.New("server closed its stdout")
	}
	s.mu.Unlock()
	close(s.done)
}

func (s *stdioSession) write(r request) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err = s.stdin.Write(b)
	return err
}

func (s *stdioSession) Call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	id := s.next.Add(1)
	if s.stateless {
		params, _ = withStatelessMeta(params)
	}
	ch := make(chan *message, 1)
	s.mu.Lock()
	s.pending[id] = ch
	s.mu.Unlock()
	if err := s.write(request{JSONRPC: "2.0", ID: &id, Method: method, Params: params}); err != nil {
		return nil, fmt.Errorf("write request: %w", err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return nil, m.Error
		}
		return m.Result, nil
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return nil, s.readErr
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		return nil, ctx.Err()
	}
}

// Close closes stdin (the MCP stdio shutdown) and kills the process if it does not exit.
func (s *stdioSession) Close() error {
	_ = s.stdin.Close()
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	return nil
}

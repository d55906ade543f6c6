package transport

// Processes: how many MCP server processes run, and for whom. A session (the session path) and a worker (the
// stateless path) are one process each and count against the same limits.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/broker"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/peruser"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/session"
	"github.com/mcp-oauth-gateway/gateway/streamproxy/internal/starts"
)

var (
	errShuttingDown = errors.New("the proxy is shutting down")
	errTooMany      = errors.New("too many MCP server processes")
	errUserLimit    = errors.New("every MCP server process of this user is busy")
	errStartWait    = errors.New("waited too long for a turn to start an MCP server process")
	// With --share the limits count sessions, not processes, and what frees one is the client's DELETE.
	errTooManySessions = errors.New("too many sessions on the shared MCP server processes")
	errUserSessions    = errors.New("this user has as many sessions as allowed")
)

// roomLocked reports whether one more process fits, in all and for the user (userRoomLocked), and takes it from the
// pool when one waits there (nil: start a fresh one with launch); h.mu is held. now: the process starts now, so the
// user's session to recycle is ended and a pooled process taken; otherwise (before the turn to start) nothing is.
func (h *Handler) roomLocked(user string, now bool) (*session.Session, error) {
	freed, err := h.userRoomLocked(user, false, now)
	if err != nil {
		return nil, err
	}
	if now {
		if s := h.pool.Take(); s != nil {
			return s, nil // counted against --max-sessions since it started
		}
		freed = 0 // the recycled session is gone from h.sessions already
	}
	if h.cfg.MaxSessions > 0 && len(h.sessions)+len(h.workers)+h.pool.Held()-freed >= h.cfg.MaxSessions {
		return nil, errTooMany
	}
	return nil, nil
}

// userRoomLocked makes room for one more process of the user's within --max-per-user; h.mu is held. counted: the
// new process is among the user's already (a worker is known before it starts). A user at their limit gets their
// least recently used idle session recycled (clients that went away without DELETE leave sessions behind until the
// idle timeout; its client, if it ever returns, gets 404 and initializes again), ended only when end is set: a
// client that leaves while its start waits for a turn must not have cost the user a session. freed is 1 when a
// session is (or, without end, would be) recycled. Only a user whose every process is busy is refused.
func (h *Handler) userRoomLocked(user string, counted, end bool) (freed int, err error) {
	if h.cfg.MaxPerUser <= 0 || user == "" {
		return 0, nil
	}
	n := 0
	if h.workers[user] != nil {
		n++
	}
	var oldest *session.Session
	var oldestUse time.Time
	for _, s := range h.sessions {
		if s.UserID != user {
			continue
		}
		n++
		if last, busy := s.IdleSince(); !busy && (oldest == nil || last.Before(oldestUse)) {
			oldest, oldestUse = s, last
		}
	}
	if counted {
		n--
	}
	if n < h.cfg.MaxPerUser {
		return 0, nil
	}
	if oldest == nil {
		return 0, errUserLimit
	}
	if end {
		delete(h.sessions, oldest.ID)
		h.cfg.Metrics.Expired()
		h.log.Info("recycling the user's least recently used session", "session", oldest.ID[:8])
		go oldest.Close(childGrace)
	}
	return 1, nil
}

// reserveLocked is roomLocked for a new session: when no pooled process is to be had, it waits for a turn to start
// one (waitStart) with h.mu released, since others need it meanwhile, then asks roomLocked again, as anything may have
// changed while it waited. h.mu is held on entry and on return; release gives the turn back once the process has
// answered (a no-op for a pooled process, or on an error).
func (h *Handler) reserveLocked(ctx context.Context, user string) (pooled *session.Session, release func(), err error) {
	release = func() {}
	turn := false
	for {
		if h.closing {
			release()
			return nil, func() {}, errShuttingDown
		}
		pooled, err = h.roomLocked(user, turn || h.pool.Ready() > 0)
		if err != nil || pooled != nil {
			release()
			return pooled, func() {}, err
		}
		if turn {
			return nil, release, nil
		}
		h.mu.Unlock()
		release, err = h.waitStart(ctx)
		h.mu.Lock()
		if err != nil {
			return nil, func() {}, err
		}
		turn = true
	}
}

// waitStart waits for a turn to start a process for a user's request (package starts), as long as its client waits
// but at most --start-wait.
func (h *Handler) waitStart(ctx context.Context) (release func(), err error) {
	if h.cfg.StartWait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, h.cfg.StartWait, errStartWait)
		defer cancel()
	}
	release, err = h.starts.Wait(ctx, starts.ForUser)
	if errors.Is(err, starts.ErrClosed) {
		return nil, errShuttingDown
	}
	return release, err
}

// launch gives a new session or worker its process: pooled, the one roomLocked took from the pool, else a fresh
// one. Both run the same command, confined alike: the pool serves only a command without per-user settings.
func (h *Handler) launch(cfg session.Config, pooled *session.Session) (*session.Session, error) {
	if pooled != nil {
		pooled.Adopt(cfg.UserID, cfg.Unrouted, cfg.Log)
		return pooled, nil
	}
	h.pool.Missed()
	return session.Start(cfg)
}

// startAhead starts a process for the pool: the command as every user gets it, for nobody yet.
func (h *Handler) startAhead() (*session.Session, error) {
	cmd, err := h.command("")
	if err != nil {
		return nil, err
	}
	return session.Start(session.Config{Command: cmd, Backlog: h.cfg.Backlog, Answer: h.answerer(), Log: h.log,
		Metrics: h.cfg.Metrics})
}

// poolRoom reports whether the pool may hold held processes within --max-sessions.
func (h *Handler) poolRoom(held int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closing && (h.cfg.MaxSessions <= 0 || len(h.sessions)+len(h.workers)+held <= h.cfg.MaxSessions)
}

// command is the MCP server's command line for one user, per-user settings filled in.
func (h *Handler) command(user string) (session.Command, error) {
	cmd := h.cfg.Command
	settings := peruser.Settings{Env: cmd.Env, Dir: cmd.Dir}
	env, dir, err := settings.For(user)
	if err != nil {
		return cmd, err
	}
	cmd.Env, cmd.Dir, cmd.UserPaths = env, dir, settings.Paths(user)
	return cmd, nil
}

// refuse answers a request for which no process could be had, and counts why.
func (h *Handler) refuse(w http.ResponseWriter, id json.RawMessage, err error) {
	switch {
	case errors.Is(err, errShuttingDown):
		h.cfg.Metrics.Refused("shutting_down")
		w.Header().Set("Retry-After", "5")
		rpcError(w, http.StatusServiceUnavailable, id, -32000, "the proxy is shutting down")
	case errors.Is(err, errTooMany):
		h.cfg.Metrics.Refused("limit")
		w.Header().Set("Retry-After", "30")
		rpcError(w, http.StatusServiceUnavailable, id, -32000, fmt.Sprintf("too many MCP server processes (%d): try again later", h.cfg.MaxSessions))
	case errors.Is(err, errTooManySessions):
		h.cfg.Metrics.Refused("limit")
		w.Header().Set("Retry-After", "30")
		rpcError(w, http.StatusServiceUnavailable, id, -32000, fmt.Sprintf("too many sessions open (%d, --max-sessions): try again later", h.cfg.MaxSessions))
	case errors.Is(err, errUserSessions):
		h.cfg.Metrics.Refused("user_limit")
		w.Header().Set("Retry-After", "60")
		rpcError(w, http.StatusTooManyRequests, id, -32000, fmt.Sprintf(
			"this user's sessions are at the limit (%d, --max-per-user): end one (DELETE) before opening another", h.cfg.MaxPerUser))
	case errors.Is(err, errUserLimit):
		h.cfg.Metrics.Refused("user_limit")
		w.Header().Set("Retry-After", "60")
		rpcError(w, http.StatusTooManyRequests, id, -32000, fmt.Sprintf(
			"this user's %d MCP server processes are all busy: wait for a request to finish, or end a session (DELETE)", h.cfg.MaxPerUser))
	case errors.Is(err, errStartWait):
		h.cfg.Metrics.Refused("start_wait")
		w.Header().Set("Retry-After", "10")
		rpcError(w, http.StatusServiceUnavailable, id, -32000, fmt.Sprintf(
			"many MCP server processes are starting (at most %d at once) and this one waited %s for its turn: try again shortly", h.cfg.MaxStarting, h.cfg.StartWait))
	case errors.Is(err, errSharedDown):
		h.cfg.Metrics.Refused("start_failed")
		w.Header().Set("Retry-After", "10")
		rpcError(w, http.StatusServiceUnavailable, id, -32000, "the shared MCP server processes are starting again: try again shortly")
	case errors.Is(err, errSharedBusy):
		// Shed once it waited --share-max-wait: a call queued behind this many at a Node process would wait for all
		// of them, and an overloaded process queues without bound (memory, then seconds per call).
		h.cfg.SharedMetrics.Shed()
		w.Header().Set("Retry-After", "1")
		rpcError(w, http.StatusServiceUnavailable, id, -32000, fmt.Sprintf(
			"the shared MCP server processes are busy (%d calls in flight at each, --share-max-calls, and none ended within %s, --share-max-wait): try again shortly",
			h.cfg.ShareMaxCalls, h.cfg.ShareMaxWait))
	case errors.Is(err, broker.ErrBroker):
		h.cfg.Metrics.Refused("broker")
		h.log.Error("cannot get the user's upstream token for a new MCP server process", "err", err)
		w.Header().Set("Retry-After", "30")
		rpcError(w, http.StatusBadGateway, id, -32000, "the MCP server needs your token for another service, and the gateway could not get it: try again later")
	default:
		h.cfg.Metrics.Refused("start_failed")
		rpcError(w, http.StatusInternalServerError, id, -32603, "the MCP server could not be started")
	}
}

// childGrace is how long a child has between SIGTERM and SIGKILL.
const childGrace = 3 * time.Second

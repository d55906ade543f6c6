// Package embedded is the default, single-node store: the whole state in memory behind one mutex, kept across
// restarts in one file.
//
// The file is a journal of JSON lines, one line per mutation (written with one write call, so a line is applied
// whole or, after a crash mid-write, dropped whole). It is replayed at Open and rewritten compactly (temp file and
// rename) at Open and whenever it has grown to several times the live state. There is no fsync per write: a
// machine crash can lose the last writes, which costs users a new login, never a corrupt state. Only one process may
// use a file at a time; for several nodes use Redis.
package embedded

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// minCompactSize keeps a small journal from being rewritten over and over.
const minCompactSize = 256 << 10

// compactFactor: the journal is rewritten when it is this many times the size of the live state.
const compactFactor = 4

// Store is the embedded store. The zero value is not usable; call Open.
type Store struct {
	logger *slog.Logger
	path   string // "" for memory only

	mu          sync.Mutex
	f           *os.File // journal, opened for append; nil when memory only
	lock        *os.File // holds the lock on path+".lock"
	closed      bool
	data        map[string]map[string]any // kind -> id -> record
	seq         int64                     // last feed sequence number handed out
	journalSize int64                     // bytes in the journal file
	liveSize    int64                     // bytes of the last compacted file
	// pending indexes the authorization requests and device grants in flight by client: client -> kind:id -> exp.
	// apply keeps it; entries that expired without a journal line (purge) are dropped when counted.
	pending map[string]map[string]time.Time
}

var _ store.Store = (*Store)(nil)

// Open loads the store kept at path, creating the file (mode 0600) if it does not exist, as an operator's command
// does: if another process holds the file it fails at once with ErrInUse. path "" keeps everything in memory only,
// for tests.
func Open(path string, logger *slog.Logger) (*Store, error) {
	return open(path, logger, holder{pid: os.Getpid()})
}

// OpenServer is Open for the authserver itself: other processes are told the server holds the file (operator
// commands then go through its admin socket), and it waits up to a minute for a command holding the file (a backup
// started while the server was down) to end rather than failing. Another server holding it fails at once.
func OpenServer(path string, logger *slog.Logger) (*Store, error) {
	return open(path, logger, holder{server: true, pid: os.Getpid()})
}

func open(path string, logger *slog.Logger, me holder) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{logger: logger, path: path, data: map[string]map[string]any{}, pending: map[string]map[string]time.Time{}}
	for _, k := range kinds {
		s.data[k] = map[string]any{}
	}
	if path == "" {
		logger.Warn("embedded store in memory only: all state (clients, tokens, signing keys) is lost on exit")
		return s, nil
	}
	lock, err := lockFile(path, me, func(other holder) {
		logger.Warn("embedded store: waiting for the process holding it to end", "path", path, "holder", other.String())
	})
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	s.lock = lock
	torn, whole, err := replay(path, s.apply)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	if torn != "" {
		logger.Warn("embedded store: ignored an incomplete last journal line (the process probably stopped mid-write)",
			"path", path, "detail", torn)
	}
	if err := s.compactLocked(); err != nil {
		// The rewrite needs room for a copy of the state: on a full disk the server would not start at all. The
		// journal as replayed is whole, so serve from it; writes fail until there is room, then rewrite it.
		if aerr := s.appendAfter(whole); aerr != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("embedded store: rewrite %s: %w; and cannot append to it as it is: %w", path, err, aerr)
		}
		logger.Error("embedded store: cannot rewrite the journal at start; serving from it as it is, writes fail "+
			"until there is room", "path", path, "err", err)
	}
	logger.Warn("embedded store: SINGLE NODE ONLY; state is kept in one local file and cannot be shared between "+
		"authserver instances (configure Redis to run several)", "path", path)
	return s, nil
}

// apply changes the in-memory state; ops come from a mutation or from the journal.
func (s *Store) apply(ops []op) {
	for _, o := range ops {
		if o.Kind == kindSeq {
			if !o.Del {
				s.seq = max(s.seq, *o.Val.(*int64))
			}
			continue
		}
		m := s.data[o.Kind]
		if o.Kind == kindAuthReq || o.Kind == kindDevice {
			s.indexPending(o, m[o.ID])
		}
		if o.Del {
			delete(m, o.ID)
		} else {
			m[o.ID] = o.Val
		}
	}
}

// indexPending updates the index of requests in flight for op, given the record it replaces (nil: none).
func (s *Store) indexPending(o op, old any) {
	member := o.Kind + ":" + o.ID
	if client, _ := pendingOf(old); client != "" {
		delete(s.pending[client], member)
		if len(s.pending[client]) == 0 {
			delete(s.pending, client)
		}
	}
	if o.Del {
		return
	}
	if client, exp := pendingOf(o.Val); client != "" {
		if s.pending[client] == nil {
			s.pending[client] = map[string]time.Time{}
		}
		s.pending[client][member] = exp
	}
}

// pendingOf is the client and expiry of an authorization request or device grant.
func pendingOf(v any) (string, time.Time) {
	switch r := v.(type) {
	case *store.AuthRequest:
		return r.ClientID, r.ExpiresAt
	case *store.DeviceGrant:
		return r.ClientID, r.ExpiresAt
	}
	return "", time.Time{}
}

func (s *Store) PendingCount(_ context.Context, clientID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	now := time.Now()
	for member, exp := range s.pending[clientID] {
		if !now.Before(exp) {
			delete(s.pending[clientID], member)
		}
	}
	return len(s.pending[clientID]), nil
}

// commitLocked journals ops as one line, then applies them. Nothing changes in memory if the write fails.
func (s *Store) commitLocked(ops ...op) error {
	if s.closed {
		return fmt.Errorf("%w: embedded store is closed", store.ErrUnavailable)
	}
	if len(ops) == 0 {
		return nil
	}
	if s.f != nil {
		b, err := encodeLine(ops)
		if err != nil {
			return fmt.Errorf("embedded store: encode: %w", err)
		}
		n, err := s.f.Write(b)
		if err != nil {
			// Cut off a partial line so that later lines do not follow garbage.
			if n > 0 {
				_ = s.f.Truncate(s.journalSize)
			}
			return fmt.Errorf("%w: embedded store: write %s: %w", store.ErrUnavailable, s.path, err)
		}
		s.journalSize += int64(n)
	}
	s.apply(ops)
	if s.f != nil && s.journalSize > max(minCompactSize, compactFactor*s.liveSize) {
		if err := s.compactLocked(); err != nil {
			// The journal is still complete; compaction is retried on the next write.
			s.logger.Error("embedded store: cannot compact journal", "path", s.path, "err", err)
		}
	}
	return nil
}

// compactLocked rewrites the journal as one line per live record.
func (s *Store) compactLocked() error {
	if s.path == "" {
		return nil
	}
	now := time.Now()
	s.purgeLocked(now)
	size, err := writeFileAtomic(s.path, func(w io.Writer) error {
		seq := s.seq
		b, err := encodeLine([]op{{Kind: kindSeq, Val: &seq}})
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		for _, k := range kinds {
			for id, v := range s.data[k] {
				if expired(v, now) {
					continue
				}
				b, err := encodeLine([]op{{Kind: k, ID: id, Val: v}})
				if err != nil {
					return err
				}
				if _, err := w.Write(b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if s.f != nil {
		_ = s.f.Close()
	}
	s.f, s.journalSize, s.liveSize = f, size, size
	return nil
}

// appendAfter opens the journal for appending after its first whole bytes, cutting off a torn last line so that the
// next line does not follow it. The journal stays as it is until a later write, finding room, rewrites it.
func (s *Store) appendAfter(whole int64) error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(whole); err != nil {
		_ = f.Close()
		return err
	}
	s.f, s.journalSize, s.liveSize = f, whole, 0
	return nil
}

// getLocked returns a live record, dropping it if it has expired (without journaling: replay skips it anyway).
func (s *Store) getLocked(kind, id string) (any, bool) {
	v, ok := s.data[kind][id]
	if !ok {
		return nil, false
	}
	if expired(v, time.Now()) {
		delete(s.data[kind], id)
		return nil, false
	}
	return v, true
}

func (s *Store) checkOpen() error {
	if s.closed {
		return fmt.Errorf("%w: embedded store is closed", store.ErrUnavailable)
	}
	return nil
}

func put(kind, id string, v any) op { return op{Kind: kind, ID: id, Val: v} }
func del(kind, id string) op        { return op{Kind: kind, ID: id, Del: true} }

// ---- clients

func (s *Store) CreateClient(_ context.Context, c *store.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.getLocked(kindClient, c.ID); ok {
		return fmt.Errorf("client %q: %w", c.ID, store.ErrAlreadyExists)
	}
	return s.commitLocked(put(kindClient, c.ID, cloneClient(c)))
}

func (s *Store) GetClient(_ context.Context, id string) (*store.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindClient, id)
	if !ok {
		return nil, fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	return cloneClient(v.(*store.Client)), nil
}

func (s *Store) UpdateClient(_ context.Context, c *store.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.getLocked(kindClient, c.ID); !ok {
		return fmt.Errorf("client %q: %w", c.ID, store.ErrNotFound)
	}
	return s.commitLocked(put(kindClient, c.ID, cloneClient(c)))
}

func (s *Store) DeleteClient(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.getLocked(kindClient, id); !ok {
		return fmt.Errorf("client %q: %w", id, store.ErrNotFound)
	}
	return s.commitLocked(del(kindClient, id))
}

func (s *Store) ListClients(_ context.Context) ([]*store.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]*store.Client, 0, len(s.data[kindClient]))
	for _, v := range s.data[kindClient] {
		if !expired(v, now) {
			out = append(out, cloneClient(v.(*store.Client)))
		}
	}
	slices.SortFunc(out, func(a, b *store.Client) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// ---- authorization requests

func (s *Store) PutAuthRequest(_ context.Context, r *store.AuthRequest) error {
	if err := store.RequireExpiry("authorization request", r.ExpiresAt); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(put(kindAuthReq, r.ID, cloneAuthRequest(r)))
}

func (s *Store) GetAuthRequest(_ context.Context, id string) (*store.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindAuthReq, id)
	if !ok {
		return nil, fmt.Errorf("authorization request: %w", store.ErrNotFound)
	}
	return cloneAuthRequest(v.(*store.AuthRequest)), nil
}

func (s *Store) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.data[kindAuthReq][id]; !ok {
		return nil
	}
	return s.commitLocked(del(kindAuthReq, id))
}

// ---- authorization codes

func (s *Store) CreateCode(_ context.Context, c *store.AuthCode) error {
	if err := store.RequireExpiry("authorization code", c.ExpiresAt); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.getLocked(kindCode, c.Hash); ok {
		return fmt.Errorf("authorization code: %w", store.ErrAlreadyExists)
	}
	return s.commitLocked(put(kindCode, c.Hash, &codeRec{AuthCode: *c}))
}

func (s *Store) RedeemCode(_ context.Context, hash string) (*store.AuthCode, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindCode, hash)
	if !ok {
		return nil, fmt.Errorf("authorization code: %w", store.ErrNotFound)
	}
	rec := v.(*codeRec)
	out := rec.AuthCode
	if rec.Used {
		return &out, fmt.Errorf("authorization code: %w", store.ErrReused)
	}
	if err := s.commitLocked(put(kindCode, hash, &codeRec{AuthCode: rec.AuthCode, Used: true})); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---- refresh tokens

func (s *Store) familyRevokedLocked(familyID string) bool {
	_, ok := s.getLocked(kindFamily, familyID)
	return ok
}

func (s *Store) CreateRefresh(_ context.Context, t *store.RefreshToken) error {
	if err := store.RequireExpiry("refresh token", t.ExpiresAt); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.getLocked(kindRefresh, t.Hash); ok {
		return fmt.Errorf("refresh token: %w", store.ErrAlreadyExists)
	}
	if s.familyRevokedLocked(t.FamilyID) {
		return nil // born revoked: the family was revoked while this token was being issued
	}
	rec := &refreshRec{RefreshToken: *t}
	rec.Rotation = nil
	return s.commitLocked(put(kindRefresh, t.Hash, rec))
}

func (s *Store) GetRefresh(_ context.Context, hash string) (*store.RefreshToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindRefresh, hash)
	if !ok {
		return nil, fmt.Errorf("refresh token: %w", store.ErrNotFound)
	}
	rec := v.(*refreshRec)
	out := rec.RefreshToken
	if rec.Used {
		out.Rotation = s.rotationLocked(rec)
		return &out, fmt.Errorf("refresh token: %w", store.ErrReused)
	}
	return &out, nil
}

// rotationLocked is a used token's rotation as callers see it: with whether its successor is used or gone.
func (s *Store) rotationLocked(rec *refreshRec) *store.Rotation {
	if rec.Rotated == nil {
		return nil
	}
	rot := rec.Rotated.Rotation
	rot.Sealed = nil
	if time.Now().Before(rec.Rotated.SealedUntil) {
		rot.Sealed = slices.Clone(rec.Rotated.Sealed)
	}
	v, ok := s.getLocked(kindRefresh, rot.Successor)
	rot.SuccessorUsed = !ok || v.(*refreshRec).Used
	return &rot
}

func (s *Store) RotateRefresh(_ context.Context, oldHash string, next *store.RefreshToken, sealed store.Sealed) (*store.RefreshToken, error) {
	if err := store.RequireExpiry("refresh token", next.ExpiresAt); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindRefresh, oldHash)
	if !ok {
		return nil, fmt.Errorf("refresh token: %w", store.ErrNotFound)
	}
	rec := v.(*refreshRec)
	old := rec.RefreshToken
	if rec.Used {
		old.Rotation = s.rotationLocked(rec)
		return &old, fmt.Errorf("refresh token: %w", store.ErrReused)
	}
	if next.FamilyID != old.FamilyID {
		return nil, fmt.Errorf("store: rotate refresh token: next token is in family %q, not %q", next.FamilyID, old.FamilyID)
	}
	if _, ok := s.getLocked(kindRefresh, next.Hash); ok {
		return nil, fmt.Errorf("refresh token: %w", store.ErrAlreadyExists)
	}
	rot := &rotationRec{Rotation: store.Rotation{At: next.IssuedAt, Successor: next.Hash}}
	if len(sealed.Data) > 0 && time.Now().Before(sealed.ExpiresAt) {
		rot.Sealed, rot.SealedUntil = slices.Clone(sealed.Data), sealed.ExpiresAt
	}
	ops := []op{put(kindRefresh, oldHash, &refreshRec{RefreshToken: old, Used: true, Rotated: rot})}
	if !s.familyRevokedLocked(old.FamilyID) {
		n := *next
		n.Rotation = nil
		ops = append(ops, put(kindRefresh, next.Hash, &refreshRec{RefreshToken: n}))
	}
	if err := s.commitLocked(ops...); err != nil {
		return nil, err
	}
	return &old, nil
}

// ---- access tokens and revocation

func (s *Store) RecordAccess(_ context.Context, t *store.AccessToken) error {
	if err := store.RequireExpiry("access token", t.ExpiresAt); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if _, ok := s.getLocked(kindAccess, t.JTI); ok {
		return fmt.Errorf("access token: %w", store.ErrAlreadyExists)
	}
	ops := []op{put(kindAccess, t.JTI, clone(t))}
	if t.FamilyID != "" && s.familyRevokedLocked(t.FamilyID) {
		seq := s.seq
		ops = append(ops, s.publishLocked(&seq, t.JTI, t.ExpiresAt)...)
		ops = append(ops, put(kindSeq, "", &seq))
	}
	return s.commitLocked(ops...)
}

// publishLocked returns the ops that add jti to the feed, numbering it from *seq; nothing if it is listed already or
// has expired.
func (s *Store) publishLocked(seq *int64, jti string, exp time.Time) []op {
	if !time.Now().Before(exp) {
		return nil
	}
	if _, ok := s.getLocked(kindRevoked, jti); ok {
		return nil
	}
	*seq++
	return []op{put(kindRevoked, jti, &store.Revocation{JTI: jti, ExpiresAt: exp, Seq: *seq})}
}

// revokeFamilyLocked returns the ops that revoke a family, and whether there was anything to revoke.
func (s *Store) revokeFamilyLocked(seq *int64, familyID string) ([]op, bool) {
	var ops []op
	for h, v := range s.data[kindRefresh] {
		if v.(*refreshRec).FamilyID == familyID {
			ops = append(ops, del(kindRefresh, h))
		}
	}
	now := time.Now()
	for jti, v := range s.data[kindAccess] {
		if a := v.(*store.AccessToken); a.FamilyID == familyID && !expired(a, now) {
			ops = append(ops, s.publishLocked(seq, jti, a.ExpiresAt)...)
		}
	}
	did := len(ops) > 0
	ops = append(ops, put(kindFamily, familyID, &familyTomb{ExpiresAt: now.Add(familyTombTTL)}))
	return ops, did
}

// revokeFamiliesLocked revokes the families that match and reports how many had anything to revoke.
func (s *Store) revokeFamiliesLocked(matchRefresh func(*store.RefreshToken) bool, matchAccess func(*store.AccessToken) bool) (int, error) {
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	now := time.Now()
	fams := map[string]bool{}
	for _, v := range s.data[kindRefresh] {
		if r := v.(*refreshRec); !expired(r, now) && matchRefresh(&r.RefreshToken) {
			fams[r.FamilyID] = true
		}
	}
	for _, v := range s.data[kindAccess] {
		if a := v.(*store.AccessToken); !expired(a, now) && matchAccess(a) && a.FamilyID != "" {
			fams[a.FamilyID] = true
		}
	}
	seq := s.seq
	var ops []op
	n := 0
	for f := range fams {
		fops, did := s.revokeFamilyLocked(&seq, f)
		if did {
			n++
			ops = append(ops, fops...)
		}
	}
	if len(ops) == 0 {
		return 0, nil
	}
	ops = append(ops, put(kindSeq, "", &seq))
	if err := s.commitLocked(ops...); err != nil {
		return 0, err
	}
	return n, nil
}

func (s *Store) RevokeFamily(_ context.Context, familyID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	seq := s.seq
	ops, _ := s.revokeFamilyLocked(&seq, familyID)
	ops = append(ops, put(kindSeq, "", &seq))
	return s.commitLocked(ops...)
}

func (s *Store) RevokeClient(_ context.Context, clientID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeFamiliesLocked(
		func(r *store.RefreshToken) bool { return r.ClientID == clientID },
		func(a *store.AccessToken) bool { return a.ClientID == clientID })
}

func (s *Store) RevokeUser(_ context.Context, userID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokeFamiliesLocked(
		func(r *store.RefreshToken) bool { return r.User.ID == userID },
		func(a *store.AccessToken) bool { return a.UserID == userID })
}

func (s *Store) RevokeAccess(_ context.Context, jti string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	seq := s.seq
	ops := s.publishLocked(&seq, jti, exp)
	if len(ops) == 0 {
		return nil
	}
	return s.commitLocked(append(ops, put(kindSeq, "", &seq))...)
}

func (s *Store) IsRevoked(_ context.Context, jti string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return false, err
	}
	_, ok := s.getLocked(kindRevoked, jti)
	return ok, nil
}

func (s *Store) RevokedPage(_ context.Context, since int64, limit int) ([]store.Revocation, int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, 0, false, err
	}
	now := time.Now()
	var out []store.Revocation
	for _, v := range s.data[kindRevoked] {
		if r := v.(*store.Revocation); r.Seq > since && !expired(r, now) {
			out = append(out, *r)
		}
	}
	slices.SortFunc(out, func(a, b store.Revocation) int { return cmp.Compare(a.Seq, b.Seq) })
	if limit > 0 && len(out) > limit {
		out = out[:limit:limit]
		return out, out[limit-1].Seq, true, nil
	}
	return out, s.seq, false, nil
}

// ---- login pins

func (s *Store) PinLogin(_ context.Context, login, userID string) (string, error) {
	login = strings.ToLower(login)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return "", err
	}
	if v, ok := s.getLocked(kindPin, login); ok {
		return v.(*store.LoginPin).UserID, nil
	}
	pin := &store.LoginPin{Login: login, UserID: userID, PinnedAt: time.Now().UTC()}
	if err := s.commitLocked(put(kindPin, login, pin)); err != nil {
		return "", err
	}
	return userID, nil
}

// ---- consents

func (s *Store) PutConsent(_ context.Context, c *store.Consent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked(put(kindConsent, consentKey(c.UserID, c.ClientID), clone(c)))
}

func (s *Store) GetConsent(_ context.Context, userID, clientID string) (*store.Consent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	v, ok := s.getLocked(kindConsent, consentKey(userID, clientID))
	if !ok {
		return nil, fmt.Errorf("consent: %w", store.ErrNotFound)
	}
	return clone(v.(*store.Consent)), nil
}

// ---- signing keys

func (s *Store) SigningKeys(_ context.Context) ([]store.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	return slices.Clone(s.keysLocked()), nil
}

func (s *Store) keysLocked() []store.SigningKey {
	if v, ok := s.data[kindKeys][""]; ok {
		return *v.(*[]store.SigningKey)
	}
	return nil
}

func (s *Store) CompareAndSetSigningKeys(_ context.Context, prev, next []store.SigningKey) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return false, err
	}
	if !store.SameSigningKeys(s.keysLocked(), prev) {
		return false, nil
	}
	keys := slices.Clone(next)
	if err := s.commitLocked(put(kindKeys, "", &keys)); err != nil {
		return false, err
	}
	return true, nil
}

// ---- upkeep

func (s *Store) Ping(_ context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	if s.f != nil {
		if _, err := s.f.Stat(); err != nil {
			return fmt.Errorf("%w: embedded store: %w", store.ErrUnavailable, err)
		}
	}
	return nil
}

func (s *Store) PurgeExpired(_ context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return 0, err
	}
	return s.purgeLocked(time.Now()), nil
}

// purgeLocked drops expired records from memory. The journal needs no line for it: replay drops them again, and
// the next compaction leaves them out.
func (s *Store) purgeLocked(now time.Time) int {
	n := 0
	for _, k := range kinds {
		for id, v := range s.data[k] {
			if expired(v, now) {
				delete(s.data[k], id)
				n++
			}
		}
	}
	// A used refresh token is kept until it expires, its rotation's sealed response only until the reuse window
	// ends. Dropping it needs no journal line either: rotationLocked ignores it from then on.
	for _, v := range s.data[kindRefresh] {
		if r := v.(*refreshRec).Rotated; r != nil && r.Sealed != nil && !now.Before(r.SealedUntil) {
			r.Sealed = nil
		}
	}
	return n
}

// Close writes nothing more; later calls answer ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.f != nil {
		_ = s.f.Sync() // a clean shutdown loses nothing, even if the machine goes down right after
		if cerr := s.f.Close(); cerr != nil {
			err = fmt.Errorf("embedded store: close %s: %w", s.path, cerr)
		}
	}
	if s.lock != nil {
		_ = s.lock.Close()
	}
	return err
}

package embedded

import (
	"context"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

var _ store.Backup = (*Store)(nil)

// Dump writes the live state as a store dump. It copies the state under the lock and writes it after, so a slow
// writer does not stall the server.
func (s *Store) Dump(_ context.Context, w io.Writer) error {
	recs, err := s.snapshot()
	if err != nil {
		return err
	}
	dw, err := store.NewDumpWriter(w)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := dw.Write(r); err != nil {
			return err
		}
	}
	return dw.Close()
}

func (s *Store) snapshot() ([]store.DumpRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	now := time.Now()
	recs := []store.DumpRecord{{Kind: store.DumpFeedSeq, Seq: s.seq}}
	if keys := s.keysLocked(); len(keys) > 0 {
		recs = append(recs, store.DumpRecord{Kind: store.DumpSigningKeys, SigningKeys: slices.Clone(keys)})
	}
	for _, k := range kinds {
		ids := make([]string, 0, len(s.data[k]))
		for id, v := range s.data[k] {
			if !expired(v, now) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids) // stable output: two dumps of one state are the same file
		for _, id := range ids {
			switch v := s.data[k][id].(type) {
			case *store.Client:
				recs = append(recs, store.DumpRecord{Kind: store.DumpClient, Client: cloneClient(v)})
			case *store.AuthRequest:
				recs = append(recs, store.DumpRecord{Kind: store.DumpAuthRequest, AuthRequest: cloneAuthRequest(v)})
			case *codeRec:
				c := v.AuthCode
				recs = append(recs, store.DumpRecord{Kind: store.DumpCode, Code: &c, Used: v.Used})
			case *refreshRec:
				t := v.RefreshToken
				recs = append(recs, store.DumpRecord{Kind: store.DumpRefresh, Refresh: &t, Used: v.Used})
			case *store.AccessToken:
				recs = append(recs, store.DumpRecord{Kind: store.DumpAccess, Access: clone(v)})
			case *store.Revocation:
				recs = append(recs, store.DumpRecord{Kind: store.DumpRevocation, Revocation: clone(v)})
			case *store.Consent:
				recs = append(recs, store.DumpRecord{Kind: store.DumpConsent, Consent: clone(v)})
			case *familyTomb:
				recs = append(recs, store.DumpRecord{Kind: store.DumpRevokedFam, FamilyID: id, ExpiresAt: v.ExpiresAt})
			case *store.DeviceGrant:
				recs = append(recs, store.DumpRecord{Kind: store.DumpDevice, Device: cloneDeviceGrant(v)})
			case *store.LoginPin:
				recs = append(recs, store.DumpRecord{Kind: store.DumpLoginPin, LoginPin: clone(v)})
			case *store.Connection:
				recs = append(recs, store.DumpRecord{Kind: store.DumpConnection, Connection: cloneConnection(v)})
			}
		}
	}
	return recs, nil
}

// Restore loads a dump (see store.Backup) as one journal line, so a crash leaves all of it or none.
func (s *Store) Restore(_ context.Context, r io.Reader) error {
	d, err := store.ReadForRestore(r)
	if err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkOpen(); err != nil {
		return err
	}
	now := time.Now()
	var ops []op
	putLive := func(kind, id string, v any) {
		if !expired(v, now) {
			ops = append(ops, put(kind, id, v))
		}
	}
	for _, rec := range d.Records {
		switch rec.Kind {
		case store.DumpClient:
			putLive(kindClient, rec.Client.ID, cloneClient(rec.Client))
		case store.DumpAuthRequest:
			putLive(kindAuthReq, rec.AuthRequest.ID, cloneAuthRequest(rec.AuthRequest))
		case store.DumpCode:
			putLive(kindCode, rec.Code.Hash, &codeRec{AuthCode: *rec.Code, Used: rec.Used})
		case store.DumpRefresh:
			putLive(kindRefresh, rec.Refresh.Hash, &refreshRec{RefreshToken: *rec.Refresh, Used: rec.Used})
		case store.DumpAccess:
			putLive(kindAccess, rec.Access.JTI, clone(rec.Access))
		case store.DumpConsent:
			putLive(kindConsent, consentKey(rec.Consent.UserID, rec.Consent.ClientID), clone(rec.Consent))
		case store.DumpRevokedFam:
			putLive(kindFamily, rec.FamilyID, &familyTomb{ExpiresAt: rec.ExpiresAt})
		case store.DumpDevice:
			putLive(kindDevice, rec.Device.UserCode, cloneDeviceGrant(rec.Device))
		case store.DumpLoginPin:
			pin := clone(rec.LoginPin)
			pin.Login = strings.ToLower(pin.Login)
			ops = append(ops, put(kindPin, pin.Login, pin))
		case store.DumpConnection:
			c := rec.Connection
			ops = append(ops, put(kindConn, connectionKey(c.UserID, c.Upstream), cloneConnection(c)))
		}
	}

	seq := s.seq
	if seq == 0 {
		// A fresh store takes the dump's numbering, so feed readers continue with their cursors.
		for _, r := range d.Feed {
			seq = max(seq, r.Seq)
			putLive(kindRevoked, r.JTI, clone(&r))
		}
		seq = max(seq, d.Seq)
	} else {
		for _, r := range d.Feed {
			ops = append(ops, s.publishLocked(&seq, r.JTI, r.ExpiresAt)...)
		}
	}
	ops = append(ops, put(kindSeq, "", &seq))
	if len(d.SigningKeys) > 0 {
		merged := store.MergeSigningKeys(d.SigningKeys, s.keysLocked())
		ops = append(ops, put(kindKeys, "", &merged))
	}
	return s.commitLocked(ops...)
}

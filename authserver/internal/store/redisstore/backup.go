package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

var _ store.Backup = (*Store)(nil)

// batch bounds the commands sent in one pipeline.
const batch = 500

// Dump writes every live record under the prefix. Redis gives no consistent snapshot across keys: a dump taken
// while the server works may catch a rotation half-way (both tokens present); restoring that is harmless.
func (s *Store) Dump(ctx context.Context, w io.Writer) error {
	keys, err := s.scanKeys(ctx)
	if err != nil {
		return err
	}
	slices.Sort(keys)
	dw, err := store.NewDumpWriter(w)
	if err != nil {
		return err
	}
	seq, err := s.rdb.Get(ctx, s.k("feed-seq")).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return unavailable("dump feed counter", err)
	}
	if err := dw.Write(store.DumpRecord{Kind: store.DumpFeedSeq, Seq: seq}); err != nil {
		return err
	}
	if keys, err := s.SigningKeys(ctx); err != nil {
		return err
	} else if len(keys) > 0 {
		if err := dw.Write(store.DumpRecord{Kind: store.DumpSigningKeys, SigningKeys: keys}); err != nil {
			return err
		}
	}

	for chunk := range slices.Chunk(keys, batch) {
		recs, err := s.dumpChunk(ctx, chunk)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := dw.Write(r); err != nil {
				return err
			}
		}
	}

	feed, _, _, err := s.RevokedPage(ctx, 0, 0) // the whole feed
	if err != nil {
		return err
	}
	for _, r := range feed {
		if err := dw.Write(store.DumpRecord{Kind: store.DumpRevocation, Revocation: &r}); err != nil {
			return err
		}
	}
	return dw.Close()
}

// dumpChunk reads the records among keys (index and flag keys are skipped; indexes are rebuilt on restore).
func (s *Store) dumpChunk(ctx context.Context, keys []string) ([]store.DumpRecord, error) {
	type item struct {
		kind, id string
		val      *redis.StringCmd
		used     *redis.IntCmd
		pttl     *redis.DurationCmd
	}
	var items []item
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			kind, id, _ := strings.Cut(strings.TrimPrefix(k, s.p), ":")
			it := item{kind: kind, id: id}
			switch kind {
			case "client", "authreq", "at", "consent", "device", "pin", "conn":
				it.val = p.Get(ctx, k)
			case "code":
				it.val, it.used = p.Get(ctx, k), p.Exists(ctx, s.k("code-used", id))
			case "rt":
				it.val, it.used = p.Get(ctx, k), p.Exists(ctx, s.k("rt-used", id))
			case "fam-revoked":
				it.pttl = p.PTTL(ctx, k)
			default:
				continue
			}
			items = append(items, it)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable("dump", err)
	}
	var out []store.DumpRecord
	for _, it := range items {
		if it.pttl != nil {
			if d := it.pttl.Val(); d > 0 {
				out = append(out, store.DumpRecord{Kind: store.DumpRevokedFam, FamilyID: it.id,
					ExpiresAt: time.Now().Add(d).UTC().Truncate(time.Millisecond)})
			}
			continue
		}
		b, err := it.val.Bytes()
		if errors.Is(err, redis.Nil) {
			continue // expired since the scan
		}
		if err != nil {
			return nil, unavailable("dump", err)
		}
		rec, err := decodeDumpRecord(it.kind, b)
		if err != nil {
			return nil, fmt.Errorf("redis: dump %s %q: %w", it.kind, it.id, err)
		}
		if it.used != nil {
			rec.Used = it.used.Val() == 1
		}
		out = append(out, rec)
	}
	return out, nil
}

func decodeDumpRecord(kind string, b []byte) (store.DumpRecord, error) {
	var r store.DumpRecord
	var target any
	switch kind {
	case "client":
		r.Kind, r.Client = store.DumpClient, new(store.Client)
		target = r.Client
	case "authreq":
		r.Kind, r.AuthRequest = store.DumpAuthRequest, new(store.AuthRequest)
		target = r.AuthRequest
	case "code":
		r.Kind, r.Code = store.DumpCode, new(store.AuthCode)
		target = r.Code
	case "rt":
		r.Kind, r.Refresh = store.DumpRefresh, new(store.RefreshToken)
		target = r.Refresh
	case "at":
		r.Kind, r.Access = store.DumpAccess, new(store.AccessToken)
		target = r.Access
	case "consent":
		r.Kind, r.Consent = store.DumpConsent, new(store.Consent)
		target = r.Consent
	case "device":
		r.Kind, r.Device = store.DumpDevice, new(store.DeviceGrant)
		target = r.Device
	case "pin":
		r.Kind, r.LoginPin = store.DumpLoginPin, new(store.LoginPin)
		target = r.LoginPin
	case "conn":
		r.Kind, r.Connection = store.DumpConnection, new(store.Connection)
		target = r.Connection
	}
	return r, json.Unmarshal(b, target)
}

// scanKeys lists every key under the prefix; under Cluster it asks every master.
func (s *Store) scanKeys(ctx context.Context) ([]string, error) {
	match := globEscape(s.p) + "*"
	var keys []string
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 1000).Iterator()
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		return it.Err()
	}
	var err error
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		var found []string
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			keys = nil
			if err := scan(ctx, node); err != nil {
				return err
			}
			found = append(found, keys...)
			return nil
		})
		keys = found
	} else {
		err = scan(ctx, s.rdb)
	}
	if err != nil {
		return nil, unavailable("scan keys", err)
	}
	return keys, nil
}

func globEscape(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Restore loads a dump (see store.Backup). It is not one atomic step: a failure half-way leaves part of the dump
// restored, and running Restore again completes it.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	d, err := store.ReadForRestore(r)
	if err != nil {
		return err
	}

	indexTTL := map[string]int64{} // index key -> longest member TTL in ms
	index := func(key string, ms int64) { indexTTL[key] = max(indexTTL[key], ms) }
	var cmds []func(p redis.Pipeliner)
	for _, rec := range d.Records {
		switch rec.Kind {
		case store.DumpClient:
			c := rec.Client
			if ms := ttl(c.ExpiresAt); ms != 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.clientKey(c.ID), mustJSON(c), msDur(ms))
					p.SAdd(ctx, s.clientsKey(), c.ID)
				})
			}
		case store.DumpAuthRequest:
			a := rec.AuthRequest
			if ms := ttl(a.ExpiresAt); ms > 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.k("authreq", a.ID), mustJSON(a), msDur(ms))
					p.ZAdd(ctx, s.pendingKey(a.ClientID), redis.Z{Score: float64(a.ExpiresAt.UnixMilli()), Member: "authreq:" + a.ID})
				})
				index(s.pendingKey(a.ClientID), ms)
			}
		case store.DumpCode:
			c, used := rec.Code, rec.Used
			if ms := ttl(c.ExpiresAt); ms > 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.k("code", c.Hash), mustJSON(c), msDur(ms))
					if used {
						p.Set(ctx, s.k("code-used", c.Hash), "1", msDur(ms))
					}
				})
			}
		case store.DumpRefresh:
			t, used := rec.Refresh, rec.Used
			if ms := ttl(t.ExpiresAt); ms > 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.k("rt", t.Hash), mustJSON(t), msDur(ms))
					if used {
						p.Set(ctx, s.k("rt-used", t.Hash), "1", msDur(ms))
					}
					p.SAdd(ctx, s.k("fam-rt", t.FamilyID), t.Hash)
					p.SAdd(ctx, s.k("client-fams", t.ClientID), t.FamilyID)
					p.SAdd(ctx, s.k("user-fams", t.User.ID), t.FamilyID)
				})
				index(s.k("fam-rt", t.FamilyID), ms)
				index(s.k("client-fams", t.ClientID), ms)
				index(s.k("user-fams", t.User.ID), ms)
			}
		case store.DumpAccess:
			a := rec.Access
			if ms := ttl(a.ExpiresAt); ms > 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.k("at", a.JTI), mustJSON(a), msDur(ms))
					if a.FamilyID != "" {
						p.HSet(ctx, s.k("fam-at", a.FamilyID), a.JTI, a.ExpiresAt.UnixMilli())
						p.SAdd(ctx, s.k("client-fams", a.ClientID), a.FamilyID)
						p.SAdd(ctx, s.k("user-fams", a.UserID), a.FamilyID)
					}
				})
				if a.FamilyID != "" {
					index(s.k("fam-at", a.FamilyID), ms)
					index(s.k("client-fams", a.ClientID), ms)
					index(s.k("user-fams", a.UserID), ms)
				}
			}
		case store.DumpConsent:
			c := rec.Consent
			if ms := ttl(c.ExpiresAt); ms != 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.consentKey(c.UserID, c.ClientID), mustJSON(c), msDur(ms))
				})
			}
		case store.DumpDevice:
			g := rec.Device
			if ms := ttl(g.ExpiresAt); ms > 0 {
				cmds = append(cmds, func(p redis.Pipeliner) {
					p.Set(ctx, s.deviceKey(g.UserCode), mustJSON(g), msDur(ms))
					p.ZAdd(ctx, s.pendingKey(g.ClientID), redis.Z{Score: float64(g.ExpiresAt.UnixMilli()), Member: "device:" + g.UserCode})
				})
				index(s.pendingKey(g.ClientID), ms)
			}
		case store.DumpLoginPin:
			pin := *rec.LoginPin
			pin.Login = strings.ToLower(pin.Login)
			cmds = append(cmds, func(p redis.Pipeliner) { p.Set(ctx, s.k("pin", pin.Login), mustJSON(pin), 0) })
		case store.DumpConnection:
			c := rec.Connection
			cmds = append(cmds, func(p redis.Pipeliner) {
				p.Set(ctx, s.connectionKey(c.UserID, c.Upstream), mustJSON(c), 0)
				p.SAdd(ctx, s.k("conns"), connectionMember(c.UserID, c.Upstream))
			})
		case store.DumpRevokedFam:
			fam, exp := rec.FamilyID, rec.ExpiresAt
			if ms := ttl(exp); ms > 0 {
				cmds = append(cmds, func(p redis.Pipeliner) { p.Set(ctx, s.k("fam-revoked", fam), "1", msDur(ms)) })
			}
		}
	}

	for chunk := range slices.Chunk(cmds, batch) {
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range chunk {
				c(p)
			}
			return nil
		}); err != nil {
			return unavailable("restore records", err)
		}
	}

	idx := make([]string, 0, len(indexTTL))
	for k := range indexTTL {
		idx = append(idx, k)
	}
	for chunk := range slices.Chunk(idx, batch) {
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = indexTTL[k]
		}
		if err := extendAll.Run(ctx, s.rdb, chunk, args...).Err(); err != nil {
			return unavailable("restore index TTLs", err)
		}
	}

	args := []any{nowMS(), d.Seq}
	for _, r := range d.Feed {
		args = append(args, r.JTI, r.ExpiresAt.UnixMilli(), r.Seq)
	}
	if err := restoreFeed.Run(ctx, s.rdb, s.feedKeys(), args...).Err(); err != nil {
		return unavailable("restore feed", err)
	}

	if len(d.SigningKeys) > 0 {
		// Merge with whatever a running node may have written meanwhile; retry if it changes under us.
		for attempt := 0; ; attempt++ {
			raw, cur, err := s.rawKeys(ctx)
			if err != nil {
				return err
			}
			n, err := casKeys.Run(ctx, s.rdb, []string{s.k("keys")}, raw, mustJSON(store.MergeSigningKeys(d.SigningKeys, cur))).Int()
			if err != nil {
				return unavailable("restore signing keys", err)
			}
			if n == 1 {
				break
			}
			if attempt == 10 {
				return fmt.Errorf("%w: restore signing keys: the key set keeps changing", store.ErrUnavailable)
			}
		}
	}
	return nil
}

// msDur turns a ttl() result into a SET expiration: -1 (no expiry) becomes 0, which go-redis sends as no TTL.
func msDur(ms int64) time.Duration {
	if ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
)

// RunBenchmarks measures the calls on the token path: what /token, /revocations and /introspect cost in the store.
func RunBenchmarks(b *testing.B, open func(b *testing.B) store.Store) {
	ctx := context.Background()
	b.Run("RedeemCode", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		codes := make([]*store.AuthCode, b.N)
		for i := range codes {
			codes[i] = newCode("bench")
			if err := s.CreateCode(ctx, codes[i]); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.RedeemCode(ctx, codes[i].Hash); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RotateRefresh", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		fam := id()
		cur := newRefresh(fam, "bench", alice)
		if err := s.CreateRefresh(ctx, cur); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			next := newRefresh(fam, "bench", alice)
			if _, err := s.RotateRefresh(ctx, cur.Hash, next, store.Sealed{}); err != nil {
				b.Fatal(err)
			}
			cur = next
		}
	})
	b.Run("RecordAccess", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		fam := id()
		for range b.N {
			if err := s.RecordAccess(ctx, newAccess(fam, "bench", alice.ID)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("RevokedPage/1000", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		exp := time.Now().Add(time.Hour)
		for range 1000 {
			if err := s.RevokeAccess(ctx, id(), exp); err != nil {
				b.Fatal(err)
			}
		}
		_, cursor, err := revokedSince(ctx, s, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			// A poll with an up-to-date cursor: the common case for the plugin.
			if _, _, err := revokedSince(ctx, s, cursor); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetClient", func(b *testing.B) {
		s := open(b)
		defer s.Close()
		c := newClient()
		if err := s.CreateClient(ctx, c); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			if _, err := s.GetClient(ctx, c.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

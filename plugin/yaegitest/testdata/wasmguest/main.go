// Command wasmguest times, inside whatever runs it, the two things the plugin does per request: an ES256 check (a
// first-seen token) and a cached token's lookup and six header writes. BenchmarkHTTPWasmAlternative runs it built
// for wasip1 under wazero (the engine of Traefik's http-wasm plugins) and natively.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"time"
)

type headerOp struct {
	name string
	vals []string
}

func main() {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	input := []byte("eyJhbGciOiJFUzI1NiIsImtpZCI6ImJlbmNoIiwidHlwIjoiYXQrand0In0.eyJhdWQiOiJodHRwOi8vMTI3LjAuMC4xL3BsdWdpbi9tY3AiLCJjbGllbnRfaWQiOiJiZW5jaC1jbGllbnQiLCJleHAiOjE3OTYxODkwMjd9")
	d := sha256.Sum256(input)
	r, s, err := ecdsa.Sign(rand.Reader, k, d[:])
	if err != nil {
		panic(err)
	}
	n := 300
	start := time.Now()
	for i := 0; i < n; i++ {
		h := sha256.Sum256(input)
		if !ecdsa.Verify(&k.PublicKey, h[:], new(big.Int).Set(r), new(big.Int).Set(s)) {
			panic("signature refused")
		}
	}
	es256 := float64(time.Since(start).Nanoseconds()) / float64(n) / 1e3

	var hot sync.Map
	key := "Bearer " + string(input) + ".signature"
	hot.Store(key, []headerOp{{"X-User-Id", []string{"1"}}, {"X-User-Name", []string{"u"}}, {"X-User-Email", []string{"e"}},
		{"X-Client-Id", []string{"c"}}, {"X-Scopes", []string{"mcp"}}, {"Authorization", nil}})
	n = 100000
	start = time.Now()
	for i := 0; i < n; i++ {
		h := http.Header{"Authorization": {key}}
		if v, ok := hot.Load(h["Authorization"][0]); ok {
			for _, op := range v.([]headerOp) {
				h[op.name] = op.vals
			}
		}
	}
	cached := float64(time.Since(start).Nanoseconds()) / float64(n) / 1e3
	fmt.Printf("%.2f %.3f\n", es256, cached)
}

package policy

import (
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkDecide50Rules is the cost of one decision against a 50-rule policy (fiftyRules). Each call is timed on
// its own, so that besides the mean it reports p50-ns/op and p99-ns/op, which `go run ./bench -only policy` reads.
func BenchmarkDecide50Rules(b *testing.B) {
	p := mustParse(b, fiftyRules())
	b.ReportAllocs()
	// Room for every timing up front: growing the slice inside the loop would make garbage whose collection lands in
	// the timings it is meant to measure.
	took := make([]time.Duration, 0, 1<<20)
	// Steady state, as in a proxy that has run a while: a fresh process's first decisions run on a heap still growing
	// into memory never touched before, which was the whole tail of a cold run (a larger GOGC made it worse).
	for range 100000 {
		p.Decide(benchCaller, benchRequest)
	}
	runtime.GC() // and none of the set-up's garbage left to collect while timing
	for b.Loop() {
		t0 := time.Now()
		p.Decide(benchCaller, benchRequest)
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2]), "p50-ns/op")
	b.ReportMetric(float64(took[len(took)*99/100]), "p99-ns/op")
}

package policy

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkDecide50Rules is the cost of one decision against a 50-rule policy (fiftyRules). Each call is timed on
// its own, so that besides the mean it reports p50-ns/op and p99-ns/op, which `go run ./bench -only policy` reads.
func BenchmarkDecide50Rules(b *testing.B) {
	p := mustParse(b, fiftyRules())
	b.ReportAllocs()
	var took []time.Duration
	for b.Loop() {
		t0 := time.Now()
		p.Decide(benchCaller, benchRequest)
		took = append(took, time.Since(t0))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2]), "p50-ns/op")
	b.ReportMetric(float64(took[len(took)*99/100]), "p99-ns/op")
}

package main

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A target that fails in the calls/s runs keeps the figures it measured before, marked, and is not judged.
func TestStreamTablesKeepPartialResults(t *testing.T) {
	cfg := fullConfig()
	cfg.Reps = 1
	ok := func(p50 float64) *streamResult {
		r := &streamResult{p50: []float64{p50}, p99: []float64{p50 * 3}, calls: []int{cfg.Calls}, start: []time.Duration{time.Millisecond},
			memPer: math.NaN(), rate: map[int][]float64{}, ratep99: map[int][]float64{}}
		for _, n := range cfg.Sessions {
			r.rate[n], r.ratep99[n] = []float64{1000 / p50}, []float64{p50 * 4}
		}
		return r
	}
	failed := ok(200)
	failed.calls = []int{70}
	delete(failed.rate, 64)
	failed.err = errors.New("64 sessions: 1 of 65 calls failed")
	targets := []streamTarget{{name: targetStdio}, {name: targetSPSessions}, {name: targetSPStateless}, {name: targetSGStateless}}
	res := []*streamResult{ok(0.1), ok(0.6), ok(0.35), failed}
	s := &Section{}
	writeStreamTables(cfg, s, mcpServer{name: "srv", tool: "`echo`"}, targets, res, nil)

	md := s.Doc.String()
	assert.Contains(t, md, "| supergateway (stateless) (failed later, see notes) | 200.0 ms |")
	assert.Contains(t, md, "| not measured |", "the calls/s run that failed has no figure")
	assert.Contains(t, md, "supergateway (stateless): 70 to 70 calls per repetition")
	verdicts := map[string]Verdict{}
	for _, v := range s.Verdicts {
		verdicts[v.Target] = v
	}
	assert.Equal(t, notMeasured, verdicts["streamproxy, 2026-07-28: ahead of supergateway (stateless) (srv)"].Measured)
	assert.True(t, verdicts["streamproxy, 2026-07-28: p50 within 0.3 ms of direct stdio (srv)"].Met)
	assert.True(t, verdicts["streamproxy, 2026-07-28: no slower than the 2025-06-18 session path (srv)"].Met, "%+v", verdicts["streamproxy, 2026-07-28: no slower than the 2025-06-18 session path (srv)"])
	assert.Contains(t, s.Summary.String(), "| streamproxy (2026-07-28) | 0.350 ms (0.58x) |")
}

// The HTTP floor is a row of its own, and the proxy's overhead is put against it.
func TestStreamTablesShowTheHTTPFloor(t *testing.T) {
	cfg := fullConfig()
	cfg.Reps = 1
	r := func(p50 float64) *streamResult {
		return &streamResult{p50: []float64{p50}, p99: []float64{p50 * 2}, calls: []int{cfg.Calls}, memPer: math.NaN(),
			rate: map[int][]float64{}, ratep99: map[int][]float64{}}
	}
	targets := []streamTarget{{name: targetStdio}, {name: targetSPSessions}, {name: targetSPStateless}}
	s := &Section{}
	writeStreamTables(cfg, s, mcpServer{name: "srv", tool: "`echo`"}, targets, []*streamResult{r(0.1), r(0.3), r(0.2)}, r(0.04))
	md := s.Doc.String()
	assert.Contains(t, md, "| "+targetHTTPFloor+" | 0.040 ms | 0% | 0.080 ms | - | - | - |")
	assert.Contains(t, md, "streamproxy (2025-06-18 sessions) adds +0.200 ms over direct stdio, 5.0x the floor")
	assert.Contains(t, md, "streamproxy (2026-07-28) adds +0.100 ms over direct stdio, 2.5x the floor")
}

// For a server that speaks 2026-07-28, the 2026-07-28 path is put against direct stdio in 2026-07-28 (the messages
// streamproxy passes on to it), with the comparison against direct stdio in 2025-06-18 beside it.
func TestStreamTablesPutTheStatelessPathAgainstStdioInItsVersion(t *testing.T) {
	cfg := fullConfig()
	cfg.Reps = 1
	r := func(p50 float64) *streamResult {
		return &streamResult{p50: []float64{p50}, p99: []float64{p50 * 2}, calls: []int{cfg.Calls}, memPer: math.NaN(),
			rate: map[int][]float64{}, ratep99: map[int][]float64{}}
	}
	srv := mcpServer{name: "srv", tool: "`t`", speaksStateless: true}
	targets := targetsFor(srv, []streamTarget{{name: targetStdio}, {name: targetStdioStateless}, {name: targetSPSessions}, {name: targetSPStateless}})
	s := &Section{}
	writeStreamTables(cfg, s, srv, targets, []*streamResult{r(0.15), r(0.2), r(0.35), r(0.5)}, r(0.04))
	md := s.Doc.String()
	assert.Contains(t, md, "| "+targetStdioStateless+" | 0.200 ms | 0% | 0.400 ms | +0.050 ms |")
	assert.Contains(t, md, "| "+targetSPSessions+" | 0.350 ms | 0% | 0.700 ms | +0.200 ms |")
	assert.Contains(t, md, "| "+targetSPStateless+" | 0.500 ms | 0% | 1.00 ms | +0.300 ms vs direct stdio (2026-07-28) (+0.350 ms vs direct stdio) |")
	assert.Contains(t, md, "streamproxy (2026-07-28) adds +0.300 ms over direct stdio (2026-07-28), 7.5x the floor")
	verdicts := map[string]string{}
	for _, v := range s.Verdicts {
		verdicts[v.Target] = v.Measured
	}
	assert.Equal(t, "+0.300 ms (0.500 ms vs 0.200 ms direct stdio (2026-07-28))", verdicts["streamproxy, 2026-07-28: p50 within 0.3 ms of direct stdio (srv)"])
	assert.Contains(t, s.Summary.String(), "| "+targetStdioStateless+" | 0.200 ms (0.57x) |")

	// A server that speaks only the session revisions has no such row: the proxy bridges, and speaks 2025-06-18 to it.
	assert.Equal(t, []streamTarget{{name: targetStdio}, {name: targetSPStateless}},
		targetsFor(mcpServer{}, []streamTarget{{name: targetStdio}, {name: targetStdioStateless}, {name: targetSPStateless}}))
}

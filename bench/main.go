// Command bench runs the gateway's benchmark suite on this machine and writes docs/benchmarks.md: the edge cost of
// the plugin against no auth and ForwardAuth, token issuance on Redis and on the embedded store, and MCP streaming
// through streamproxy against stdio and the npm peers, what one decision of streamproxy's policy costs, and many
// users on one host (shared and per-user servers, the pool). Every
// comparison is measured side by side in one run.
//
//	go run ./bench            # full run (about 30 minutes on 2 cores), writes docs/benchmarks.md
//	go run ./bench -smoke     # every benchmark for a second or so; writes nothing unless -out is given
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// backendEnv makes the program serve the trivial edge backend instead of running the suite (see serveBackend).
const backendEnv = "GATEWAY_BENCH_BACKEND"

func main() {
	if addr := os.Getenv(backendEnv); addr != "" {
		if err := serveBackend(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var (
		smoke = flag.Bool("smoke", false, "run every benchmark for about a second (CI); no targets are judged")
		out   = flag.String("out", "", "write the report here (default docs/benchmarks.md for a full run, nothing for -smoke)")
		only  = flag.String("only", "", "comma-separated sections to run: edge, issuance, streaming, policy, tracing, users (default all)")
		reps  = flag.Int("reps", 0, "repetitions of each measurement (default 3, 1 with -smoke)")
	)
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))

	cfg := fullConfig()
	if *smoke {
		cfg = smokeConfig()
	}
	if *reps > 0 {
		cfg.Reps, cfg.EdgeReps = *reps, *reps
	}
	if *only != "" {
		cfg.Only = map[string]bool{}
		for _, s := range strings.Split(*only, ",") {
			cfg.Only[strings.TrimSpace(s)] = true
		}
	}
	dest := *out
	if dest == "" && !*smoke {
		dest = filepath.Join("docs", "benchmarks.md")
	}
	if err := run(cfg, dest); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(cfg Config, dest string) error {
	s, err := runSuite(cfg)
	if err != nil {
		return err
	}
	for _, r := range s.Sections {
		if r.Err != nil && !errors.Is(r.Err, errSkipped) {
			slog.Error("section failed", "section", r.Name, "err", r.Err)
		}
	}
	if dest != "" {
		if err := os.WriteFile(dest, []byte(s.Markdown()), 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		slog.Info("report written", "file", dest)
	} else {
		fmt.Print(s.Markdown())
	}
	if s.Failed() {
		return errors.New("some sections failed (see the report)")
	}
	return nil
}

// Config sets how long and how often everything is measured.
type Config struct {
	Smoke       bool
	Reps        int
	Only        map[string]bool // nil: every section
	Warmup      time.Duration
	EdgeReps    int           // repetitions of the headline wrk table (the noisiest, most quoted figure)
	EdgeRun     time.Duration // one wrk or load-generator run
	EdgeGrowth  []int         // connections for the growth runs (1x, 4x, 16x)
	TokenSets   []int         // distinct tokens cycled through the plugin (1x, 4x, 16x)
	GrowthRun   time.Duration
	IssueRun    time.Duration // one issuance run
	IssueCodes  int           // authorization codes prepared per exchange run
	Clients     int           // concurrent clients for issuance
	Calls       int           // sequential tool calls on one session for the latency figures
	CallsMax    time.Duration // cap on one latency repetition, for a target too slow for Calls calls
	Sessions    []int         // concurrent sessions for calls/s
	SessionRun  time.Duration // one calls/s run
	StartCount  int           // sessions started one after another for the start time
	MemSessions int           // sessions held open for the memory figure

	Users         []int         // simulated 2026-07-28 users, one run each
	UserInterval  time.Duration // each user calls once per interval
	UsersRun      time.Duration // measured, after one interval of warm-up
	Share         int           // streamproxy --share for the shared server
	UserProcesses int           // streamproxy --max-sessions for the per-user server
	UserIdle      time.Duration // streamproxy --idle-timeout for the per-user server
	Pool          int           // streamproxy --pool for the session start
}

func fullConfig() Config {
	return Config{
		Reps: 3, EdgeReps: 5, Warmup: 2 * time.Second,
		EdgeRun: 5 * time.Second, EdgeGrowth: []int{16, 64, 256}, TokenSets: []int{10000, 40000, 160000},
		GrowthRun: 3 * time.Second,
		IssueRun:  3 * time.Second, IssueCodes: 4000, Clients: 16,
		Calls: 2000, CallsMax: 15 * time.Second, Sessions: []int{1, 4, 16, 64}, SessionRun: 2 * time.Second, StartCount: 10, MemSessions: 16,
		Users: []int{1000, 10000}, UserInterval: 5 * time.Second, UsersRun: 20 * time.Second, Share: 2, UserProcesses: 20,
		UserIdle: time.Minute, Pool: 4,
	}
}

func smokeConfig() Config {
	return Config{
		Smoke: true, Reps: 1, EdgeReps: 1, Warmup: 200 * time.Millisecond,
		EdgeRun: time.Second, EdgeGrowth: []int{4, 16}, TokenSets: []int{100, 400},
		GrowthRun: time.Second,
		IssueRun:  time.Second, IssueCodes: 100, Clients: 4,
		Calls: 50, CallsMax: time.Second, Sessions: []int{1, 4}, SessionRun: time.Second, StartCount: 2, MemSessions: 2,
		Users: []int{10, 40}, UserInterval: 500 * time.Millisecond, UsersRun: time.Second, Share: 1, UserProcesses: 2,
		UserIdle: time.Minute, Pool: 2,
	}
}

func (c Config) runs(section string) bool { return c.Only == nil || c.Only[section] }

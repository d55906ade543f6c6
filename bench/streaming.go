package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"log/slog"

	"github.com/mcp-oauth-gateway/gateway/bench/internal/load"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/mcpclient"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/proc"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/report"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/stats"
	"github.com/mcp-oauth-gateway/gateway/internal/testenv"
)

// mcpServer is a stdio MCP server every streaming target wraps, and the tool call measured on it.
type mcpServer struct {
	name string
	argv []string
	call func(ctx context.Context, s mcpclient.Session, seq int64) error
	tool string // for the report
}

// launched is a running streaming target.
type launched struct {
	open    func(ctx context.Context) (mcpclient.Session, error)
	pid     int // the proxy's own process; 0 when there is none (direct stdio)
	stop    func()
	command string
}

// streamTarget knows how to run one way of serving an MCP server.
type streamTarget struct {
	name   string
	launch func(e *env, srv mcpServer) *launched
}

// benchUser is the identity the plugin would pass on; streamproxy binds sessions to it.
const benchUser = "4242"

func streamingSection(e *env, cfg Config, s *Section) {
	nm := testenv.NodeModules(e)
	node := testenv.NodeBin(e)
	servers := []mcpServer{
		{
			name: "server-everything (Node)",
			argv: []string{node, filepath.Join(nm, "@modelcontextprotocol/server-everything/dist/index.js")},
			tool: "`echo`",
			call: func(ctx context.Context, sess mcpclient.Session, seq int64) error {
				return mcpclient.Echo(ctx, sess, "m"+strconv.FormatInt(seq, 10))
			},
		},
		{
			name: "Go SDK conformance fixture",
			argv: []string{buildEverythingServer(e)},
			tool: "`test_simple_text` (the fixture has no `echo`)",
			call: func(ctx context.Context, sess mcpclient.Session, _ int64) error {
				_, err := mcpclient.CallTool(ctx, sess, "test_simple_text", nil)
				return err
			},
		},
	}
	s.Commands = append(s.Commands, "go build -o $TMP/everything-server github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	targets := []streamTarget{{"direct stdio", launchStdio}}
	if sp := streamproxyTarget(e, s); sp != nil {
		targets = append(targets, *sp)
	}
	targets = append(targets,
		streamTarget{"supergateway", func(e *env, srv mcpServer) *launched {
			return launchHTTP(e, "supergateway", func(port int) []string {
				return []string{node, filepath.Join(nm, "supergateway/dist/index.js"), "--stdio", shellJoin(srv.argv),
					"--outputTransport", "streamableHttp", "--stateful", "--port", strconv.Itoa(port), "--logLevel", "none"}
			})
		}},
		streamTarget{"mcp-proxy", func(e *env, srv mcpServer) *launched {
			return launchHTTP(e, "mcp-proxy", func(port int) []string {
				return append([]string{node, filepath.Join(nm, "mcp-proxy/dist/bin/mcp-proxy.mjs"), "--port", strconv.Itoa(port),
					"--host", "127.0.0.1", "--server", "stream", "--"}, srv.argv...)
			})
		}},
	)

	s.Doc.P("One Go client (`bench/internal/mcpclient`: initialize, notifications/initialized, tools/call; reads JSON and SSE "+
		"answers) drives every HTTP target; direct stdio is the same client speaking newline-delimited JSON-RPC to the "+
		"server's stdin/stdout. Per-call latency: %d sequential calls on one session after %d warm-up calls, per "+
		"repetition. Calls/s: N sessions opened first (not timed), then N workers each calling back to back on its own "+
		"session for %s. Session start: initialize request to its result (for direct stdio, from spawning the process), "+
		"%d sessions one after another. Memory: the proxy's own RSS (VmRSS of its process, children excluded) after "+
		"opening %d sessions with 10 calls each, minus its RSS before, divided by %d. 4, 16 and 64 sessions are the 1x, "+
		"4x and 16x growth steps.",
		cfg.Calls, warmCalls(cfg), cfg.SessionRun, cfg.StartCount, cfg.MemSessions, cfg.MemSessions)

	for _, srv := range servers {
		results := make([]*streamResult, len(targets))
		for i, t := range targets {
			slog.Info("streaming target", "server", srv.name, "target", t.name)
			results[i] = measureStream(e, cfg, srv, t, s)
		}
		writeStreamTables(cfg, s, srv, targets, results)
	}
}

func warmCalls(cfg Config) int { return min(200, cfg.Calls/2) }

// streamResult is what was measured on one target.
type streamResult struct {
	err      error
	p50, p99 []float64         // ms, per repetition
	rate     map[int][]float64 // sessions -> calls/s per repetition
	ratep99  map[int][]float64 // sessions -> p99 ms per repetition
	start    []time.Duration
	memPer   float64 // bytes per session, NaN when not applicable
	command  string
}

func measureStream(e *env, cfg Config, srv mcpServer, t streamTarget, s *Section) (res *streamResult) {
	res = &streamResult{rate: map[int][]float64{}, ratep99: map[int][]float64{}, memPer: math.NaN()}
	// A failing target is reported in its row; it does not stop the other targets.
	defer func() {
		if r := recover(); r != nil {
			ae, ok := r.(abortError)
			if !ok {
				panic(r)
			}
			res.err = ae.err
			s.note("%s on %s: %v", t.name, srv.name, ae.err)
		}
	}()
	ctx := context.Background()
	l := t.launch(e, srv)
	defer l.stop()
	res.command = l.command
	openN := func(n int) []mcpclient.Session {
		// Opened a few at a time: per-session children take a while to spawn, and this part is not timed.
		out := make([]mcpclient.Session, n)
		r, err := load.Run(ctx, load.Options{Workers: min(n, 4), Total: int64(n)}, func(ctx context.Context, _ int, seq int64) error {
			sess, err := l.open(ctx)
			out[seq] = sess
			return err
		})
		e.check(err, "open sessions")
		if r.Errors > 0 {
			for _, sess := range out {
				if sess != nil {
					_ = sess.Close()
				}
			}
			e.Fatalf("opening %d sessions: %d failed, first: %v", n, r.Errors, r.FirstErr)
		}
		return out
	}
	closeAll := func(ss []mcpclient.Session) {
		for _, sess := range ss {
			if sess != nil {
				_ = sess.Close()
			}
		}
	}
	callN := func(sess mcpclient.Session, n int) []time.Duration {
		lat := make([]time.Duration, 0, n)
		for i := range n {
			t0 := time.Now()
			e.check(srv.call(ctx, sess, int64(i)), "tool call")
			lat = append(lat, time.Since(t0))
		}
		return lat
	}

	// Warm up the proxy, then measure its memory per session on a fresh heap.
	w := openN(1)
	callN(w[0], warmCalls(cfg))
	closeAll(w)
	if l.pid != 0 {
		rss0, err := proc.RSS(l.pid)
		e.check(err, "proxy memory")
		ss := openN(cfg.MemSessions)
		for _, sess := range ss {
			callN(sess, 10)
		}
		time.Sleep(200 * time.Millisecond) // let lazily allocated buffers settle
		rss1, err := proc.RSS(l.pid)
		e.check(err, "proxy memory")
		res.memPer = float64(rss1-rss0) / float64(cfg.MemSessions)
		closeAll(ss)
	}

	// Session start.
	for range cfg.StartCount {
		ss := openN(1)
		res.start = append(res.start, mcpclient.InitTime(ss[0]))
		closeAll(ss)
	}

	// Per-call latency over one session.
	one := openN(1)
	callN(one[0], warmCalls(cfg))
	for range cfg.Reps {
		lat := stats.Summarize(callN(one[0], cfg.Calls))
		res.p50 = append(res.p50, stats.Ms(lat.P50))
		res.p99 = append(res.p99, stats.Ms(lat.P99))
	}
	closeAll(one)

	// Calls/s at each number of concurrent sessions.
	for _, n := range cfg.Sessions {
		ss := openN(n)
		op := func(ctx context.Context, worker int, seq int64) error { return srv.call(ctx, ss[worker], seq) }
		_, err := load.Run(ctx, load.Options{Workers: n, Duration: cfg.Warmup / 2}, op)
		e.check(err, "warm-up")
		for range cfg.Reps {
			r, err := load.Run(ctx, load.Options{Workers: n, Duration: cfg.SessionRun}, op)
			e.check(err, "calls/s")
			if r.Errors > 0 {
				e.Fatalf("%d sessions: %d of %d calls failed, first: %v", n, r.Errors, r.Errors+r.Ops, r.FirstErr)
			}
			res.rate[n] = append(res.rate[n], r.PerSecond())
			res.ratep99[n] = append(res.ratep99[n], stats.Ms(stats.Summarize(r.Latencies).P99))
		}
		closeAll(ss)
	}
	return res
}

// launchStdio runs the server directly: one process per session, no proxy.
func launchStdio(e *env, srv mcpServer) *launched {
	return &launched{
		command: shellJoin(srv.argv) + "   # one process per session, JSON-RPC on stdin/stdout",
		open: func(ctx context.Context) (mcpclient.Session, error) {
			cmd := exec.Command(srv.argv[0], srv.argv[1:]...)
			cmd.Stderr = nil
			return mcpclient.OpenStdio(ctx, cmd)
		},
		stop: func() {},
	}
}

// launchHTTP starts a Streamable HTTP proxy (argv built for a free port) serving /mcp.
func launchHTTP(e *env, name string, argv func(port int) []string) *launched {
	port := testenv.FreePort(e)
	args := argv(port)
	cmd := exec.Command(args[0], args[1:]...)
	p := testenv.Start(e, name, cmd)
	testenv.WaitTCP(e, "127.0.0.1:"+strconv.Itoa(port), 30*time.Second)
	c := &mcpclient.HTTPClient{
		URL:    testenv.URL(port, "/mcp"),
		HTTP:   &http.Client{Transport: mcpclient.NewHTTPTransport(), Timeout: 60 * time.Second},
		Header: http.Header{"X-User-Id": {benchUser}},
	}
	return &launched{
		command: shellJoin(args),
		pid:     cmd.Process.Pid,
		open:    c.Open,
		stop: func() {
			kids := proc.Children(cmd.Process.Pid)
			p.Stop()
			// Children a proxy left behind (sessions it did not end) must not load the next measurement.
			for _, k := range kids {
				_ = syscall.Kill(k, syscall.SIGKILL)
			}
		},
	}
}

// buildEverythingServer builds the Go SDK's conformance fixture server (stdio when run without flags).
func buildEverythingServer(e *env) string {
	out := filepath.Join(e.TempDir(), "everything-server")
	cmd := exec.Command("go", "build", "-o", out, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	b, err := cmd.CombinedOutput()
	if err != nil {
		e.Fatalf("go build the Go SDK conformance fixture: %v\n%s", err, b)
	}
	return out
}

// shellJoin quotes argv for a shell command line (supergateway takes one, and the report shows them).
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\"'$\\`*?[]{}();|&<>!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// relPath shortens absolute paths under the repository for the report.
func relPath(s string) string {
	wd, err := os.Getwd()
	if err != nil {
		return s
	}
	return strings.ReplaceAll(s, wd+string(filepath.Separator), "")
}

func writeStreamTables(cfg Config, s *Section, srv mcpServer, targets []streamTarget, res []*streamResult) {
	s.Doc.H3(srv.name + ": " + srv.tool)
	med := func(v []float64) float64 { return stats.Of(v).Median }
	base := res[0] // direct stdio
	var rows [][]string
	for i, t := range targets {
		r := res[i]
		if r.err != nil {
			rows = append(rows, []string{t.name, "failed: " + r.err.Error(), "", "", "", ""})
			continue
		}
		starts := make([]float64, len(r.start))
		for j, d := range r.start {
			starts[j] = stats.Ms(d)
		}
		st := stats.Of(starts)
		rows = append(rows, []string{t.name, report.MsF(med(r.p50)), report.Pct(stats.Of(r.p50).RelSpread()), report.MsF(med(r.p99)),
			fmt.Sprintf("%+.3f ms", med(r.p50)-med(base.p50)),
			fmt.Sprintf("%s (max %s)", report.MsF(st.Median), report.MsF(st.Max)), report.MiB(r.memPer)})
	}
	s.Doc.Table([]string{"target", "p50 per call", "spread of p50", "p99 per call", "p50 vs direct stdio", "session start (median)", "proxy RSS per session"}, rows)

	header := []string{"target"}
	for _, n := range cfg.Sessions {
		header = append(header, fmt.Sprintf("%d sessions: calls/s (p99)", n))
	}
	rows = nil
	for i, t := range targets {
		r := res[i]
		if r.err != nil {
			continue
		}
		row := []string{t.name}
		for _, n := range cfg.Sessions {
			rs := stats.Of(r.rate[n])
			row = append(row, fmt.Sprintf("%s ±%s (%s)", report.Num(rs.Median), report.Pct(rs.RelSpread()), report.MsF(med(r.ratep99[n]))))
		}
		rows = append(rows, row)
	}
	s.Doc.Table(header, rows)

	var cmds []string
	for i, t := range targets {
		if res[i].command != "" {
			cmds = append(cmds, "# "+t.name+"\n"+relPath(res[i].command))
		}
	}
	s.Commands = append(s.Commands, "# --- "+srv.name+" ---\n"+strings.Join(cmds, "\n"))

	key := func(t string) string { return strings.ReplaceAll(strings.ToLower(t), " ", "-") }
	for i, t := range targets {
		if res[i].err == nil {
			s.set("streaming."+key(srv.name)+"."+key(t.name)+".p50ms", med(res[i].p50))
		}
	}
	judgeStream(cfg, s, srv, targets, res)
}

// peerDelta is target i's p50 minus base's, formatted, or n/a.
func peerDelta(res []*streamResult, i, base int) string {
	if i < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%+.3f ms", stats.Of(res[i].p50).Median-stats.Of(res[base].p50).Median)
}

// judgeStream checks streamproxy against issue 6's streaming targets.
func judgeStream(cfg Config, s *Section, srv mcpServer, targets []streamTarget, res []*streamResult) {
	idx := func(name string) int {
		for i, t := range targets {
			if t.name == name && res[i].err == nil {
				return i
			}
		}
		return -1
	}
	sp, sg, mp := idx("streamproxy"), idx("supergateway"), idx("mcp-proxy")
	if sp < 0 || res[0].err != nil {
		s.verdict("streamproxy p50 within 0.2 ms of direct stdio ("+srv.name+")", notMeasured, false, "streamproxy or direct stdio did not run (see notes)")
		return
	}
	med := func(v []float64) float64 { return stats.Of(v).Median }
	d := med(res[sp].p50) - med(res[0].p50)
	s.verdict("streamproxy p50 within 0.2 ms of direct stdio ("+srv.name+")", fmt.Sprintf("%+.3f ms (%s vs %s)", d,
		report.MsF(med(res[sp].p50)), report.MsF(med(res[0].p50))), d <= 0.2,
		whyIf(d > 0.2, fmt.Sprintf("each call adds an HTTP round trip (client to proxy) to the stdio hop; in the same run "+
			"supergateway adds %s and mcp-proxy %s", peerDelta(res, sg, 0), peerDelta(res, mp, 0))))
	for _, n := range cfg.Sessions {
		if n != 1 && n != 16 && n != 64 && !cfg.Smoke {
			continue
		}
		best, bestName := 0.0, ""
		for _, p := range []int{sg, mp} {
			if p >= 0 && med(res[p].rate[n]) > best {
				best, bestName = med(res[p].rate[n]), targets[p].name
			}
		}
		if bestName == "" {
			continue
		}
		spRate, stdio := med(res[sp].rate[n]), med(res[0].rate[n])
		r := spRate / best
		why := ""
		switch {
		case r >= 3:
		case 3*best > stdio:
			why = fmt.Sprintf("3x the better peer is %s calls/s, more than the server itself answers over direct stdio "+
				"in this run (%s calls/s): no proxy could meet it here; streamproxy reaches %s of direct stdio",
				report.Num(3*best), report.Num(stdio), report.Ratio(spRate/stdio))
		default:
			why = fmt.Sprintf("streamproxy reaches %s of direct stdio's %s calls/s: the rest is the proxy's own cost per "+
				"call (HTTP request, session lookup, pipe hop) on 2 cores shared with the client and the servers",
				report.Ratio(spRate/stdio), report.Num(stdio))
		}
		s.verdict(fmt.Sprintf("streamproxy >= 3x the better peer's calls/s at %d sessions (%s)", n, srv.name),
			fmt.Sprintf("%s (%s vs %s %s)", report.Ratio(r), report.Num(spRate), bestName, report.Num(best)), r >= 3, why)
	}
}

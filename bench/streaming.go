package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// mcpServer is a stdio MCP server every streaming target wraps, and the tool call measured on it.
type mcpServer struct {
	name string
	argv []string
	call func(ctx context.Context, s mcpclient.Session, seq int64) error
	tool string // for the report
	// speaksStateless: the server speaks protocol version 2026-07-28 itself, so streamproxy passes 2026-07-28
	// requests on to it, and direct stdio is measured in that version too (targetStdioStateless).
	speaksStateless bool
}

// launched is a running streaming target.
type launched struct {
	open    func(ctx context.Context) (mcpclient.Session, error)
	pid     int    // the proxy's own process; 0 when there is none (direct stdio)
	url     string // the MCP endpoint; "" for direct stdio
	stop    func()
	command string
}

// streamTarget knows how to run one way of serving an MCP server.
type streamTarget struct {
	name   string
	launch func(e *env, srv mcpServer) (*launched, error)
}

// Target names the verdicts and the summary look up.
const (
	targetStdio           = "direct stdio"
	targetStdioStateless  = "direct stdio (" + mcpclient.StatelessProtocolVersion + ")"
	targetSPSessions      = "streamproxy (" + mcpclient.ProtocolVersion + " sessions)"
	targetSPStateless     = "streamproxy (" + mcpclient.StatelessProtocolVersion + ")"
	targetSGStateful      = "supergateway (stateful)"
	targetSGStateless     = "supergateway (stateless)"
	targetMCPProxy        = "mcp-proxy"
	statelessP50Tolerance = 0.3 // ms over direct stdio
)

// userHeader is the identity header the plugin would set. Every session the bench opens over HTTP is a user of its
// own (mcpclient.HTTPClient.UserHeader): a 2026-07-28 "session" is a user to streamproxy, so the session-revision
// sessions are too, which keeps the two paths alike and clear of any per-user limit.
const userHeader = "X-User-Id"

func streamingSection(e *env, cfg Config, s *Section) error {
	nm, err := testenv.FindNodeModules()
	if err != nil {
		return err
	}
	node, err := testenv.FindNode()
	if err != nil {
		return err
	}
	fixture, err := buildEverythingServer(e)
	if err != nil {
		return err
	}
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
			name:            "Go SDK conformance fixture",
			speaksStateless: true,
			argv:            []string{fixture},
			tool:            "`test_simple_text` (the fixture has no `echo`)",
			call: func(ctx context.Context, sess mcpclient.Session, _ int64) error {
				text, err := mcpclient.CallTool(ctx, sess, "test_simple_text", nil)
				if err == nil && !strings.Contains(text, "simple text response") {
					err = fmt.Errorf("test_simple_text answered %q, not the fixture's text", text)
				}
				return err
			},
		},
	}
	s.Commands = append(s.Commands, "go build -o $TMP/everything-server github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	targets := []streamTarget{{targetStdio, launchStdio}, {targetStdioStateless, launchStdioStateless}}
	sp, err := streamproxyTargets(s)
	if err != nil {
		return err
	}
	targets = append(targets, sp...)
	supergateway := func(srv mcpServer, port int, mode ...string) []string {
		args := []string{node, filepath.Join(nm, "supergateway/dist/index.js"), "--stdio", shellJoin(srv.argv),
			"--outputTransport", "streamableHttp"}
		args = append(args, mode...)
		return append(args, "--port", strconv.Itoa(port), "--logLevel", "none")
	}
	targets = append(targets,
		streamTarget{targetSGStateful, func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "supergateway", sessionClient, func(port int) []string { return supergateway(srv, port, "--stateful") })
		}},
		// Without --stateful, supergateway serves the stateless Streamable HTTP mode: a child per POST, initialized
		// by supergateway before the request. (Its 2026-07-28 handler also spawns a child per request and passes
		// the request on as it is, which a session-revision child such as server-everything cannot answer; the
		// 2025-06-18 client drives it on both servers.)
		streamTarget{targetSGStateless, func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "supergateway", sessionClient, func(port int) []string { return supergateway(srv, port) })
		}},
		streamTarget{targetMCPProxy, func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "mcp-proxy", sessionClient, func(port int) []string {
				return append([]string{node, filepath.Join(nm, "mcp-proxy/dist/bin/mcp-proxy.mjs"), "--port", strconv.Itoa(port),
					"--host", "127.0.0.1", "--server", "stream", "--"}, srv.argv...)
			})
		}},
	)

	s.Doc.P("One Go client (`bench/internal/mcpclient`; reads JSON and SSE answers) drives every HTTP target. With "+
		"protocol version %[10]s it opens a session with initialize and notifications/initialized and calls on its "+
		"Mcp-Session-Id; `%[11]s` is streamproxy driven in protocol version %[12]s on the same endpoint: no session, "+
		"a \"session\" is opened with server/discover and every tools/call carries the request metadata in "+
		"`params._meta` and the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers. Every session sends "+
		"its own `X-User-Id` (on both paths), so N sessions are N users; in %[12]s each is served by a worker child of its own (server-everything "+
		"speaks only the session revisions, so streamproxy initializes its workers and bridges; the Go SDK fixture "+
		"speaks %[12]s itself); the bench never ends a worker (there is no DELETE in %[12]s), they end at "+
		"`-idle-timeout`. Direct stdio is the same client speaking newline-delimited JSON-RPC (%[10]s) to the server's "+
		"stdin/stdout. `%[13]s` is direct stdio in %[12]s, for a server that speaks it (the Go SDK fixture): no "+
		"initialize, server/discover, then every request with the request metadata in `params._meta`, the messages "+
		"streamproxy passes on to such a child; the %[12]s path is put against it, as the server does different work "+
		"per request in each version (against direct stdio in %[10]s too, in parentheses). Per-call latency: %[1]d "+
		"sequential calls on one session after %[2]d warm-up calls, per repetition, or as many as fit in %[3]s for "+
		"a target slower than that (supergateway's stateless mode starts a child per call). Calls/s: N sessions opened first (not timed), then N workers each calling back to back "+
		"on its own session; calls started in the %[4]s window run to their end and count, and the window closes "+
		"when the last one does. Session start: initialize request to its result (%[12]s: server/discover, which "+
		"starts the user's worker; for direct stdio, from spawning the process), %[5]d sessions one after another. "+
		"Memory: the proxy's own RSS (VmRSS of its process, children excluded) after opening %[6]d sessions "+
		"(%[12]s: users, so workers) with up to 10 calls each, minus its RSS before, divided by %[7]d. %[8]s "+
		"sessions are the steps of the calls/s table%[9]s.",
		cfg.Calls, warmCalls(cfg), cfg.CallsMax, cfg.SessionRun, cfg.StartCount, cfg.MemSessions, cfg.MemSessions,
		joinInts(cfg.Sessions), growthNote(cfg), mcpclient.ProtocolVersion, targetSPStateless, mcpclient.StatelessProtocolVersion,
		targetStdioStateless)

	floor, err := measureHTTPFloor(cfg)
	if err != nil {
		s.note("%v", err)
	} else {
		s.set("streaming.http-floor.p50ms", stats.Of(floor.p50).Median)
	}
	for _, srv := range servers {
		targets := targetsFor(srv, targets)
		results := make([]*streamResult, len(targets))
		for i, t := range targets {
			slog.Info("streaming target", "server", srv.name, "target", t.name)
			results[i] = measureStream(e, cfg, srv, t, s)
		}
		writeStreamTables(cfg, s, srv, targets, results, floor)
	}
	return nil
}

func warmCalls(cfg Config) int { return min(200, cfg.Calls/2) }

// targetsFor are the targets that serve srv: direct stdio in 2026-07-28 only for a server that speaks it.
func targetsFor(srv mcpServer, targets []streamTarget) []streamTarget {
	if srv.speaksStateless {
		return targets
	}
	return slices.DeleteFunc(slices.Clone(targets), func(t streamTarget) bool { return t.name == targetStdioStateless })
}

// stdioBase is the index of the direct stdio target's p50 is put against (-1: none ran): direct stdio speaking the
// version streamproxy speaks to the child, so that a server's own cost in one version is not counted as the proxy's.
// The 2026-07-28 path passes 2026-07-28 requests on to a child that speaks it (targetStdioStateless ran), and
// 2025-06-18 messages to one that does not (it bridges).
func stdioBase(targets []streamTarget, res []*streamResult, name string) int {
	if name == targetSPStateless {
		if i := targetIndex(targets, res, targetStdioStateless); i >= 0 {
			return i
		}
	}
	return targetIndex(targets, res, targetStdio)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

func growthNote(cfg Config) string {
	if slices.Equal(cfg.Sessions, []int{1, 4, 16, 64}) {
		return " (4, 16 and 64 are the 1x, 4x and 16x growth steps)"
	}
	return ""
}

// streamResult is what was measured on one target.
type streamResult struct {
	err      error
	p50, p99 []float64         // ms, per repetition
	rate     map[int][]float64 // sessions -> calls/s per repetition
	ratep99  map[int][]float64 // sessions -> p99 ms per repetition
	calls    []int             // calls per latency repetition (fewer than cfg.Calls on a slow target)
	start    []time.Duration
	memPer   float64 // bytes per session, NaN when not applicable
	command  string
}

// measureStream measures one target; a target that fails keeps what it measured before, with the error, and does
// not stop the other targets.
func measureStream(e *env, cfg Config, srv mcpServer, t streamTarget, s *Section) *streamResult {
	res := &streamResult{rate: map[int][]float64{}, ratep99: map[int][]float64{}, memPer: math.NaN()}
	if err := measureInto(e, cfg, srv, t, res); err != nil {
		res.err = err
		s.note("%s on %s: %v", t.name, srv.name, err)
	}
	return res
}

// closeAll closes the sessions opened (nil: not opened).
func closeAll(ss []mcpclient.Session) {
	for _, sess := range ss {
		if sess != nil {
			_ = sess.Close()
		}
	}
}

func measureInto(e *env, cfg Config, srv mcpServer, t streamTarget, res *streamResult) error {
	ctx := context.Background()
	l, err := t.launch(e, srv)
	if err != nil {
		return err
	}
	defer l.stop()
	res.command = l.command
	openN := func(n int) ([]mcpclient.Session, error) {
		// Opened a few at a time: per-session children take a while to spawn, and this part is not timed.
		out := make([]mcpclient.Session, n)
		r, err := load.Run(ctx, load.Options{Workers: min(n, 4), Total: int64(n)}, func(ctx context.Context, _ int, seq int64) error {
			sess, err := l.open(ctx)
			out[seq] = sess
			return err
		})
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("open sessions: %w", err)
		}
		if r.Errors > 0 {
			closeAll(out)
			return nil, fmt.Errorf("opening %d sessions: %d failed, first: %w", n, r.Errors, r.FirstErr)
		}
		return out, nil
	}
	// callN makes n sequential calls, or as many as fit in limit (at least one) on a slow target.
	callN := func(sess mcpclient.Session, n int, limit time.Duration) ([]time.Duration, error) {
		lat := make([]time.Duration, 0, n)
		start := time.Now()
		for i := range n {
			t0 := time.Now()
			if err := srv.call(ctx, sess, int64(i)); err != nil {
				return lat, fmt.Errorf("tool call: %w", err)
			}
			lat = append(lat, time.Since(t0))
			if time.Since(start) > limit {
				break
			}
		}
		return lat, nil
	}

	// Warm up the proxy, then measure its memory per session on a fresh heap.
	w, err := openN(1)
	if err != nil {
		return err
	}
	_, err = callN(w[0], warmCalls(cfg), cfg.Warmup)
	closeAll(w)
	if err != nil {
		return err
	}
	if l.pid != 0 {
		rss0, err := proc.RSS(l.pid)
		if err != nil {
			return fmt.Errorf("proxy memory: %w", err)
		}
		ss, err := openN(cfg.MemSessions)
		if err != nil {
			return err
		}
		for _, sess := range ss {
			if _, err := callN(sess, 10, cfg.Warmup/4); err != nil {
				closeAll(ss)
				return err
			}
		}
		time.Sleep(200 * time.Millisecond) // let lazily allocated buffers settle
		rss1, err := proc.RSS(l.pid)
		closeAll(ss)
		if err != nil {
			return fmt.Errorf("proxy memory: %w", err)
		}
		res.memPer = float64(rss1-rss0) / float64(cfg.MemSessions)
	}

	// Session start.
	for range cfg.StartCount {
		ss, err := openN(1)
		if err != nil {
			return err
		}
		res.start = append(res.start, mcpclient.InitTime(ss[0]))
		closeAll(ss)
	}

	// Per-call latency over one session.
	one, err := openN(1)
	if err != nil {
		return err
	}
	err = func() error {
		if _, err := callN(one[0], warmCalls(cfg), cfg.Warmup); err != nil {
			return err
		}
		for range cfg.Reps {
			calls, err := callN(one[0], cfg.Calls, cfg.CallsMax)
			if err != nil {
				return err
			}
			res.calls = append(res.calls, len(calls))
			lat := stats.Summarize(calls)
			res.p50 = append(res.p50, stats.Ms(lat.P50))
			res.p99 = append(res.p99, stats.Ms(lat.P99))
		}
		return nil
	}()
	closeAll(one)
	if err != nil {
		return err
	}

	// Calls/s at each number of concurrent sessions.
	for _, n := range cfg.Sessions {
		if err := measureRate(ctx, cfg, srv, n, openN, closeAll, res); err != nil {
			return err
		}
	}
	return nil
}

// measureRate measures calls/s with n concurrent sessions.
func measureRate(ctx context.Context, cfg Config, srv mcpServer, n int, openN func(int) ([]mcpclient.Session, error),
	closeAll func([]mcpclient.Session), res *streamResult) error {
	ss, err := openN(n)
	if err != nil {
		return err
	}
	defer closeAll(ss)
	// The call gets the measurement's context, not the run's: a call in flight when the window closes runs to its
	// end and counts (load.Run's Elapsed waits for it) instead of being cancelled, which matters for a target whose
	// calls take longer than the window.
	op := func(_ context.Context, worker int, seq int64) error { return srv.call(ctx, ss[worker], seq) }
	if _, err := load.Run(ctx, load.Options{Workers: n, Duration: cfg.Warmup / 2}, op); err != nil {
		return fmt.Errorf("warm-up at %d sessions: %w", n, err)
	}
	for range cfg.Reps {
		r, err := load.Run(ctx, load.Options{Workers: n, Duration: cfg.SessionRun}, op)
		if err != nil {
			return fmt.Errorf("calls/s at %d sessions: %w", n, err)
		}
		if r.Errors > 0 {
			return fmt.Errorf("%d sessions: %d of %d calls failed, first: %w", n, r.Errors, r.Errors+r.Ops, r.FirstErr)
		}
		res.rate[n] = append(res.rate[n], r.PerSecond())
		res.ratep99[n] = append(res.ratep99[n], stats.Ms(stats.Summarize(r.Latencies).P99))
	}
	return nil
}

// launchStdio runs the server directly: one process per session, no proxy.
func launchStdio(_ *env, srv mcpServer) (*launched, error) {
	return directStdio(srv, "JSON-RPC", mcpclient.OpenStdio), nil
}

// launchStdioStateless runs the server directly and speaks protocol version 2026-07-28 to it.
func launchStdioStateless(_ *env, srv mcpServer) (*launched, error) {
	return directStdio(srv, mcpclient.StatelessProtocolVersion+" JSON-RPC", mcpclient.OpenStdioStateless), nil
}

// directStdio starts a process of srv for every session, opened with open; speaks names what goes over the pipes.
func directStdio(srv mcpServer, speaks string, open func(context.Context, *exec.Cmd) (mcpclient.Session, error)) *launched {
	return &launched{
		command: shellJoin(srv.argv) + "   # one process per session, " + speaks + " on stdin/stdout",
		open: func(ctx context.Context) (mcpclient.Session, error) {
			cmd := exec.Command(srv.argv[0], srv.argv[1:]...)
			cmd.Stderr = nil
			return open(ctx, cmd)
		},
		stop: func() {},
	}
}

// sessionClient opens sessions in protocol version mcpclient.ProtocolVersion (initialize), each as a user of its own.
func sessionClient(url string) *mcpclient.HTTPClient {
	return &mcpclient.HTTPClient{
		URL:        url,
		HTTP:       &http.Client{Transport: mcpclient.NewHTTPTransport(), Timeout: 60 * time.Second},
		UserHeader: userHeader,
	}
}

// statelessClient speaks protocol version mcpclient.StatelessProtocolVersion, each session as a user of its own.
func statelessClient(url string) *mcpclient.HTTPClient {
	c := sessionClient(url)
	c.Stateless = true
	return c
}

// launchHTTP starts a Streamable HTTP proxy (argv built for a free port) serving /mcp, driven by client.
func launchHTTP(e *env, name string, client func(url string) *mcpclient.HTTPClient, argv func(port int) []string, env ...string) (*launched, error) {
	port, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	args := argv(port)
	cmd := exec.Command(args[0], args[1:]...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	p, err := e.start(name, cmd)
	if err != nil {
		return nil, err
	}
	if err := testenv.AwaitTCP("127.0.0.1:"+strconv.Itoa(port), 30*time.Second); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := client(testenv.URL(port, "/mcp"))
	return &launched{
		command: shellJoin(args),
		pid:     cmd.Process.Pid,
		url:     c.URL,
		open:    c.Open,
		stop: func() {
			kids := proc.Children(cmd.Process.Pid)
			p.Stop()
			// Children a proxy left behind (sessions it did not end) must not load the next measurement.
			for _, k := range kids {
				_ = syscall.Kill(k, syscall.SIGKILL)
			}
		},
	}, nil
}

// buildEverythingServer builds the Go SDK's conformance fixture server (stdio when run without flags).
func buildEverythingServer(e *env) (string, error) {
	dir, err := e.tempDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "everything-server")
	cmd := exec.Command("go", "build", "-o", out, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build the Go SDK conformance fixture: %w\n%s", err, b)
	}
	return out, nil
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

// writeStreamTables writes one server's tables; floor (nil: not measured) is the HTTP floor, a row of the per-call
// table of its own.
func writeStreamTables(cfg Config, s *Section, srv mcpServer, targets []streamTarget, res []*streamResult, floor *streamResult) {
	s.Doc.H3(srv.name + ": " + srv.tool)
	med := func(v []float64) float64 { return stats.Of(v).Median }
	base := res[0] // direct stdio
	var rows [][]string
	var capped []string
	for i, t := range targets {
		r := res[i]
		if r.err != nil && len(r.p50) == 0 {
			rows = append(rows, []string{t.name, "failed: " + r.err.Error(), "", "", "", "", ""})
			continue
		}
		// A target that failed later (in the calls/s runs) keeps what it measured before; the failure is in the
		// notes and its verdicts are not judged.
		starts := make([]float64, len(r.start))
		for j, d := range r.start {
			starts[j] = stats.Ms(d)
		}
		st := stats.Of(starts)
		name := t.name
		if r.err != nil {
			name += " (failed later, see notes)"
		}
		vsStdio := fmt.Sprintf("%+.3f ms", med(r.p50)-med(base.p50))
		if b := stdioBase(targets, res, t.name); b > 0 {
			vsStdio = fmt.Sprintf("%+.3f ms vs %s (%+.3f ms vs %s)", med(r.p50)-med(res[b].p50), targets[b].name, med(r.p50)-med(base.p50), targets[0].name)
		}
		rows = append(rows, []string{name, report.MsF(med(r.p50)), report.Pct(stats.Of(r.p50).RelSpread()), report.MsF(med(r.p99)),
			vsStdio,
			fmt.Sprintf("%s (max %s)", report.MsF(st.Median), report.MsF(st.Max)), report.MiB(r.memPer)})
		if slices.Min(r.calls) < cfg.Calls {
			capped = append(capped, fmt.Sprintf("%s: %d to %d calls per repetition", t.name, slices.Min(r.calls), slices.Max(r.calls)))
		}
	}
	if floor != nil {
		rows = append(rows, []string{targetHTTPFloor, report.MsF(med(floor.p50)), report.Pct(stats.Of(floor.p50).RelSpread()),
			report.MsF(med(floor.p99)), "-", "-", "-"})
	}
	s.Doc.Table([]string{"target", "p50 per call", "spread of p50", "p99 per call", "p50 vs direct stdio", "session start (median)",
		"proxy RSS per session (" + mcpclient.StatelessProtocolVersion + ": per user)"}, rows)
	if len(capped) > 0 {
		s.Doc.P("Per-call latency over fewer than %d calls (the %s cap): %s.", cfg.Calls, cfg.CallsMax, strings.Join(capped, "; "))
	}
	if floor != nil {
		var near []string
		for _, name := range []string{targetSPSessions, targetSPStateless} {
			if i := targetIndex(targets, res, name); i >= 0 && len(res[i].p50) > 0 {
				b := stdioBase(targets, res, name)
				over := med(res[i].p50) - med(res[b].p50)
				near = append(near, fmt.Sprintf("%s adds %+.3f ms over %s, %.1fx the floor", name, over, targets[b].name, over/med(floor.p50)))
			}
		}
		if len(near) > 0 {
			s.Doc.P("The HTTP floor is one loopback round trip of a JSON-RPC tools/call and its answer between a Go "+
				"client (the bench's transport) and a Go net/http server in the bench's process that answers at once: "+
				"what any HTTP proxy in front of stdio adds at the least, %s per call. %s.", report.MsF(med(floor.p50)),
				strings.Join(near, "; "))
		}
	}

	header := []string{"target"}
	for _, n := range cfg.Sessions {
		header = append(header, fmt.Sprintf("%d sessions: calls/s (p99)", n))
	}
	rows = nil
	for i, t := range targets {
		r := res[i]
		if r.err != nil && len(r.rate) == 0 {
			continue
		}
		row := []string{t.name}
		if r.err != nil {
			row[0] += " (failed later, see notes)"
		}
		for _, n := range cfg.Sessions {
			if len(r.rate[n]) < cfg.Reps {
				row = append(row, "not measured")
				continue
			}
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

	for i, t := range targets {
		if res[i].err == nil {
			s.set("streaming."+numberKey(srv.name)+"."+numberKey(t.name)+".p50ms", med(res[i].p50))
		}
	}
	judgeStream(cfg, s, srv, targets, res)
	summarizeStateless(cfg, s, srv, targets, res)
}

// numberKey turns a name into a key of Section.Numbers: lower case, runs of other characters as one "-".
func numberKey(name string) string {
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// targetIndex is the index of the named target if it ran without error, else -1.
func targetIndex(targets []streamTarget, res []*streamResult, name string) int {
	for i, t := range targets {
		if t.name == name && res[i].err == nil {
			return i
		}
	}
	return -1
}

// judgedSessions are the session counts the verdicts compare: 1, 16 and 64 (every count in smoke mode).
func judgedSessions(cfg Config) []int {
	var out []int
	for _, n := range cfg.Sessions {
		if n == 1 || n == 16 || n == 64 || cfg.Smoke {
			out = append(out, n)
		}
	}
	return out
}

func medianOf(v []float64) float64 { return stats.Of(v).Median }

// judgeStream checks streamproxy against its streaming targets: the session-revision session path's, and those for
// protocol version 2026-07-28.
func judgeStream(cfg Config, s *Section, srv mcpServer, targets []streamTarget, res []*streamResult) {
	stdio, sp := targetIndex(targets, res, targetStdio), targetIndex(targets, res, targetSPSessions)
	var peers []int
	for _, name := range []string{targetSGStateful, targetSGStateless, targetMCPProxy} {
		if i := targetIndex(targets, res, name); i >= 0 {
			peers = append(peers, i)
		}
	}
	peerDeltas := func() string {
		var d []string
		for _, p := range peers {
			d = append(d, fmt.Sprintf("%s adds %+.3f ms", targets[p].name, medianOf(res[p].p50)-medianOf(res[stdio].p50)))
		}
		if len(d) == 0 {
			return "no peer ran"
		}
		return strings.Join(d, ", ")
	}
	sessionTarget := "streamproxy, " + mcpclient.ProtocolVersion + " sessions: p50 within 0.2 ms of direct stdio (" + srv.name + ")"
	if sp < 0 || stdio < 0 {
		s.verdict(sessionTarget, notMeasured, false, "streamproxy or direct stdio did not run (see notes)")
	} else {
		d := medianOf(res[sp].p50) - medianOf(res[stdio].p50)
		s.verdict(sessionTarget, fmt.Sprintf("%+.3f ms (%s vs %s)", d, report.MsF(medianOf(res[sp].p50)), report.MsF(medianOf(res[stdio].p50))),
			d <= 0.2, whyIf(d > 0.2, "each call adds an HTTP round trip (client to proxy) to the stdio hop; in the same run "+peerDeltas()))
		for _, n := range judgedSessions(cfg) {
			best, bestName := 0.0, ""
			for _, p := range peers {
				if r := medianOf(res[p].rate[n]); r > best {
					best, bestName = r, targets[p].name
				}
			}
			if bestName == "" {
				continue
			}
			spRate, stdioRate := medianOf(res[sp].rate[n]), medianOf(res[stdio].rate[n])
			r := spRate / best
			why := ""
			switch {
			case r >= 3:
			case 3*best > stdioRate:
				why = fmt.Sprintf("3x the better peer is %s calls/s, more than the server itself answers over direct stdio "+
					"in this run (%s calls/s): no proxy could meet it here; streamproxy reaches %s of direct stdio",
					report.Num(3*best), report.Num(stdioRate), report.Ratio(spRate/stdioRate))
			default:
				why = fmt.Sprintf("streamproxy reaches %s of direct stdio's %s calls/s: the rest is the proxy's own cost per "+
					"call (HTTP request, session lookup, pipe hop) on 2 cores shared with the client and the servers",
					report.Ratio(spRate/stdioRate), report.Num(stdioRate))
			}
			s.verdict(fmt.Sprintf("streamproxy, %s sessions: >= 3x the better peer's calls/s at %d sessions (%s)", mcpclient.ProtocolVersion, n, srv.name),
				fmt.Sprintf("%s (%s vs %s %s)", report.Ratio(r), report.Num(spRate), bestName, report.Num(best)), r >= 3, why)
		}
	}
	judgeStateless(cfg, s, srv, targets, res)
}

// judgeStateless checks the 2026-07-28 path: no slower than the session-revision session path, ahead of
// supergateway's stateless mode, and its p50 within statelessP50Tolerance of direct stdio.
func judgeStateless(cfg Config, s *Section, srv mcpServer, targets []streamTarget, res []*streamResult) {
	m := targetIndex(targets, res, targetSPStateless)
	name := "streamproxy, " + mcpclient.StatelessProtocolVersion + ": "
	// against compares the stateless path with target other: p50 no higher, calls/s no lower at every judged count.
	against := func(goal, otherName string) {
		o := targetIndex(targets, res, otherName)
		if m < 0 || o < 0 {
			s.verdict(name+goal+" ("+srv.name+")", notMeasured, false, otherName+" or the "+mcpclient.StatelessProtocolVersion+" path did not run (see notes)")
			return
		}
		mp, op := medianOf(res[m].p50), medianOf(res[o].p50)
		met := mp <= op
		var rates, short []string
		if mp > op {
			short = append(short, fmt.Sprintf("p50 %s higher (spread of p50 %s and %s)", report.MsF(mp-op),
				report.Pct(stats.Of(res[m].p50).RelSpread()), report.Pct(stats.Of(res[o].p50).RelSpread())))
		}
		for _, n := range judgedSessions(cfg) {
			mr, or := stats.Of(res[m].rate[n]), stats.Of(res[o].rate[n])
			rates = append(rates, report.Ratio(mr.Median/or.Median))
			if mr.Median < or.Median {
				met = false
				short = append(short, fmt.Sprintf("calls/s at %d sessions %s of %s's (spreads ±%s and ±%s)", n,
					report.Ratio(mr.Median/or.Median), otherName, report.Pct(mr.RelSpread()), report.Pct(or.RelSpread())))
			}
		}
		s.verdict(name+goal+" ("+srv.name+")", fmt.Sprintf("p50 %s vs %s (%s); calls/s %s at %s sessions", report.MsF(mp), report.MsF(op),
			report.Ratio(mp/op), strings.Join(rates, " / "), joinInts(judgedSessions(cfg))), met, strings.Join(short, "; "))
	}
	against("no slower than the "+mcpclient.ProtocolVersion+" session path", targetSPSessions)
	against("ahead of supergateway (stateless)", targetSGStateless)

	stdio, sp := stdioBase(targets, res, targetSPStateless), targetIndex(targets, res, targetSPSessions)
	goal := fmt.Sprintf("%sp50 within %.1f ms of direct stdio (%s)", name, statelessP50Tolerance, srv.name)
	if m < 0 || stdio < 0 {
		s.verdict(goal, notMeasured, false, "the "+mcpclient.StatelessProtocolVersion+" path or direct stdio did not run (see notes)")
		return
	}
	d := medianOf(res[m].p50) - medianOf(res[stdio].p50)
	why := ""
	if d > statelessP50Tolerance {
		why = "each call adds an HTTP round trip (client to proxy, with the request metadata checked) to the stdio hop"
		if old := targetIndex(targets, res, targetStdio); sp >= 0 && old >= 0 {
			why += fmt.Sprintf("; the %s session path adds %+.3f ms in the same run", mcpclient.ProtocolVersion, medianOf(res[sp].p50)-medianOf(res[old].p50))
		}
	}
	base := ""
	if targets[stdio].name != targetStdio {
		base = " " + targets[stdio].name
	}
	s.verdict(goal, fmt.Sprintf("%+.3f ms (%s vs %s%s)", d, report.MsF(medianOf(res[m].p50)), report.MsF(medianOf(res[stdio].p50)), base),
		d <= statelessP50Tolerance, why)
}

// summarizeStateless adds the server's rows to the headline summary: the 2026-07-28 path beside the session path,
// supergateway's stateless mode and direct stdio.
func summarizeStateless(cfg Config, s *Section, srv mcpServer, targets []streamTarget, res []*streamResult) {
	sessions := targetIndex(targets, res, targetSPSessions)
	ns := judgedSessions(cfg)
	header := []string{"target", "p50 per call"}
	for _, n := range ns {
		header = append(header, fmt.Sprintf("calls/s, %d sessions", n))
	}
	var rows [][]string
	for _, name := range []string{targetSPStateless, targetSPSessions, targetSGStateless, targetStdio, targetStdioStateless} {
		if name == targetStdioStateless && !slices.ContainsFunc(targets, func(t streamTarget) bool { return t.name == name }) {
			continue // the server does not speak 2026-07-28
		}
		i := targetIndex(targets, res, name)
		if i < 0 {
			rows = append(rows, append([]string{name, "not measured"}, make([]string, len(ns))...))
			continue
		}
		vsSessions := func(v, l float64) string {
			if sessions < 0 || i == sessions {
				return ""
			}
			return " (" + report.Ratio(v/l) + ")"
		}
		row := []string{name, report.MsF(medianOf(res[i].p50)) + vsSessions(medianOf(res[i].p50), medianOf(res[max(sessions, 0)].p50))}
		for _, n := range ns {
			row = append(row, report.Num(medianOf(res[i].rate[n]))+vsSessions(medianOf(res[i].rate[n]), medianOf(res[max(sessions, 0)].rate[n])))
		}
		rows = append(rows, row)
	}
	s.Summary.P("**%s** (%s; in parentheses: the ratio to %s in this run):", srv.name, srv.tool, targetSPSessions)
	s.Summary.Table(header, rows)
	var goals []string
	for _, v := range s.Verdicts {
		if strings.HasPrefix(v.Target, "streamproxy, "+mcpclient.StatelessProtocolVersion+": ") && strings.HasSuffix(v.Target, "("+srv.name+")") {
			result := "met"
			switch {
			case cfg.Smoke:
				result = "not judged (smoke)"
			case v.Measured == notMeasured:
				result = "not measured"
			case !v.Met:
				result = "**missed**"
			}
			goal := strings.TrimSuffix(strings.TrimPrefix(v.Target, "streamproxy, "+mcpclient.StatelessProtocolVersion+": "), " ("+srv.name+")")
			goals = append(goals, fmt.Sprintf("%s: %s (%s)", goal, result, v.Measured))
		}
	}
	s.Summary.List(goals...)
}

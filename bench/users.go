package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcp-oauth-gateway/gateway/bench/internal/load"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/mcpclient"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/proc"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/report"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/stats"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The users section: many 2026-07-28 users on one host. A stateless server shared by every user (--share) against
// a stateful one kept per user, the session start with and without --pool, and a shared server's calls/s against
// the peers that share one child (mcp-proxy) or start one per session (supergateway).

// Goals of the section.
const (
	usersMemoryGoal  = 2 << 30 // bytes: the whole process tree with the most users on a shared server
	usersP99Goal     = 50.0    // ms per call, likewise
	pooledStartGoal  = 5.0     // ms: session start p50 while the pool lasts
	targetSPShared   = "streamproxy --share"
	usersSharedLabel = "server-everything shared"
	usersPerUserName = "server-memory per user"
	edgeIdleConns    = 200 // Traefik's default maxIdleConnsPerHost: the keep-alive connections it keeps to a backend
)

// usersResult is what one run of simulated users measured.
type usersResult struct {
	users     int
	calls     int64   // answered
	errors    int64   // refused or failed, opening included
	firstErr  error   // the first error, for the notes
	p50, p99  float64 // ms per answered call
	p99All    float64 // ms, over every call counted, a failed one ranking after every answer: +Inf when it is one
	lateP99   float64 // ms: how late the load generator sent the calls, p99 (its own share of the cores)
	peakRSS   int64   // bytes, the proxy and every process under it
	processes int     // processes in the tree at the peak
	served    int     // users who got a process (per user) or an answer (shared)
}

func usersSection(e *env, cfg Config, s *Section) error {
	nm, err := testenv.FindNodeModules()
	if err != nil {
		return err
	}
	node, err := testenv.FindNode()
	if err != nil {
		return err
	}
	bin, err := testenv.Build("./streamproxy")
	if err != nil {
		return err
	}
	everything := mcpServer{name: "server-everything (Node)", argv: []string{node, filepath.Join(nm, "@modelcontextprotocol/server-everything/dist/index.js")},
		tool: "`echo`", call: func(ctx context.Context, sess mcpclient.Session, seq int64) error {
			return mcpclient.Echo(ctx, sess, "m"+strconv.FormatInt(seq, 10))
		}}
	memory := []string{node, filepath.Join(nm, "@modelcontextprotocol/server-memory/dist/index.js")}
	readGraph := func(ctx context.Context, sess mcpclient.Session, _ int64) error {
		_, err := mcpclient.CallTool(ctx, sess, "read_graph", map[string]any{})
		return err
	}
	shares := hasFlag(bin, "share")
	if !shares {
		s.note("the shared rows were not measured: this checkout's streamproxy has no --share")
	}
	dir, err := e.tempDir()
	if err != nil {
		return err
	}

	s.Doc.P("Simulated users: each is a distinct identity in `X-User-Id`, speaking protocol version %[1]s (no session; "+
		"its first request is server/discover, sent for every user before the clock starts, 16 at a time, then one "+
		"`tools/call` every %[2]s). Calls are spread so that the rate is "+
		"steady: N users make N calls per %[2]s, one every %[2]s/N, sent whether or not earlier calls have been "+
		"answered (open loop: a slow proxy shows in the latency, not in a lower rate), each timed from when it was due; "+
		"a user whose last call is not answered yet sends the next once it is (a person or an agent waits for a tool's "+
		"answer), so no user has two calls in flight, and the wait counts in the latency. "+
		"The load generator runs on the same cores as the proxy and its servers: *sent late* is how late it sent the "+
		"calls (p99), which the latencies include; a large figure there says the machine, not the proxy, fell behind. "+
		"It sends every user's calls over one pool of keep-alive connections that keeps at most %[7]d idle, as Traefik's "+
		"default does to a backend (in a deployment the users connect to the edge, which multiplexes them over its "+
		"pool to streamproxy; more connections open while more calls are in flight, and close after). streamproxy "+
		"writes its audit trail to a file (`-audit-log`), as a deployment sends it out of the process; the load "+
		"generator does not read it. "+
		"The shared rows run with streamproxy's defaults for `--share-max-calls` and `--share-max-wait`: a call that finds "+
		"that many calls in flight at its process waits that long at most for room, then is refused (`503`), and "+
		"counts as an error; "+
		"*p99 of all calls* ranks every error after every answer, so "+
		"more than 1%% of calls failing shows there as failed, never as fast. "+
		"%[2]s of warm-up, then the calls due in the next %[3]s count. RSS is the whole process tree (streamproxy and every server "+
		"process under it, VmRSS summed, so pages they share count once per process), sampled every 250 ms; the "+
		"table shows its peak. **Shared**: server-everything's `echo` with `--share %[4]d`, %[4]d processes for every "+
		"user. **Per user**: server-memory's `read_graph`, one process per user with its graph under "+
		"`MEMORY_FILE_PATH=.../{user}/memory.json`, at most `--max-sessions %[5]d` (the bench's bound; size it from "+
		"the RSS per process below) and `--idle-timeout %[6]s`: the users beyond the bound are refused (`503`, "+
		"`Retry-After`) and try again at their next call, which is what they see.",
		mcpclient.StatelessProtocolVersion, cfg.UserInterval, cfg.UsersRun, cfg.Share, cfg.UserProcesses, cfg.UserIdle, edgeIdleConns)

	type row struct {
		name string
		r    *usersResult
		err  error
	}
	var rows []row
	var biggestShared *usersResult
	for _, n := range cfg.Users {
		if shares {
			r, err := runUsers(e, cfg, s, "shared", n, everything.call, func(port int) []string {
				return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-share", strconv.Itoa(cfg.Share),
					"-audit-log", filepath.Join(dir, fmt.Sprintf("audit-shared-%d.log", n)), "--"}, everything.argv...)
			})
			rows = append(rows, row{fmt.Sprintf("%s, %d users", usersSharedLabel, n), r, err})
			if err == nil && n == slices.Max(cfg.Users) {
				biggestShared = r
			}
		}
		users := filepath.Join(dir, "users-"+strconv.Itoa(n))
		r, err := runUsers(e, cfg, s, "per user", n, readGraph, func(port int) []string {
			return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port),
				"-audit-log", filepath.Join(dir, fmt.Sprintf("audit-per-user-%d.log", n)),
				"-env", "MEMORY_FILE_PATH=" + users + "/{user}/memory.json",
				"-max-sessions", strconv.Itoa(cfg.UserProcesses), "-idle-timeout", cfg.UserIdle.String(), "--"}, memory...)
		})
		rows = append(rows, row{fmt.Sprintf("%s, %d users", usersPerUserName, n), r, err})
	}
	var table [][]string
	for _, r := range rows {
		if r.err != nil {
			table = append(table, []string{r.name, "failed: " + r.err.Error(), "", "", "", "", "", "", ""})
			continue
		}
		table = append(table, []string{r.name, fmt.Sprintf("%s (%d processes, %s each)", report.MiB(float64(r.r.peakRSS)), r.r.processes,
			report.MiB(float64(r.r.peakRSS)/float64(r.r.processes))),
			report.MsF(r.r.p50), report.MsF(r.r.p99), allCallsCell(r.r.p99All), strconv.FormatInt(r.r.calls, 10), errorsCell(r.r),
			fmt.Sprintf("%d of %d", r.r.served, r.r.users), report.MsF(r.r.lateP99)})
		key := "users." + numberKey(r.name)
		if r.r.p50 > 0 {
			s.set(key+".p50ms", r.r.p50)
			s.set(key+".p99ms", r.r.p99)
		}
		if !math.IsInf(r.r.p99All, 1) && r.r.p99All > 0 {
			s.set(key+".p99all_ms", r.r.p99All)
		}
		s.set(key+".rss_bytes", float64(r.r.peakRSS))
	}
	s.Doc.H3("Simulated users")
	s.Doc.Table([]string{"server, users", "peak RSS of the tree", "p50 per answered call", "p99 per answered call", "p99 of all calls",
		"calls answered", "errors", "users served", "sent late (p99)"}, table)

	starts, err := measurePoolStarts(e, cfg, s, bin, everything.argv)
	if err != nil {
		s.note("session start with and without the pool: %v", err)
	}
	var shared *streamResult
	peers := map[string]*streamResult{}
	if shares {
		shared, peers = measureSharedRate(e, cfg, s, bin, node, nm, everything)
	}
	judgeUsers(cfg, s, biggestShared, starts, shared, peers)
	return nil
}

// errorsCell says how many calls failed, and what the first one said.
func errorsCell(r *usersResult) string {
	if r.errors == 0 {
		return "0"
	}
	msg := ""
	if r.firstErr != nil {
		msg = r.firstErr.Error()
		if len(msg) > 80 {
			msg = msg[:80] + "..."
		}
	}
	return fmt.Sprintf("%s (first: %s)", report.Num(float64(r.errors)), msg)
}

// allCallsCell is the p99 of all calls, or says that it is a failed call.
func allCallsCell(ms float64) string {
	if math.IsInf(ms, 1) {
		return "failed (over 1% of calls)"
	}
	return report.MsF(ms)
}

// hasFlag reports whether a program's -help lists the flag.
func hasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "-help").CombinedOutput()
	return strings.Contains(string(out), "  -"+name+" ")
}

// runUsers starts streamproxy (argv for a free port) and runs n simulated users against it.
func runUsers(e *env, cfg Config, s *Section, kind string, n int, call func(context.Context, mcpclient.Session, int64) error,
	argv func(port int) []string) (*usersResult, error) {
	slog.Info("simulated users", "kind", kind, "users", n)
	l, err := launchHTTP(e, "streamproxy", statelessClient, argv)
	if err != nil {
		return nil, err
	}
	defer l.stop()
	s.Commands = append(s.Commands, fmt.Sprintf("# %s, %d users\n%s", kind, n, relPath(l.command)))
	c := statelessClient(l.url)
	// The users reach streamproxy through the edge, whose pool of keep-alive connections to it is Traefik's default.
	c.HTTP.Transport.(*http.Transport).MaxIdleConnsPerHost = edgeIdleConns
	return simulateUsers(context.Background(), cfg, c, n, call, l.pid)
}

// simUser is one simulated user: their identity and, once opened, their "session" (2026-07-28: request metadata).
type simUser struct {
	id string
	// mu is held for the user's call: a user sends their next call once the last is answered, as a person or an
	// agent waiting on a tool's answer does, so a user never has two calls in flight (a late call still counts
	// from when it was due).
	mu     sync.Mutex
	sess   mcpclient.Session
	served atomic.Bool
}

// simulateUsers sends n users' calls at a steady rate: one every cfg.UserInterval per user, spread evenly.
func simulateUsers(ctx context.Context, cfg Config, c *mcpclient.HTTPClient, n int, call func(context.Context, mcpclient.Session, int64) error,
	pid int) (*usersResult, error) {
	users := make([]*simUser, n)
	for i := range users {
		users[i] = &simUser{id: "bench-user-" + strconv.Itoa(i+1)}
	}
	res := &usersResult{users: n}
	var (
		mu       sync.Mutex
		lat      []time.Duration
		late     []time.Duration // how late each counted call was sent
		measured atomic.Bool     // the clock runs: calls sent from now on count
		wg       sync.WaitGroup
	)
	fail := func(counted bool, err error) {
		if !counted {
			return
		}
		mu.Lock()
		res.errors++
		if res.firstErr == nil {
			res.firstErr = err
		}
		mu.Unlock()
	}
	// one is a user's call, sent at due; counted says whether it was sent once the clock ran. Its latency runs
	// from when it was due, so a call that waited for the user's first request (opening) shows the wait.
	one := func(u *simUser, seq int64, due time.Time, counted bool) {
		defer wg.Done()
		if counted {
			sent := time.Since(due)
			mu.Lock()
			late = append(late, sent)
			mu.Unlock()
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.sess == nil {
			sess, err := c.OpenAs(ctx, u.id)
			if err != nil {
				fail(counted, err)
				return
			}
			u.sess = sess
		}
		err := call(ctx, u.sess, seq)
		d := time.Since(due)
		if err != nil {
			fail(counted, err)
			return
		}
		u.served.Store(true)
		if counted {
			mu.Lock()
			lat = append(lat, d)
			mu.Unlock()
		}
	}

	// The proxy answers the first user before the others start: a shared server's processes start with the proxy.
	first, err := c.OpenAs(ctx, users[0].id)
	if err != nil {
		return nil, fmt.Errorf("first request: %w", err)
	}
	if err := call(ctx, first, 0); err != nil {
		return nil, fmt.Errorf("first call: %w", err)
	}
	users[0].sess = first
	// Then every user's first request (2026-07-28: server/discover), a few at a time and not timed: users arrive over
	// time, not all in one interval. A user refused here (no process for them) tries again at each of their calls.
	if _, err := load.Run(ctx, load.Options{Workers: 16, Total: int64(n - 1)}, func(ctx context.Context, _ int, seq int64) error {
		u := users[seq+1]
		if sess, err := c.OpenAs(ctx, u.id); err == nil {
			u.sess = sess
		}
		return nil
	}); err != nil {
		return nil, err
	}

	// The tree's memory, sampled while the users call.
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if rss, procs, err := proc.TreeRSS(pid); err == nil && rss > res.peakRSS && measured.Load() {
				res.peakRSS, res.processes = rss, procs
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()

	gap := cfg.UserInterval / time.Duration(n)
	start := time.Now()
	end := start.Add(cfg.UserInterval + cfg.UsersRun)
	for k := int64(0); ; k++ {
		due := start.Add(time.Duration(k) * gap)
		if !due.Before(end) {
			break
		}
		if !measured.Load() && !due.Before(start.Add(cfg.UserInterval)) {
			measured.Store(true)
		}
		time.Sleep(time.Until(due))
		wg.Add(1)
		go one(users[k%int64(n)], k, due, measured.Load())
	}
	wg.Wait()
	close(stop)
	<-sampled
	for _, u := range users {
		if u.served.Load() {
			res.served++
		}
	}
	res.calls = int64(len(lat))
	if len(lat) > 0 {
		l := stats.Summarize(lat)
		res.p50, res.p99 = stats.Ms(l.P50), stats.Ms(l.P99)
	}
	res.p99All = math.Inf(1)
	if rank := int(math.Ceil(0.99*float64(len(lat)+int(res.errors)))) - 1; rank < len(lat) {
		res.p99All = stats.Ms(lat[max(rank, 0)]) // sorted by Summarize; the errors rank after every answer
	}
	res.lateP99 = stats.Ms(stats.Summarize(late).P99)
	if res.peakRSS == 0 {
		return res, errors.New("the process tree's memory could not be read")
	}
	return res, nil
}

// poolStarts are session starts through streamproxy, in ms: without a pool, with one while it lasts, and once it
// is drained by sessions opened faster than it refills.
type poolStarts struct {
	without, pooled, drained []float64
}

// measurePoolStarts opens sessions one after another on server-everything, without --pool and with it.
func measurePoolStarts(e *env, cfg Config, s *Section, bin string, argv []string) (*poolStarts, error) {
	ctx := context.Background()
	res := &poolStarts{}
	open := func(l *launched, n int, into *[]float64) ([]mcpclient.Session, error) {
		var out []mcpclient.Session
		for range n {
			sess, err := l.open(ctx)
			if err != nil {
				return out, err
			}
			*into = append(*into, stats.Ms(mcpclient.InitTime(sess)))
			out = append(out, sess)
		}
		return out, nil
	}
	proxy := func(pool int, metricsPort int) func(int) []string {
		return func(port int) []string {
			return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-max-per-user", "0",
				"-pool", strconv.Itoa(pool), "-metrics-listen", "127.0.0.1:" + strconv.Itoa(metricsPort), "--"}, argv...)
		}
	}
	metricsPort, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	l, err := launchHTTP(e, "streamproxy", sessionClient, proxy(0, metricsPort))
	if err != nil {
		return nil, err
	}
	ss, err := open(l, cfg.StartCount, &res.without)
	closeAll(ss)
	l.stop()
	if err != nil {
		return nil, err
	}

	if metricsPort, err = freeport.Pick(); err != nil {
		return nil, err
	}
	l, err = launchHTTP(e, "streamproxy", sessionClient, proxy(cfg.Pool, metricsPort))
	if err != nil {
		return nil, err
	}
	defer l.stop()
	s.Commands = append(s.Commands, "# session start with the pool\n"+relPath(l.command))
	if err := awaitPool(testenv.URL(metricsPort, "/metrics"), cfg.Pool); err != nil {
		return nil, err
	}
	// As many sessions as the pool holds, then as many again at once: the second ones find it refilling.
	held, err := open(l, cfg.Pool, &res.pooled)
	defer closeAll(held)
	if err != nil {
		return nil, err
	}
	more, err := open(l, cfg.Pool, &res.drained)
	defer closeAll(more)
	return res, err
}

// awaitPool waits until streamproxy's pool holds n processes ready.
func awaitPool(metricsURL string, n int) error {
	want := "streamproxy_pool_ready " + strconv.Itoa(n) + "\n"
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(metricsURL); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the pool never held %d processes", n)
}

// measureSharedRate measures calls/s at the largest session count on a shared streamproxy and on the peers.
func measureSharedRate(e *env, cfg Config, s *Section, bin, node, nm string, srv mcpServer) (*streamResult, map[string]*streamResult) {
	n := slices.Max(cfg.Sessions)
	targets := []streamTarget{
		{targetSPShared, func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "streamproxy", sessionClient, func(port int) []string {
				return append([]string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-max-per-user", "0",
					"-share", strconv.Itoa(cfg.Share), "--"}, srv.argv...)
			})
		}},
		{targetMCPProxy, func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "mcp-proxy", sessionClient, func(port int) []string {
				return append([]string{node, filepath.Join(nm, "mcp-proxy/dist/bin/mcp-proxy.mjs"), "--port", strconv.Itoa(port),
					"--host", "127.0.0.1", "--server", "stream", "--"}, srv.argv...)
			})
		}},
		{targetSGStateful, func(e *env, srv mcpServer) (*launched, error) {
			return launchHTTP(e, "supergateway", sessionClient, func(port int) []string {
				return []string{node, filepath.Join(nm, "supergateway/dist/index.js"), "--stdio", shellJoin(srv.argv),
					"--outputTransport", "streamableHttp", "--stateful", "--port", strconv.Itoa(port), "--logLevel", "none"}
			})
		}},
	}
	var shared *streamResult
	peers := map[string]*streamResult{}
	var rows [][]string
	for _, t := range targets {
		res := &streamResult{rate: map[int][]float64{}, ratep99: map[int][]float64{}}
		res.err = func() error {
			l, err := t.launch(e, srv)
			if err != nil {
				return err
			}
			defer l.stop()
			s.Commands = append(s.Commands, "# calls/s at "+strconv.Itoa(n)+" sessions: "+t.name+"\n"+relPath(l.command))
			openN := func(k int) ([]mcpclient.Session, error) {
				out := make([]mcpclient.Session, 0, k)
				for range k {
					sess, err := l.open(context.Background())
					if err != nil {
						return out, err
					}
					out = append(out, sess)
				}
				return out, nil
			}
			return measureRate(context.Background(), cfg, srv, n, openN, closeAll, res)
		}()
		if res.err != nil {
			s.note("calls/s at %d sessions, %s: %v", n, t.name, res.err)
			rows = append(rows, []string{t.name, "failed: " + res.err.Error(), ""})
			continue
		}
		rs := stats.Of(res.rate[n])
		rows = append(rows, []string{t.name, fmt.Sprintf("%s ±%s", report.Num(rs.Median), report.Pct(rs.RelSpread())), report.MsF(medianOf(res.ratep99[n]))})
		s.set("users.rate."+numberKey(t.name), rs.Median)
		if t.name == targetSPShared {
			shared = res
		} else {
			peers[t.name] = res
		}
	}
	s.Doc.H3(fmt.Sprintf("Calls/s at %d sessions on one shared server", n))
	s.Doc.P("%s's `echo`, %d sessions (%s, each a user of its own) calling back to back, %d runs of %s: streamproxy with "+
		"`--share %d`, mcp-proxy (one child for every session) and supergateway (one child per session).",
		srv.name, n, mcpclient.ProtocolVersion, cfg.Reps, cfg.SessionRun, cfg.Share)
	s.Doc.Table([]string{"target", "calls/s (spread)", "p99 per call"}, rows)
	return shared, peers
}

// judgeUsers writes the pool's table and the section's verdicts.
func judgeUsers(cfg Config, s *Section, biggest *usersResult, starts *poolStarts, shared *streamResult, peers map[string]*streamResult) {
	n := slices.Max(cfg.Users)
	target := fmt.Sprintf("%d users on a shared server: the tree within %s and p99 under %.0f ms, no errors", n, report.MiB(usersMemoryGoal), usersP99Goal)
	if biggest == nil {
		s.verdict(target, notMeasured, false, "the shared run did not complete (see notes)")
	} else {
		met := biggest.peakRSS <= usersMemoryGoal && biggest.p99All < usersP99Goal && biggest.errors == 0
		var why []string
		if biggest.peakRSS > usersMemoryGoal {
			why = append(why, "the tree holds more memory than the goal")
		}
		if biggest.p99All >= usersP99Goal {
			why = append(why, "the p99 of all calls is above the goal")
		}
		if biggest.errors > 0 {
			why = append(why, "calls failed (the errors column says why; `503` from --share-max-calls: the processes were that busy)")
		}
		if biggest.lateP99 >= usersP99Goal {
			why = append(why, fmt.Sprintf("the load generator, on the same cores, sent its calls up to %s late (p99), which the latencies include", report.MsF(biggest.lateP99)))
		}
		s.verdict(target, fmt.Sprintf("%s, p99 of all calls %s, %d errors", report.MiB(float64(biggest.peakRSS)), allCallsCell(biggest.p99All), biggest.errors),
			met, strings.Join(why, "; "))
	}

	rateTarget := fmt.Sprintf("shared calls/s at %d sessions at least mcp-proxy's", slices.Max(cfg.Sessions))
	if mp := peers[targetMCPProxy]; shared == nil || mp == nil {
		s.verdict(rateTarget, notMeasured, false, "streamproxy --share or mcp-proxy did not run (see notes)")
	} else {
		k := slices.Max(cfg.Sessions)
		sp, peer := medianOf(shared.rate[k]), medianOf(mp.rate[k])
		s.verdict(rateTarget, fmt.Sprintf("%s (%s vs %s calls/s)", report.Ratio(sp/peer), report.Num(sp), report.Num(peer)), sp >= peer,
			whyIf(sp < peer, fmt.Sprintf("spreads ±%s and ±%s", report.Pct(stats.Of(shared.rate[k]).RelSpread()), report.Pct(stats.Of(mp.rate[k]).RelSpread()))))
	}

	startTarget := fmt.Sprintf("session start p50 at most %.0f ms while the pool lasts", pooledStartGoal)
	if starts == nil || len(starts.pooled) == 0 {
		s.verdict(startTarget, notMeasured, false, "the pool's run did not complete (see notes)")
		return
	}
	row := func(name string, v []float64) []string {
		st := stats.Of(v)
		return []string{name, report.MsF(st.Median), report.MsF(st.Min), report.MsF(st.Max), strconv.Itoa(len(v))}
	}
	s.Doc.H3("Session start with and without the pool")
	s.Doc.P("server-everything, %s sessions opened one after another (initialize request to its result): without "+
		"`--pool`, then with `--pool %d` once it holds %d processes: %d sessions while it lasts, then %d more at once, "+
		"faster than it refills (one process at a time, each as long as a start without the pool).",
		mcpclient.ProtocolVersion, cfg.Pool, cfg.Pool, cfg.Pool, cfg.Pool)
	rows := [][]string{row("without --pool", starts.without), row(fmt.Sprintf("--pool %d, while it lasts", cfg.Pool), starts.pooled)}
	if len(starts.drained) > 0 {
		rows = append(rows, row(fmt.Sprintf("--pool %d, drained", cfg.Pool), starts.drained))
	}
	s.Doc.Table([]string{"streamproxy", "p50", "min", "max", "sessions"}, rows)
	p50 := stats.Of(starts.pooled).Median
	s.set("users.start.pooled_ms", p50)
	s.set("users.start.without_ms", stats.Of(starts.without).Median)
	s.verdict(startTarget, fmt.Sprintf("%s (without the pool %s)", report.MsF(p50), report.MsF(stats.Of(starts.without).Median)),
		p50 <= pooledStartGoal, whyIf(p50 > pooledStartGoal, "a pooled start is the server's first accepted initialize (warmed, docs/streamproxy.md#the-pool) and the proxy's hop; on a busy machine both wait for a core"))
}

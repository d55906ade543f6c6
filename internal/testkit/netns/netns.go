// Package netns makes network namespaces joined to this host by a veth pair, for tests that need hosts of their own
// (the Helm chart's pods, in e2e/kubernetes) or a link they can cut (the fault tests, e2e/faults). It needs root and
// iproute2.
package netns

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Network is a namespace and the link to it. The host side's address (HostIP) reaches every address of the
// namespace, and they reach it.
type Network struct {
	Name   string // as `ip netns` knows it: <label>-<6 hex digits>
	HostIP string // this host's end, 10.x.y.1
	prefix string // 10.x.y.
	host   string // the host's end of the veth pair
	peer   string // the namespace's end
}

// New makes a namespace with the address IP(2), removed with everything in it when the test ends. label (at most 5
// characters) starts the names of the namespace and of its interfaces, so a leftover says which test made it.
func New(t testing.TB, label string) *Network {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (network namespaces and veth)", "run the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip (iproute2)", "apt-get install iproute2")
	}
	used, _ := exec.Command("ip", "-4", "-o", "addr").Output()
	var n *Network
	for range 50 {
		p := fmt.Sprintf("10.%d.%d.", 200+rand.IntN(50), rand.IntN(256))
		if !strings.Contains(string(used), " "+p) {
			id := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
			n = &Network{Name: label + "-" + id, HostIP: p + "1", prefix: p, host: label + id + "h", peer: label + id + "p"}
			break
		}
	}
	if n == nil {
		t.Fatal("no free 10.x.y.0/24 for the test network")
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", n.Name).Run() // takes the veth pair with it
		_ = os.RemoveAll(filepath.Join("/etc/netns", n.Name))
	})
	for _, args := range [][]string{
		{"netns", "add", n.Name},
		{"link", "add", n.host, "type", "veth", "peer", "name", n.peer},
		{"link", "set", n.peer, "netns", n.Name},
		{"addr", "add", n.HostIP + "/24", "dev", n.host},
		{"link", "set", n.host, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
		{"-n", n.Name, "link", "set", n.peer, "up"},
		{"-n", n.Name, "addr", "add", n.IP(2) + "/24", "dev", n.peer},
	} {
		if err := ip(args...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// IP is the namespace's address ending in last.
func (n *Network) IP(last int) string { return fmt.Sprintf("%s%d", n.prefix, last) }

// AddAddr gives the namespace another address (a pod's) and returns it.
func (n *Network) AddAddr(t testing.TB, last int) string {
	t.Helper()
	addr := n.IP(last)
	if err := ip("-n", n.Name, "addr", "add", addr+"/24", "dev", n.peer); err != nil {
		t.Fatal(err)
	}
	return addr
}

// SetHosts writes the namespace's /etc/hosts (ip netns exec mounts /etc/netns/<name>/hosts over it): names the
// processes in it look up, by address.
func (n *Network) SetHosts(t testing.TB, names map[string][]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for addr, hosts := range names {
		fmt.Fprintf(&b, "%s %s\n", addr, strings.Join(hosts, " "))
	}
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Command runs a program inside the namespace.
func (n *Network) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Cut takes the link down at the namespace's end: nothing passes between the host and the namespace until Heal.
// Processes on either side keep running.
func (n *Network) Cut() error { return ip("-n", n.Name, "link", "set", n.peer, "down") }

// Heal brings the link up again.
func (n *Network) Heal() error { return ip("-n", n.Name, "link", "set", n.peer, "up") }

// Listen opens a TCP listener inside the namespace, from this process: the socket stays in the namespace, so only
// what crosses the link (or runs in the namespace) reaches it.
func (n *Network) Listen(addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	// A thread of its own enters the namespace. If it cannot go back it stays locked, and Go ends it with the
	// goroutine instead of reusing it.
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", n.Name))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("enter %s: %w", n.Name, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if berr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); berr != nil {
			if ln != nil {
				ln.Close()
			}
			done <- result{nil, fmt.Errorf("leave %s: %w", n.Name, berr)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{ln, err}
	}()
	r := <-done
	return r.ln, r.err
}

// Relay listens at the namespace's address IP(2) on to's port and passes every connection on to to (host:port,
// reached from this host): the way to a service of this host across the link, cut when the link is. It returns the
// relay's address and stops when the test ends.
func (n *Network) Relay(t testing.TB, to string) (string, error) {
	_, port, err := net.SplitHostPort(to)
	if err != nil {
		return "", err
	}
	ln, err := n.Listen(net.JoinHostPort(n.IP(2), port))
	if err != nil {
		return "", err
	}
	stopped := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-stopped })
	go func() {
		defer close(stopped)
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue
			}
			go pipe(c, to) // ends with either side
		}
	}()
	return ln.Addr().String(), nil
}

// pipe copies between c and a new connection to to, both ways, until either side ends.
func pipe(c net.Conn, to string) {
	defer c.Close()
	up, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

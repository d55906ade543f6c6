package kubernetes

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// network is a network namespace joined to this host by a veth pair: the test's stand-in for a cluster's pod network.
// The API server refuses loopback addresses in EndpointSlices, so pods need addresses of their own; each "pod" here
// is a process in the namespace bound to one of them. The host side's address (HostIP) reaches them all, and they
// reach it.
type network struct {
	Name   string
	HostIP string // this host's end, 10.x.y.1
	prefix string // 10.x.y.
	peer   string // the namespace's end of the veth pair
}

// newNetwork makes the namespace, removed with everything in it when the test ends. It needs root.
func newNetwork(t *testing.T) *network {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "root (network namespaces and veth)", "run the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "ip (iproute2)", "apt-get install iproute2")
	}
	used, _ := exec.Command("ip", "-4", "-o", "addr").Output()
	var n *network
	for range 50 {
		p := fmt.Sprintf("10.%d.%d.", 200+rand.IntN(50), rand.IntN(256))
		if !strings.Contains(string(used), " "+p) {
			id := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
			n = &network{Name: "gwk8s-" + id, HostIP: p + "1", prefix: p}
			break
		}
	}
	if n == nil {
		t.Fatal("no free 10.x.y.0/24 for the test network")
	}
	host, peer := "gwk8s"+n.Name[6:]+"h", "gwk8s"+n.Name[6:]+"p"
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", n.Name).Run() // takes the veth pair with it
		_ = os.RemoveAll(filepath.Join("/etc/netns", n.Name))
	})
	for _, args := range [][]string{
		{"netns", "add", n.Name},
		{"link", "add", host, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", n.Name},
		{"addr", "add", n.HostIP + "/24", "dev", host},
		{"link", "set", host, "up"},
		{"-n", n.Name, "link", "set", "lo", "up"},
		{"-n", n.Name, "link", "set", peer, "up"},
		{"-n", n.Name, "addr", "add", n.IP(2) + "/24", "dev", peer},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	n.peer = peer
	return n
}

// IP is the namespace's address ending in last.
func (n *network) IP(last int) string { return fmt.Sprintf("%s%d", n.prefix, last) }

// AddPod gives the namespace another address, a pod's, and returns it.
func (n *network) AddPod(t *testing.T, last int) string {
	t.Helper()
	ip := n.IP(last)
	if out, err := exec.Command("ip", "-n", n.Name, "addr", "add", ip+"/24", "dev", n.peer).CombinedOutput(); err != nil {
		t.Fatalf("add %s: %v\n%s", ip, err, out)
	}
	return ip
}

// SetHosts writes the namespace's /etc/hosts (ip netns exec mounts /etc/netns/<name>/hosts over it): the cluster DNS
// names of Services and pods, which the processes look up.
func (n *network) SetHosts(t *testing.T, names map[string][]string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for ip, hosts := range names {
		fmt.Fprintf(&b, "%s %s\n", ip, strings.Join(hosts, " "))
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
func (n *network) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

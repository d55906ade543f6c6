// Package kubernetes checks the Helm chart (deploy/helm/mcp-oauth-gateway) at the gate a cluster keeps: its objects
// are applied to a real kube-apiserver on a real etcd (built by `go tool task deps` into .cache/bin), and Traefik's own
// Kubernetes CRD provider routes requests by them. A module of its own, so Helm, client-go and etcd stay out of the
// gateway's go.mod.
package kubernetes

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// cluster is a kube-apiserver on etcd: no scheduler, no kubelet, no controllers. Objects are stored and validated as
// in any cluster; nothing runs them.
type cluster struct {
	URL    string
	Token  string // a member of system:masters
	CAFile string // the serving certificate, self-signed
	Config *rest.Config
	warn   *warnings
}

// bin is a program `go tool task deps` builds into .cache/bin.
func bin(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(testenv.RepoRoot(t), ".cache", "bin", name)
	if _, err := os.Stat(p); err != nil {
		testenv.Missing(t, name+" at "+p, "run `go tool task deps` (tools/"+name+")")
	}
	return p
}

// startCluster starts etcd and the API server, serving on bindIP (an address other network namespaces can reach,
// or 127.0.0.1), and returns once the API server is ready.
func startCluster(t *testing.T, bindIP string) *cluster {
	t.Helper()
	etcdBin, apiBin := bin(t, "etcd"), bin(t, "kube-apiserver")
	dir := t.TempDir()
	client, peer := testenv.FreePort(t), testenv.FreePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	etcd := testenv.Start(t, "etcd", exec.Command(etcdBin, "--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "test="+peerURL,
		"--log-level", "warn"))
	if err := testenv.AwaitTCP(fmt.Sprintf("127.0.0.1:%d", client), 30*time.Second); err != nil {
		t.Fatalf("etcd: %v\n%s", err, etcd.Output())
	}

	c := &cluster{Token: rand.Text(), CAFile: filepath.Join(dir, "serving.crt"), warn: &warnings{}}
	keyFile := filepath.Join(dir, "serving.key")
	writeServingCert(t, c.CAFile, keyFile, bindIP)
	saKey := filepath.Join(dir, "sa.key")
	writeRSAKey(t, saKey)
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.Token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	c.URL = "https://" + net.JoinHostPort(bindIP, strconv.Itoa(port))
	api := testenv.Start(t, "kube-apiserver", exec.Command(apiBin,
		"--etcd-servers", etcdURL, "--bind-address", bindIP, "--secure-port", strconv.Itoa(port),
		// No endpoint reconciler: the API server would otherwise publish itself in the kubernetes Service, and it
		// refuses its own loopback address there.
		"--advertise-address", bindIP, "--endpoint-reconciler-type", "none",
		"--tls-cert-file", c.CAFile, "--tls-private-key-file", keyFile,
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey, "--service-cluster-ip-range", "10.96.0.0/16",
		"--enable-priority-and-fairness=false", "-v", "0"))
	c.Config = &rest.Config{Host: c.URL, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		WarningHandler: c.warn, QPS: 200, Burst: 400}
	tr, err := rest.TransportFor(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := hc.Get(c.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-apiserver not ready within 2 minutes (%v)\n%s", err, api.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

// writeServingCert writes a self-signed certificate for the API server's address, which clients trust as their CA.
func writeServingCert(t *testing.T, certFile, keyFile, ip string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.ParseIP(ip), net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kb)
}

// writeRSAKey writes the key service account tokens would be signed with (the API server will not start without one).
func writeRSAKey(t *testing.T, file string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, file, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// warnings records the API server's warnings (PodSecurity's "would violate" among them).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

// take returns the warnings so far and forgets them.
func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.list
	w.list = nil
	return l
}

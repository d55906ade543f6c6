package backend_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/backend"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 (also its own CA) and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test redis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "redis.crt"), filepath.Join(dir, "redis.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return certFile, keyFile
}

// A rediss:// URL with a password reaches a TLS-only, password-protected Redis; the CA file makes its certificate
// trusted, and every way of getting it wrong is an error rather than a silent fallback.
func TestRedisTLSAndPassword(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server", "apt-get install redis-server")
	}
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	port := testenv.FreePort(t)
	testenv.Start(t, "redis-tls", exec.Command(bin, "--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", cert, "--tls-key-file", key, "--tls-auth-clients", "no", "--requirepass", "s3cret",
		"--dir", dir, "--save", "", "--appendonly", "no"))
	testenv.WaitTCP(t, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)

	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	s, err := backend.Open(ctx, backend.Config{RedisURL: fmt.Sprintf("rediss://:s3cret@127.0.0.1:%d/0", port),
		RedisCAFile: cert, Logger: quiet})
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.CreateClient(ctx, &store.Client{ID: "tls", IssuedAt: time.Now()}))
	got, err := s.GetClient(ctx, "tls")
	require.NoError(t, err)
	assert.Equal(t, "tls", got.ID)

	// The same through addresses and explicit settings.
	s2, err := backend.Open(ctx, backend.Config{RedisAddrs: []string{"127.0.0.1:" + strconv.Itoa(port)}, RedisTLS: true,
		RedisPassword: "s3cret", RedisCAFile: cert, Logger: quiet})
	require.NoError(t, err)
	defer s2.Close()
	_, err = s2.GetClient(ctx, "tls")
	require.NoError(t, err)

	for name, c := range map[string]backend.Config{
		"wrong password": {RedisURL: fmt.Sprintf("rediss://:wrong@127.0.0.1:%d/0", port), RedisCAFile: cert},
		"no password":    {RedisURL: fmt.Sprintf("rediss://127.0.0.1:%d/0", port), RedisCAFile: cert},
		"untrusted cert": {RedisURL: fmt.Sprintf("rediss://:s3cret@127.0.0.1:%d/0", port)},
		"plain to TLS":   {RedisURL: fmt.Sprintf("redis://:s3cret@127.0.0.1:%d/0", port), RedisCAFile: cert},
	} {
		c.Logger = quiet
		c.DataFile = filepath.Join(dir, "must-not-be-used.jsonl")
		_, err := backend.Open(ctx, c)
		assert.Error(t, err, name)
		assert.NoFileExists(t, c.DataFile, name)
	}
	_, err = backend.Open(ctx, backend.Config{RedisURL: "rediss://127.0.0.1:1/0", RedisCAFile: filepath.Join(dir, "nope.pem")})
	assert.ErrorContains(t, err, "CA file")
}

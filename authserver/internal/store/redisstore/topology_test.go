package redisstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/redisstore"
	"github.com/mcp-oauth-gateway/gateway/authserver/internal/store/storetest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

func redisServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server", "apt-get install redis-server")
	}
	return bin
}

// clusterPort finds a port whose cluster bus port (+10000) is also usable.
func clusterPort(t *testing.T) int {
	for range 50 {
		if p := testenv.FreePort(t); p+10000 < 65536 {
			return p
		}
	}
	t.Fatal("no free port for a cluster node")
	return 0
}

// The contract holds under Redis Cluster (a one-node cluster owning every slot): the scripts' keys share the
// prefix's hash tag, and Dump scans through the cluster client.
func TestContractCluster(t *testing.T) {
	bin := redisServer(t)
	dir := t.TempDir()
	port := clusterPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	testenv.Start(t, "redis-cluster-node", exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--dir", dir, "--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--save", "", "--appendonly", "no", "--loglevel", "warning"))
	testenv.WaitTCP(t, addr, 10*time.Second)

	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	require.NoError(t, admin.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", 0, 16383).Err())
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := admin.ClusterInfo(ctx).Result()
		require.NoError(t, err)
		if strings.Contains(info, "cluster_state:ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster never became ready:\n%s", info)
		}
		time.Sleep(100 * time.Millisecond)
	}

	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := redisstore.Open(ctx, redisstore.Options{Addrs: []string{addr}, Cluster: true,
			Prefix: "t-" + rand.Text() + ":", Logger: quiet()})
		require.NoError(t, err)
		return s
	})
}

// The contract holds through Sentinel: the store finds the master by asking a sentinel.
func TestContractSentinel(t *testing.T) {
	bin := redisServer(t)
	master := testenv.StartRedis(t)
	_, masterPort, _ := strings.Cut(master.Addr, ":")
	port := testenv.FreePort(t)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(
		"port %d\nbind 127.0.0.1\nsentinel monitor gwmaster 127.0.0.1 %s 1\nsentinel down-after-milliseconds gwmaster 60000\n",
		port, masterPort)), 0o600))
	testenv.Start(t, "redis-sentinel", exec.Command(bin, conf, "--sentinel"))
	testenv.WaitTCP(t, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second)

	url := fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=gwmaster", port)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := redisstore.Open(context.Background(), redisstore.Options{URL: url, Prefix: "t-" + rand.Text() + ":", Logger: quiet()})
		require.NoError(t, err)
		return s
	})
}

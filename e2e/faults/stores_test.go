package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/netns"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// The embedded store, its journal on a small filesystem of its own so that the disk can be filled.
func TestEmbeddedStore(t *testing.T) {
	dir := testenv.SmallDisk(t, 16<<20)
	net := netns.New(t, "gwflt")
	s := start(t, setup{store: "embedded", dataFile: filepath.Join(dir, "authserver.jsonl"), net: net})
	s.crashes()
	s.crashDuringBackup()
	s.crashDuringRotation()
	s.restartTraefik()
	s.freezeAuthserver()
	s.partition(net)
	s.fullDisk(dir)
	s.stateLoads()
}

// Redis with its append-only file, as compose.yaml runs it.
func TestRedisStore(t *testing.T) {
	redis := testenv.StartRedis(t, "--appendfsync", "always")
	s := start(t, setup{store: "Redis", redisURL: redis.URL, memory: true, replicas: 2})
	s.redis = redis
	s.crashes()
	s.killUserServers()
	s.crashReplica()
	s.fault(fmt.Sprintf("Redis kill -9 and restart (appendonly yes, appendfsync always), %d times", times()), func() string {
		for range times() {
			randomly(200*time.Millisecond, 3*time.Second)
			require.NoError(t, redis.Crash())
		}
		return ""
	})
	s.stateLoads()
}

// Redis under a Sentinel: the master killed, the replica promoted, the authserver following it by itself.
func TestRedisSentinel(t *testing.T) {
	sentinel := testenv.StartSentinel(t)
	s := start(t, setup{store: "Redis (Sentinel)", redisURL: sentinel.URL})
	s.fault("Redis master kill -9; the Sentinel promotes its replica", func() string {
		sentinel.Master.Kill()
		began := time.Now()
		ask := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr})
		defer ask.Close()
		for {
			addr, err := ask.GetMasterAddrByName(context.Background(), sentinel.Name).Result()
			if err == nil && addr[0]+":"+addr[1] == sentinel.Replica.Addr {
				break
			}
			if time.Since(began) > time.Minute {
				t.Fatalf("the Sentinel did not promote the replica within a minute (master: %v, %v)", addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(began)
		// The old master comes back; the Sentinel makes it a replica of the new one.
		sentinel.Master.Restart(t)
		return fmt.Sprintf("the Sentinel promoted the replica %s after the kill", took.Round(100*time.Millisecond))
	})
	s.redis = sentinel.Replica // the master now
	s.stateLoads()
}

// fullDisk fills the journal's filesystem: writes fail with a clear error and change nothing, reads and the edge
// carry on, a server killed meanwhile starts again on the full disk, and once space returns the store works again
// without a restart.
func (s *suite) fullDisk(dir string) {
	s.fault("the embedded store's disk full for 10 s (the authserver killed and restarted on it), then space freed", func() string {
		filler := filepath.Join(dir, "filler")
		f, err := os.Create(filler)
		require.NoError(s.t, err)
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				require.ErrorContains(s.t, err, "no space left on device")
				break
			}
		}
		require.NoError(s.t, f.Close())
		// What a client is told while the disk is full. A few small writes may still fit in the journal's last
		// page; they are acknowledged, and verify finds them afterwards.
		full := time.Now()
		var regErr error
		for regErr == nil && time.Since(full) < 10*time.Second {
			_, regErr = s.load.register(context.Background(),
				`{"client_name":"disk full","redirect_uris":["http://127.0.0.1:39997/cb"],"token_endpoint_auth_method":"none"}`)
			time.Sleep(100 * time.Millisecond)
		}
		if failed := s.crashAuthserver(); failed > 0 {
			s.t.Errorf("the authserver's restart on a full disk failed %d times", failed)
		}
		time.Sleep(10*time.Second - time.Since(full))
		require.NoError(s.t, os.Remove(filler))
		if regErr == nil {
			s.t.Errorf("every registration was acknowledged for 10 s on a full disk")
			return ""
		}
		if !strings.Contains(regErr.Error(), "HTTP 503: temporarily_unavailable") {
			s.t.Errorf("a registration on a full disk got %v, want 503 temporarily_unavailable", regErr)
		}
		return "a registration on the full disk was answered " + strings.TrimPrefix(regErr.Error(), "register: ")
	})
}

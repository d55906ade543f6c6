package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync/atomic"
)

// requestIDHeader carries a request id from the edge to the backends, so their log lines about one request can be
// joined. A client's own id is kept; a request without one gets one here.
const requestIDHeader = "X-Request-Id"

// requestIDs is process-wide, like the key registry: a random prefix per Traefik process and a counter, much cheaper
// under Yaegi than random bytes per request, and still unique across restarts and replicas.
var requestIDs = newIDSource()

type idSource struct {
	prefix string
	n      uint64
}

func newIDSource() *idSource {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return &idSource{prefix: hex.EncodeToString(b) + "-"}
}

func (s *idSource) next() string {
	return s.prefix + strconv.FormatUint(atomic.AddUint64(&s.n, 1), 36)
}

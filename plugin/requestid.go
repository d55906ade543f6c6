package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync/atomic"
)

// requestIDHeader carries a request id. Requests the plugin lets through keep the client's (the backend makes one
// when there is none, so the hot path pays nothing here); the plugin's own refusals carry the client's id or a new
// one, so a client can quote it.
const requestIDHeader = "X-Request-Id"

func requestID(r *http.Request) string {
	if id := r.Header.Get(requestIDHeader); id != "" && len(id) <= 128 {
		return id
	}
	return requestIDs.next()
}

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

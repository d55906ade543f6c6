package wrk

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sample = `Running 1s test @ http://127.0.0.1:18999/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.59ms    3.47ms  25.87ms   89.85%
    Req/Sec   638.70    225.37     0.98k    80.00%
  Latency Distribution
     50%  812.00us
     75%    3.95ms
     90%    7.14ms
     99%    1.20s
  638 requests in 1.00s, 2.68MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    635.05
Transfer/sec:      2.67MB
`

func TestParse(t *testing.T) {
	r, err := Parse(sample)
	require.NoError(t, err)
	assert.InDelta(t, 635.05, r.RequestsPerSec, 1e-9)
	assert.Equal(t, 812*time.Microsecond, r.P50)
	assert.Equal(t, 1200*time.Millisecond, r.P99)
	assert.EqualValues(t, 638, r.Requests)
	assert.EqualValues(t, 3, r.Non2xx)
}

func TestParseRejectsOutputWithoutLatency(t *testing.T) {
	_, err := Parse("Requests/sec: 10\n")
	require.Error(t, err)
	_, err = Parse("unable to connect to 127.0.0.1:1 Connection refused\n")
	require.Error(t, err)
}

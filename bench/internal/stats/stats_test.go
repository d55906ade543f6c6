package stats

import (
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSummarize(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	l := Summarize(s)
	assert.Equal(t, 100, l.N)
	assert.Equal(t, 50*time.Millisecond, l.P50)
	assert.Equal(t, 99*time.Millisecond, l.P99)
	assert.Equal(t, 100*time.Millisecond, l.Max)
	assert.Equal(t, Latency{}, Summarize(nil))
}

func TestSpread(t *testing.T) {
	sp := Of([]float64{10, 30, 20})
	assert.Equal(t, 20.0, sp.Median)
	assert.InDelta(t, 1.0, sp.RelSpread(), 1e-9)
	assert.Equal(t, 15.0, Of([]float64{10, 20}).Median)
	assert.True(t, math.IsNaN(Of(nil).Median))
}

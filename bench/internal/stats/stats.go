// Package stats summarises latency samples and repeated measurements: percentiles of one run, and the median and
// spread of several runs (absolute numbers drift on a shared machine, so the suite reports medians and ratios).
package stats

import (
	"math"
	"slices"
	"time"
)

// Latency is the summary of one run's per-operation latencies.
type Latency struct {
	N   int
	P50 time.Duration
	P99 time.Duration
	Max time.Duration
}

// Summarize sorts samples in place and returns their percentiles.
func Summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)
	return Latency{
		N:   len(samples),
		P50: Percentile(samples, 50),
		P99: Percentile(samples, 99),
		Max: samples[len(samples)-1],
	}
}

// Percentile returns the p-th percentile (nearest rank) of sorted samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

// Spread is the median of repeated measurements of one quantity with its range.
type Spread struct {
	Median float64
	Min    float64
	Max    float64
	N      int
}

// Of returns the median, minimum and maximum of values (which it does not modify).
func Of(values []float64) Spread {
	if len(values) == 0 {
		return Spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	v := slices.Clone(values)
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return Spread{Median: m, Min: v[0], Max: v[len(v)-1], N: len(v)}
}

// RelSpread is (max-min)/median, the relative spread of repeated runs; NaN when undefined.
func (s Spread) RelSpread() float64 {
	if s.N == 0 || s.Median == 0 {
		return math.NaN()
	}
	return (s.Max - s.Min) / s.Median
}

// Ms converts a duration to float milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

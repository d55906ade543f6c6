// Package load is a closed-loop load generator: a fixed number of workers each run an operation back to back until
// a duration passes or a fixed number of operations is done, recording every operation's latency.
package load

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Op runs one operation. worker is the worker's index (0..Workers-1), seq the operation's global sequence number
// (unique across workers, from 0), so an op can pick a distinct input such as a first-seen token.
type Op func(ctx context.Context, worker int, seq int64) error

// Options bound a run. At least one of Duration and Total must be set; the run stops at whichever comes first.
type Options struct {
	Workers  int
	Duration time.Duration
	Total    int64
}

// Result is what a run measured. Latencies holds successful operations only.
type Result struct {
	Ops       int64
	Errors    int64
	FirstErr  error
	Elapsed   time.Duration
	Latencies []time.Duration
}

// PerSecond is successful operations per second of wall time.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Run executes op with opts.Workers concurrent workers.
func Run(ctx context.Context, opts Options, op Op) (Result, error) {
	if opts.Workers < 1 {
		return Result{}, fmt.Errorf("load: Workers must be at least 1, got %d", opts.Workers)
	}
	if opts.Duration <= 0 && opts.Total <= 0 {
		return Result{}, fmt.Errorf("load: set Duration or Total")
	}
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration)
		defer cancel()
	}
	var (
		next     atomic.Int64
		errs     atomic.Int64
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
		perWork  = make([][]time.Duration, opts.Workers)
	)
	start := time.Now()
	for w := range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				seq := next.Add(1) - 1
				if opts.Total > 0 && seq >= opts.Total {
					break
				}
				t0 := time.Now()
				err := op(ctx, w, seq)
				d := time.Since(t0)
				if err != nil {
					// An operation cut short by the end of the run is not a failure of the target.
					if ctx.Err() != nil {
						break
					}
					errs.Add(1)
					errOnce.Do(func() { firstErr = err })
					continue
				}
				lat = append(lat, d)
			}
			perWork[w] = lat
		}()
	}
	wg.Wait()
	res := Result{Elapsed: time.Since(start), Errors: errs.Load(), FirstErr: firstErr}
	for _, l := range perWork {
		res.Latencies = append(res.Latencies, l...)
	}
	res.Ops = int64(len(res.Latencies))
	return res, nil
}

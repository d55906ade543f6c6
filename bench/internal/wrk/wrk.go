// Package wrk runs the wrk HTTP load tool and parses its report.
package wrk

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Options are wrk's command-line settings.
type Options struct {
	URL         string
	Threads     int
	Connections int
	Duration    time.Duration
	Headers     []string // "Name: value"
}

// Result is what wrk reported.
type Result struct {
	RequestsPerSec float64
	P50            time.Duration
	P99            time.Duration
	Requests       int64
	Non2xx         int64
	SocketErrors   string // wrk's "Socket errors" line, empty when none
	Command        string
}

// Args is the command line for opts (also written into the report).
func Args(o Options) []string {
	args := []string{
		"-t" + strconv.Itoa(o.Threads), "-c" + strconv.Itoa(o.Connections),
		"-d" + strconv.Itoa(max(1, int(o.Duration.Round(time.Second)/time.Second))) + "s", "--latency",
	}
	for _, h := range o.Headers {
		args = append(args, "-H", h)
	}
	return append(args, o.URL)
}

// Run runs wrk and parses its output. Non-2xx answers are an error: a benchmark of refusals measures nothing.
func Run(ctx context.Context, o Options) (Result, error) {
	args := Args(o)
	cmd := exec.CommandContext(ctx, "wrk", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	r, err := Parse(out.String())
	if err != nil {
		return r, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	if r.Non2xx > 0 {
		return r, fmt.Errorf("wrk: %d of %d answers were not 2xx/3xx (is the token accepted?)", r.Non2xx, r.Requests)
	}
	return r, nil
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs     = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	reSockErrs = regexp.MustCompile(`Socket errors:.*`)
)

// Parse reads wrk's text report (run with --latency).
func Parse(s string) (Result, error) {
	var r Result
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output")
	}
	r.RequestsPerSec, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(s); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	r.SocketErrors = reSockErrs.FindString(s)
	for _, m := range rePct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if r.P50 == 0 {
		return r, fmt.Errorf("no latency distribution in wrk output (run with --latency)")
	}
	return r, nil
}

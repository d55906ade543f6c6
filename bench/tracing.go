package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-oauth-gateway/gateway/bench/internal/mcpclient"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/report"
	"github.com/mcp-oauth-gateway/gateway/bench/internal/stats"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/jaegertest"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// tracingBudget is the most a tool call may cost streamproxy in CPU with tracing on, over tracing off.
const tracingBudget = 0.05

// tracingSection measures what tracing costs streamproxy: the CPU of its process per tools/call (user and system
// time from /proc, the child excluded) with tracing off, and on with every span exported to a real Jaeger. The two
// alternate, repetition by repetition, so that the machine's other load falls on both.
func tracingSection(e *env, cfg Config, s *Section) error {
	jaegerBin, err := jaegertest.Find()
	if err != nil {
		return err
	}
	bin, err := testenv.Build("./streamproxy")
	if err != nil {
		return err
	}
	fixture, err := buildEverythingServer(e)
	if err != nil {
		return err
	}
	dir, err := e.tempDir()
	if err != nil {
		return err
	}
	jaeger, err := jaegertest.Start(jaegerBin, dir, 0)
	if err != nil {
		return err
	}
	e.onEnd(jaeger.Stop)
	modes := []struct {
		name string
		env  []string
	}{
		{"tracing off", nil},
		{"tracing on, exported to Jaeger", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + jaeger.OTLPHTTP}},
	}
	cpu := make([][]float64, len(modes)) // ns of streamproxy CPU per call, one figure per repetition
	for rep := range cfg.Reps {
		for i, m := range modes {
			v, err := tracedCallCPU(e, cfg, bin, fixture, m.env)
			if err != nil {
				return fmt.Errorf("%s, repetition %d: %w", m.name, rep+1, err)
			}
			cpu[i] = append(cpu[i], v)
		}
	}
	off, on := stats.Of(cpu[0]).Median, stats.Of(cpu[1]).Median
	extra := on/off - 1
	s.set("tracing.off.cpu_us", off/1e3)
	s.set("tracing.on.cpu_us", on/1e3)
	if err := awaitTraces(jaeger, "streamproxy"); err != nil {
		return fmt.Errorf("no streamproxy trace reached Jaeger with tracing on (%w): the figure would measure nothing", err)
	}
	s.Checks = append(s.Checks, "with tracing on, streamproxy's traces reached Jaeger (its query API lists them)")
	rows := [][]string{}
	for i, m := range modes {
		med := stats.Of(cpu[i]).Median
		rows = append(rows, []string{m.name, report.Num(med/1e3) + " µs", report.Pct(stats.Of(cpu[i]).RelSpread()), pctOver(med, off)})
	}
	s.Doc.P("streamproxy in front of the Go SDK conformance fixture, one session, %d sequential `test_simple_text` calls per "+
		"repetition after %d to warm up; the CPU is streamproxy's own (its /proc user and system time over the calls, "+
		"the child's excluded), per call. With tracing on, every request is sampled: the operation's span "+
		"and the call to the child, exported 128 at a time over OTLP/HTTP to Jaeger %s on this machine. Median of %d "+
		"repetitions, the modes alternating.", cfg.Calls, warmCalls(cfg), "1.75.0", cfg.Reps)
	s.Doc.Table([]string{"streamproxy", "CPU per tool call", "spread", "vs tracing off"}, rows)
	s.Summary.P("Tracing costs streamproxy %s of CPU per tool call (%s µs on, %s µs off).",
		report.Pct(extra), report.Num(on/1e3), report.Num(off/1e3))
	s.verdict(fmt.Sprintf("tracing on costs at most %s more CPU per tool call", report.Pct(tracingBudget)),
		report.Pct(extra), extra <= tracingBudget, "each traced call makes two spans (the MCP operation and the call to the child), queued without a wake-up (internal/tracing's batcher) and exported over OTLP 128 at a time (docs/observability.md#cost)")
	return nil
}

// tracedCallCPU runs streamproxy with env added, makes the calls, and returns its CPU per call in ns.
func tracedCallCPU(e *env, cfg Config, bin, fixture string, extraEnv []string) (float64, error) {
	l, err := launchHTTP(e, "streamproxy", sessionClient, func(port int) []string {
		return []string{bin, "-listen", "127.0.0.1:" + strconv.Itoa(port), "-audit-log", "off", "--", fixture}
	}, extraEnv...)
	if err != nil {
		return 0, err
	}
	defer l.stop()
	ctx := context.Background()
	sess, err := l.open(ctx)
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	call := func() error {
		_, err := mcpclient.CallTool(ctx, sess, "test_simple_text", nil)
		return err
	}
	for range warmCalls(cfg) {
		if err := call(); err != nil {
			return 0, err
		}
	}
	before, err := processCPU(l.pid)
	if err != nil {
		return 0, err
	}
	for range cfg.Calls {
		if err := call(); err != nil {
			return 0, err
		}
	}
	after, err := processCPU(l.pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(cfg.Calls), nil
}

// processCPU is the CPU time all of a process's threads have run so far, in nanoseconds (/proc/<pid>/task/*/schedstat;
// /proc/<pid>/stat counts in 10 ms ticks, too coarse for a few hundred milliseconds of calls).
func processCPU(pid int) (time.Duration, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("process CPU: %w", err)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return 0, errors.New("process CPU: empty schedstat")
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process CPU: %w", err)
		}
		total += ns
	}
	return time.Duration(total), nil
}

// pctOver is v relative to base, signed.
func pctOver(v, base float64) string {
	if v == base {
		return "-"
	}
	return fmt.Sprintf("%+.1f%%", (v/base-1)*100)
}

// awaitTraces waits until Jaeger lists a trace of service. streamproxy flushes its spans when it stops, but Jaeger
// stores what it receives through a pipeline of its own, so a query right after may not see them yet.
func awaitTraces(jaeger *jaegertest.Jaeger, service string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		traces, err := jaeger.Traces(ctx, service)
		if err == nil && len(traces) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = errors.New("none listed")
			}
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

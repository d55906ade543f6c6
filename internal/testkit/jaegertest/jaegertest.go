// Package jaegertest runs Jaeger v1.75.0 (built into .cache/bin/jaeger from tools/jaeger by `go tool task deps`) with
// in-memory storage on loopback ports of its own: the trace backend of the end-to-end tracing test and of
// `go tool task dev -- -tracing`. It receives OTLP over HTTP and gRPC and answers the query API its UI uses. Jaeger
// is an OpenTelemetry Collector: the log records it receives (the audit trail's) it prints in full (Output).
package jaegertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/mcp-oauth-gateway/gateway/internal/testkit/freeport"
	"github.com/mcp-oauth-gateway/gateway/internal/testkit/testenv"
)

// Find returns the Jaeger binary built by `go tool task deps`.
func Find() (string, error) {
	root, err := testenv.Root()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, ".cache", "bin", "jaeger")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the Jaeger binary %s: %w; run `go tool task deps`", p, testenv.ErrMissing)
	}
	return p, nil
}

// Jaeger is a running Jaeger.
type Jaeger struct {
	OTLPHTTP string // base URL of the OTLP/HTTP receiver, what OTEL_EXPORTER_OTLP_ENDPOINT names
	OTLPGRPC string // host:port of the OTLP/gRPC receiver
	UI       string // the UI and its query API
	proc     *testenv.Process
}

// config is Jaeger's all-in-one configuration reduced to what the tests use, on the given ports.
const config = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
    logs:
      receivers: [otlp]
      exporters: [debug]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
      http:
        endpoint: 127.0.0.1:%d
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
  debug:
    verbosity: detailed
    use_internal_logger: false
`

// Start runs Jaeger with its configuration in dir, its UI on uiPort (0: any free port), until Stop.
func Start(bin, dir string, uiPort int) (*Jaeger, error) {
	ports := make([]int, 5)
	for i := range ports {
		if i == 0 && uiPort != 0 {
			ports[0] = uiPort
			continue
		}
		p, err := freeport.Pick()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	file := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, config, ports[0], ports[1], ports[2], ports[3], ports[4]), 0o644); err != nil {
		return nil, fmt.Errorf("jaeger config: %w", err)
	}
	proc, err := testenv.StartProcess("jaeger", exec.Command(bin, "--config", file))
	if err != nil {
		return nil, err
	}
	j := &Jaeger{OTLPHTTP: fmt.Sprintf("http://127.0.0.1:%d", ports[4]), OTLPGRPC: fmt.Sprintf("127.0.0.1:%d", ports[3]),
		UI: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), proc: proc}
	health := fmt.Sprintf("http://127.0.0.1:%d/status", ports[2])
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return j, nil
			}
		}
		if time.Now().After(deadline) || proc.Cmd.ProcessState != nil {
			proc.Stop()
			return nil, fmt.Errorf("jaeger did not become healthy within 30 s:\n%s", proc.Output())
		}
	}
}

// Output is what Jaeger logged, and the log records it received, each as the Collector's debug exporter prints it.
func (j *Jaeger) Output() string { return j.proc.Output() }

// Stop ends Jaeger.
func (j *Jaeger) Stop() { j.proc.Stop() }

// Trace is one trace as the query API returns it.
type Trace struct {
	TraceID   string `json:"traceID"`
	Spans     []Span `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

// Span is one span of a Trace.
type Span struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// Service is the name of the service that made s.
func (t Trace) Service(s Span) string { return t.Processes[s.ProcessID].ServiceName }

// Tag is the value of s's tag key, as text ("" when absent).
func (s Span) Tag(key string) string {
	for _, t := range s.Tags {
		if t.Key == key {
			return fmt.Sprint(t.Value)
		}
	}
	return ""
}

// ErrNotFound: Jaeger holds no such trace (yet: spans arrive in batches).
var ErrNotFound = errors.New("trace not found")

// Trace returns the trace with id (32 hex digits).
func (j *Jaeger) Trace(ctx context.Context, id string) (Trace, error) {
	var out struct {
		Data []Trace `json:"data"`
	}
	if err := j.get(ctx, "/api/traces/"+url.PathEscape(id), &out); err != nil {
		return Trace{}, err
	}
	if len(out.Data) == 0 {
		return Trace{}, ErrNotFound
	}
	return out.Data[0], nil
}

// Traces returns the recent traces that hold a span of service.
func (j *Jaeger) Traces(ctx context.Context, service string) ([]Trace, error) {
	var out struct {
		Data []Trace `json:"data"`
	}
	err := j.get(ctx, "/api/traces?"+url.Values{"service": {service}, "limit": {"100"}, "lookback": {"1h"}}.Encode(), &out)
	return out.Data, err
}

func (j *Jaeger) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.UI+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("jaeger query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("jaeger query %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

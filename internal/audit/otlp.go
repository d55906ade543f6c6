package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	otellog "go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/mcp-oauth-gateway/gateway/internal/otelenv"
)

// OTLP is Open's destination that sends each event as an OpenTelemetry log record over OTLP, to the collector the
// standard variables name (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; the protocol from
// OTEL_EXPORTER_OTLP_LOGS_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, http/protobuf by default).
const OTLP = "otlp"

// otlpSink turns the logger's lines into log records. The logger's goroutine is its only caller.
type otlpSink struct {
	provider *sdklog.LoggerProvider
	logger   otellog.Logger
	pending  int // records emitted since the last Flush
}

func openOTLP(ctx context.Context, service string, getenv func(string) string) (*otlpSink, error) {
	if getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" {
		return nil, errors.New("audit log otlp: name the collector in OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
	}
	var exp sdklog.Exporter
	var err error
	switch p := otelenv.Protocol(getenv, "LOGS"); p {
	case "http/protobuf":
		exp, err = otlploghttp.New(ctx)
	case "grpc":
		exp, err = otlploggrpc.New(ctx)
	default:
		return nil, fmt.Errorf("audit log otlp: OTLP protocol %q: want http/protobuf or grpc", p)
	}
	if err != nil {
		return nil, fmt.Errorf("audit log otlp: %w", err)
	}
	res, err := otelenv.Resource(ctx, service)
	if err != nil {
		return nil, err
	}
	provider := sdklog.NewLoggerProvider(sdklog.WithResource(res),
		sdklog.WithProcessor(sdklog.NewBatchProcessor(exp, sdklog.WithMaxQueueSize(2*flushEvery), sdklog.WithExportMaxBatchSize(flushEvery))))
	return &otlpSink{provider: provider, logger: provider.Logger("github.com/mcp-oauth-gateway/gateway/internal/audit")}, nil
}

// Write emits one event, a JSON object, as a log record named after the event whose body is the event's object.
func (o *otlpSink) Write(line []byte) (int, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		return 0, fmt.Errorf("audit event for OTLP: %w", err)
	}
	var r otellog.Record
	name, _ := fields["event"].(string)
	r.SetEventName(name)
	if t, err := time.Parse(time.RFC3339Nano, fmt.Sprint(fields["time"])); err == nil {
		r.SetTimestamp(t)
	}
	r.SetObservedTimestamp(time.Now())
	r.SetSeverity(otellog.SeverityInfo)
	r.SetSeverityText("INFO")
	r.SetBody(value(fields))
	o.logger.Emit(context.Background(), r)
	o.pending++
	return len(line), nil
}

// Flush waits until the emitted records are exported; when the export fails, they are lost.
func (o *otlpSink) Flush() (lost int, err error) {
	n := o.pending
	if n == 0 {
		return 0, nil
	}
	o.pending = 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.provider.ForceFlush(ctx); err != nil {
		return n, fmt.Errorf("audit log otlp: export: %w", err)
	}
	return 0, nil
}

func (o *otlpSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return o.provider.Shutdown(ctx)
}

// value is a decoded JSON value as a log value; an object's members keep a fixed order (by name).
func value(v any) attribute.Value {
	switch v := v.(type) {
	case string:
		return attribute.StringValue(v)
	case bool:
		return attribute.BoolValue(v)
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return attribute.Int64Value(i)
		}
		f, _ := v.Float64()
		return attribute.Float64Value(f)
	case []any:
		vals := make([]attribute.Value, len(v))
		for i, e := range v {
			vals[i] = value(e)
		}
		return attribute.SliceValue(vals...)
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		kvs := make([]attribute.KeyValue, len(keys))
		for i, k := range keys {
			kvs[i] = attribute.KeyValue{Key: attribute.Key(k), Value: value(v[k])}
		}
		return attribute.MapValue(kvs...)
	}
	return attribute.Value{} // null
}

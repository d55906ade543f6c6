// Package otelenv reads what the standard OTEL_* variables say about exporting one signal over OTLP: the traces
// (internal/tracing) and the audit trail's log records (internal/audit) are configured alike.
package otelenv

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Protocol is the OTLP protocol of signal ("TRACES", "LOGS"): OTEL_EXPORTER_OTLP_<signal>_PROTOCOL, else
// OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.
func Protocol(getenv func(string) string, signal string) string {
	if p := getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"); p != "" {
		return p
	}
	if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" {
		return p
	}
	return "http/protobuf"
}

// Resource describes the process as service, unless OTEL_SERVICE_NAME names it otherwise, with the attributes of
// OTEL_RESOURCE_ATTRIBUTES and the SDK's own.
func Resource(ctx context.Context, service string) (*resource.Resource, error) {
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(service)), resource.WithFromEnv(),
		resource.WithTelemetrySDK())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OpenTelemetry resource: %w", err)
	}
	return res, nil
}

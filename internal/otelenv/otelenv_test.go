package otelenv

import "testing"

func TestProtocol(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"},
		{map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, "http/protobuf"},
		{map[string]string{"OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "grpc"}, "http/protobuf"},
	} {
		if got := Protocol(func(k string) string { return c.env[k] }, "TRACES"); got != c.want {
			t.Errorf("Protocol(%v, TRACES) = %q, want %q", c.env, got, c.want)
		}
	}
}

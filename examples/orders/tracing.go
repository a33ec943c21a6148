package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerProvider sets up tracing from the standard OpenTelemetry variables:
// OTEL_TRACES_EXPORTER=console prints spans to stdout; otherwise
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) sends
// them over OTLP, with OTEL_EXPORTER_OTLP_PROTOCOL "http/protobuf" (default)
// or "grpc". With neither, tracing is off and it returns nil. The exporters
// read the rest of the OTEL_EXPORTER_OTLP_* variables themselves.
func tracerProvider(ctx context.Context, lookup func(string) (string, bool), service string) (*sdktrace.TracerProvider, error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	var exp sdktrace.SpanExporter
	var err error
	switch {
	case strings.EqualFold(get("OTEL_TRACES_EXPORTER"), "console"):
		exp, err = stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	case strings.EqualFold(get("OTEL_TRACES_EXPORTER"), "none"):
		return nil, nil
	case get("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "":
		switch proto := get("OTEL_EXPORTER_OTLP_PROTOCOL"); proto {
		case "", "http/protobuf":
			exp, err = otlptracehttp.New(ctx)
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		default:
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: want http/protobuf or grpc", proto)
		}
	default:
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	name := get("OTEL_SERVICE_NAME")
	if name == "" {
		name = service
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(name)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, err
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// propagator is W3C trace context plus baggage.
func propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

var _ trace.TracerProvider = (*sdktrace.TracerProvider)(nil)

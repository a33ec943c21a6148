package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/torix/kafkaevents"
	"github.com/torix/kafkaevents/health"
)

const maxBody = 1 << 20

func newHTTP(stack *kafkaevents.Stack, cfg kafkaevents.Config, logger *slog.Logger, tp trace.TracerProvider) (*echo.Echo, health.Config, error) {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	if tp != nil {
		e.Use(serverSpans(tp))
	}
	e.POST("/orders", publishHandler(stack, TopicOrderCreated, "orderId"))
	e.POST("/users", publishHandler(stack, TopicUserRegistered, "userId"))
	hc, err := mountMonitoring(e, stack, cfg, logger)
	if err != nil {
		return nil, hc, err
	}
	return e, hc, nil
}

// publishHandler publishes the JSON body to topic, keyed by the string field
// keyField or by the query parameter key when given (several orders of one
// customer, to see KAFKA_RETRY_KEEP_KEY_ORDER keep their order), and answers
// with the correlation ID, partition and offset.
func publishHandler(stack *kafkaevents.Stack, topic, keyField string) echo.HandlerFunc {
	return func(c echo.Context) error {
		body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBody+1))
		if err != nil {
			return c.JSON(http.StatusBadRequest, errorBody("bad_request", "cannot read body"))
		}
		if len(body) > maxBody {
			return c.JSON(http.StatusRequestEntityTooLarge, errorBody("too_large", "body exceeds 1 MiB"))
		}
		var fields map[string]any
		if err := json.Unmarshal(body, &fields); err != nil {
			return c.JSON(http.StatusBadRequest, errorBody("invalid_json", "body must be a JSON object: "+err.Error()))
		}
		key, ok := fields[keyField].(string)
		if !ok || key == "" {
			return c.JSON(http.StatusBadRequest, errorBody("invalid_body", keyField+" must be a non-empty string"))
		}
		if k := c.QueryParam("key"); k != "" {
			key = k
		}
		res, err := stack.Producer().Send(c.Request().Context(), kafkaevents.Message{
			Topic: topic, Key: key, Value: json.RawMessage(body),
			CorrelationID: c.Request().Header.Get("x-correlation-id"),
		})
		if err != nil {
			if errors.Is(err, kafkaevents.ErrInvalidMessage) {
				return c.JSON(http.StatusBadRequest, errorBody("invalid_message", err.Error()))
			}
			return c.JSON(http.StatusServiceUnavailable, errorBody("publish_failed", err.Error()))
		}
		return c.JSON(http.StatusAccepted, map[string]any{
			"success": true, "topic": res.Topic, keyField: fields[keyField], "key": key,
			"correlationId": res.CorrelationID, "partition": res.Partition, "offset": res.Offset,
		})
	}
}

// serverSpans starts a server span per request, continuing a trace the
// caller sent in traceparent, so a trace starts at the HTTP request and
// follows the order through Kafka.
func serverSpans(tp trace.TracerProvider) echo.MiddlewareFunc {
	tracer := tp.Tracer("github.com/torix/kafkaevents/examples/orders")
	prop := propagator()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			ctx := prop.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			ctx, span := tracer.Start(ctx, req.Method+" "+c.Path(), trace.WithSpanKind(trace.SpanKindServer))
			defer span.End()
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			if st := c.Response().Status; st >= 500 {
				span.SetStatus(codes.Error, http.StatusText(st))
			}
			return err
		}
	}
}

func errorBody(code, msg string) map[string]string {
	return map[string]string{"error": code, "message": msg}
}

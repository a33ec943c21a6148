package main

import (
	"github.com/ThreeDotsLabs/watermill"
	"github.com/torix/kafkaevents"
)

// watermillChatter are the INFO lines Watermill and watermill-kafka write
// for every handler as the router starts and stops. The service logs them at
// DEBUG (KAFKA_LOG_LEVEL=debug shows them), so that what it logs at INFO are
// its own events: the broker, the retries and DLQ records, readiness,
// shutdown.
var watermillChatter = map[string]bool{
	"Adding handler":             true,
	"Running router handlers":    true,
	"Starting handler":           true,
	"Subscribing to Kafka topic": true,
	"Starting consuming":         true,
	"Closing router":             true,
	"Waiting for messages":       true,
	"Subscriber stopped":         true,
	"Consuming done":             true,
	"Router closed":              true,
	"All messages processed":     true,
}

// quietLogger writes watermillChatter at DEBUG and everything else as the
// logger it wraps does.
type quietLogger struct {
	kafkaevents.WarnLogger
}

func (l quietLogger) Info(msg string, fields watermill.LogFields) {
	if watermillChatter[msg] {
		l.Debug(msg, fields)
		return
	}
	l.WarnLogger.Info(msg, fields)
}

func (l quietLogger) With(fields watermill.LogFields) watermill.LoggerAdapter {
	return quietLogger{l.WarnLogger.With(fields).(kafkaevents.WarnLogger)}
}

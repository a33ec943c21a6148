package kafkaevents

import "errors"

var (
	// ErrDLQDisabled is returned by the DLQ operations of a Stack whose DLQ
	// is off (Config.DLQ.Enabled false).
	ErrDLQDisabled = errors.New("kafkaevents: the DLQ is disabled")
	// ErrUnknownTopic is returned by StartReprocess and BrowseDLQ for a topic
	// that no registered handler consumes.
	ErrUnknownTopic = errors.New("kafkaevents: no handler consumes this topic")
	// ErrUnknownComponent is returned by ResetMetrics for a component other
	// than "all", "retry" or "dlq".
	ErrUnknownComponent = errors.New("kafkaevents: unknown metrics component (want all, retry or dlq)")
)

package kafkaevents

import "errors"

// The root package's errors; each is documented where it is returned and
// is matched with errors.Is.
var (
	// ErrStartupTimeout is wrapped by the error NewContext (and the start of
	// a router the stack is installed on) returns when a wait of the start
	// took longer than Config.StartupTimeout.
	ErrStartupTimeout = errors.New("kafkaevents: startup timed out")
	// ErrInvalidMessage is wrapped by the errors of messages that cannot be
	// sent (no topic, a value that does not marshal).
	ErrInvalidMessage = errors.New("kafkaevents: invalid message")
	// ErrDLQDisabled is returned by the DLQ operations of a Stack whose DLQ
	// is off (Config.DLQ.Enabled false).
	ErrDLQDisabled = errors.New("kafkaevents: the DLQ is disabled")
	// ErrUnknownTopic is returned by StartReprocess and BrowseDLQ for a topic
	// that no registered handler consumes.
	ErrUnknownTopic = errors.New("kafkaevents: no handler consumes this topic")
	// ErrUnknownComponent is returned by ResetMetrics for a component other
	// than "all", "retry" or "dlq".
	ErrUnknownComponent = errors.New("kafkaevents: unknown metrics component (want all, retry or dlq)")
	// ErrNotParked is returned by ReleaseKey for a key that is not parked.
	ErrNotParked = errors.New("kafkaevents: the key is not parked")
)

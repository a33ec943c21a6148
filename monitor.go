package kafkaevents

import "time"

// HandlerInfo describes a registered handler, as GET /kafka/handlers lists it.
type HandlerInfo struct {
	// ID is the handler ID (the Watermill handler name).
	ID string `json:"id"`
	// Pattern is the topic it consumes; empty for a handler added directly
	// to the router, whose topic the router does not reveal.
	Pattern string `json:"pattern"`
	// Method is an optional description of the function behind it.
	Method string `json:"method,omitempty"`
	// Options are its retry and DLQ settings.
	Options HandlerOptions `json:"options"`
}

// HandlerOptions are a handler's effective retry and DLQ settings.
type HandlerOptions struct {
	Retry RetryOptions `json:"retry"`
	DLQ   bool         `json:"dlq"`
}

// RetryOptions are a handler's effective retry policy, in JSON-friendly units.
type RetryOptions struct {
	Enabled     bool    `json:"enabled"`
	Attempts    int     `json:"attempts"`
	BaseDelayMs int64   `json:"baseDelayMs"`
	MaxDelayMs  int64   `json:"maxDelayMs"`
	Backoff     string  `json:"backoff"`
	Jitter      float64 `json:"jitter"`
}

// PartitionLag is the consumer lag of one partition of a consumed topic.
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset (-1 when none).
	Committed int64 `json:"committed"`
	// End is the partition's end offset (high-water mark).
	End int64 `json:"end"`
	// Lag is End minus Committed (End minus the oldest offset when nothing
	// is committed).
	Lag int64 `json:"lag"`
}

// Readiness is the outcome of the readiness checks.
type Readiness struct {
	// Producer: a broker answered a metadata request in time.
	Producer bool `json:"producer"`
	// Handlers: the router is running with at least one handler.
	Handlers bool `json:"handlers"`
	// Consumer: the consumer group is stable and has members with
	// assignments.
	Consumer bool `json:"consumer"`
	// Errors explains the failed checks.
	Errors map[string]string `json:"errors,omitempty"`
	// CheckedAt is when the checks ran.
	CheckedAt time.Time `json:"-"`
}

// Ready reports whether every check passed.
func (r Readiness) Ready() bool { return r.Producer && r.Handlers && r.Consumer }

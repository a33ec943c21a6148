package tracing

import (
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// spanStart is what starts the span of an operation on a topic: its name and
// its start options (kind and the attributes a sampler may look at). The
// per-message paths reuse it, so starting a span allocates nothing on this
// side.
type spanStart struct {
	name string
	opts []trace.SpanStartOption
}

// maxCachedStarts bounds startCache: a router subscribes to a fixed set of
// topics, and producers write to a fixed set, so the bound only guards against
// a caller that is neither.
const maxCachedStarts = 1024

// startCache remembers a spanStart per operation and topic. A hit is one
// atomic load and a map lookup; a miss copies the map (misses stop once every
// topic was seen). The zero value is ready to use.
type startCache struct {
	m  atomic.Pointer[map[startKey]*spanStart]
	mu sync.Mutex
}

type startKey struct {
	send  bool // "send" rather than "process"
	topic string
}

// process returns the start of a "process {topic}" span.
func (t *Tracer) processStart(topic string) *spanStart {
	return t.starts.get(startKey{topic: topic}, t.group, t.common)
}

// send returns the start of a "send {topic}" span.
func (t *Tracer) sendStart(topic string) *spanStart {
	return t.starts.get(startKey{send: true, topic: topic}, "", t.common)
}

func (c *startCache) get(k startKey, group string, common []attribute.KeyValue) *spanStart {
	if m := c.m.Load(); m != nil {
		if s, ok := (*m)[k]; ok {
			return s
		}
	}
	s := newSpanStart(k, group, common)
	c.mu.Lock()
	defer c.mu.Unlock()
	var old map[startKey]*spanStart
	if p := c.m.Load(); p != nil {
		old = *p
	}
	if len(old) >= maxCachedStarts {
		return s
	}
	next := make(map[startKey]*spanStart, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[k] = s
	c.m.Store(&next)
	return s
}

func newSpanStart(k startKey, group string, common []attribute.KeyValue) *spanStart {
	// The topic of a retried message comes from a header.
	k.topic = strings.ToValidUTF8(k.topic, "\uFFFD")
	if k.send {
		return &spanStart{
			name: spanName("send", k.topic),
			opts: []trace.SpanStartOption{kindProducer, trace.WithAttributes(append([]attribute.KeyValue{
				attrSystem,
				semconv.MessagingDestinationName(k.topic),
				attrOpSend,
				attrNameSend,
			}, common...)...)},
		}
	}
	attrs := []attribute.KeyValue{
		attrSystem,
		semconv.MessagingDestinationName(k.topic),
		attrOpProcess,
		attrNameProcess,
	}
	if group != "" {
		attrs = append(attrs, semconv.MessagingConsumerGroupName(group))
	}
	attrs = append(attrs, common...)
	return &spanStart{
		name: spanName("process", k.topic),
		opts: []trace.SpanStartOption{kindConsumer, trace.WithAttributes(attrs...)},
	}
}

// spanName returns "{operation} {topic}", or the operation alone for an
// unknown topic.
func spanName(operation, topic string) string {
	if topic == "" {
		return operation
	}
	return operation + " " + topic
}

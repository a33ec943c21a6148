package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
)

var (
	// ErrUnknownHandler is returned by Deliver for a handler ID that was
	// never registered with Expect.
	ErrUnknownHandler = errors.New("dispatch: unknown handler")
	// ErrNacked is returned by Deliver when the router rejected the message
	// (the handler chain returned an error).
	ErrNacked = errors.New("dispatch: message rejected by the handler chain")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("dispatch: closed")
)

// HandlerSuffix is appended to a handler ID to name its companion router
// handler, e.g. "OrderService.handleOrderCreated#dispatch".
const HandlerSuffix = "#dispatch"

// topicPrefix starts the name the companion handler subscribes to (see
// Topic): it is no Kafka topic, and the router's logs should say so.
const topicPrefix = "in-process retries and reprocessing of "

// Topic returns what the companion router handler of handlerID subscribes
// to on the Dispatcher: "in-process retries and reprocessing of " and the
// handler ID, which is how the router's logs name it. Subscribe accepts it
// as well as the bare handler ID.
func Topic(handlerID string) string { return topicPrefix + handlerID }

// Dispatcher routes messages to handlers by ID. The zero value is not usable;
// call New.
type Dispatcher struct {
	mu       sync.Mutex
	expected map[string]struct{}
	subs     map[string]*subscription
	changed  chan struct{} // closed and replaced whenever subs changes
	closed   chan struct{}
	once     sync.Once
}

type subscription struct {
	ch   chan *message.Message
	done chan struct{} // closed first, so pending senders give up
	mu   sync.RWMutex  // senders hold it for reading while they send
}

// New returns an empty Dispatcher.
func New() *Dispatcher {
	return &Dispatcher{
		expected: map[string]struct{}{},
		subs:     map[string]*subscription{},
		changed:  make(chan struct{}),
		closed:   make(chan struct{}),
	}
}

// Expect declares that a handler with this ID exists, so Deliver waits for its
// subscription instead of failing with ErrUnknownHandler.
func (d *Dispatcher) Expect(handlerID string) {
	d.mu.Lock()
	d.expected[handlerID] = struct{}{}
	d.mu.Unlock()
}

// Known reports whether handlerID was declared with Expect.
func (d *Dispatcher) Known(handlerID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.expected[handlerID]
	return ok
}

// HandlerIDs returns the declared handler IDs.
func (d *Dispatcher) HandlerIDs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.expected))
	for id := range d.expected {
		ids = append(ids, id)
	}
	return ids
}

// Subscribe implements message.Subscriber. topic is a handler ID, or Topic
// of one; it is
// declared as expected. The channel is closed when ctx is done or the
// Dispatcher is closed. A second subscription for the same ID replaces the
// first.
func (d *Dispatcher) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	select {
	case <-d.closed:
		return nil, ErrClosed
	default:
	}
	topic = strings.TrimPrefix(topic, topicPrefix)
	sub := &subscription{ch: make(chan *message.Message), done: make(chan struct{})}
	d.mu.Lock()
	d.expected[topic] = struct{}{}
	d.subs[topic] = sub
	d.notifyLocked()
	d.mu.Unlock()

	go func() {
		select {
		case <-ctx.Done():
		case <-d.closed:
		}
		d.mu.Lock()
		if d.subs[topic] == sub {
			delete(d.subs, topic)
			d.notifyLocked()
		}
		d.mu.Unlock()
		sub.close()
	}()
	return sub.ch, nil
}

// close stops new sends, waits for pending ones to give up and closes the
// channel, which ends the router handler reading it.
func (s *subscription) close() {
	close(s.done)
	s.mu.Lock()
	close(s.ch)
	s.mu.Unlock()
}

func (d *Dispatcher) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// Deliver hands msg to the handler handlerID and waits for the outcome. It
// returns nil once the router acknowledged msg, ErrNacked when the chain
// rejected it, ErrUnknownHandler for an undeclared ID, ErrClosed after Close,
// or ctx's error. It waits (bounded by ctx) for the handler to subscribe, so
// it may be called before the router runs.
func (d *Dispatcher) Deliver(ctx context.Context, handlerID string, msg *message.Message) error {
	for {
		d.mu.Lock()
		_, known := d.expected[handlerID]
		sub := d.subs[handlerID]
		changed := d.changed
		d.mu.Unlock()
		if !known {
			return fmt.Errorf("%w: %q", ErrUnknownHandler, handlerID)
		}
		if sub == nil {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-d.closed:
				return ErrClosed
			}
		}
		sent, err := d.send(ctx, sub, changed, msg)
		if err != nil {
			return err
		}
		if !sent {
			continue // the subscription changed; look again
		}
		select {
		case <-msg.Acked():
			return nil
		case <-msg.Nacked():
			return ErrNacked
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (d *Dispatcher) send(ctx context.Context, sub *subscription, changed chan struct{}, msg *message.Message) (sent bool, err error) {
	sub.mu.RLock()
	defer sub.mu.RUnlock()
	select {
	case <-sub.done:
		return false, nil
	default:
	}
	select {
	case sub.ch <- msg:
		return true, nil
	case <-sub.done:
		return false, nil
	case <-changed:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-d.closed:
		return false, ErrClosed
	}
}

// Close closes every subscription; later Deliver calls return ErrClosed. It
// is idempotent and always returns nil.
func (d *Dispatcher) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}
